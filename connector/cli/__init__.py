"""The `rokt-connector` command line (also `python -m connector`): arguments, what is
printed and the exit codes. Must not: hold pipeline logic, print a secret or raw PII,
or load polars, DuckDB or the sandbox's server before a command runs."""

from connector.cli.commands import app, main

__all__ = ["app", "main"]
