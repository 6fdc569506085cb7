from aiinfra.cli import entry

entry()
