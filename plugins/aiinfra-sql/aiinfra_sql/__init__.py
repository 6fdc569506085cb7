"""aiinfra-sql: read a SQL table or query into aiinfra, optionally only the rows new since the last run."""

__version__ = "0.1.0"
