"""pytest plugin for aiinfra plugin authors (registered as the ``pytest11`` entry point ``aiinfra``).

Kept import-light: it is loaded in every pytest session of an environment with aiinfra installed.
"""

from __future__ import annotations
