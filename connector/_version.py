"""The connector's version: one constant, importable without loading anything else
(the CLI's `--version`, the User-Agent of requests)."""

__version__ = "0.1.0"
