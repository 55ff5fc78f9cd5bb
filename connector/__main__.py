"""`python -m connector`: the same as the `rokt-connector` command."""

from connector.cli import main

main()
