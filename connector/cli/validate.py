"""`rokt-connector validate`: check config, query and mapping over a window, and report
the rows by outcome without sending anything."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from connector import clock
from connector.cli.options import ConfigOption, SinceOption, UntilOption, window_options
from connector.errors import EXIT_OK, EXIT_ROWS_NOT_ACCEPTED, ConnectorError


def validate_command(
    config: ConfigOption,
    show: Annotated[int, typer.Option(min=0, help="Print N example payloads.", metavar="N")] = 0,
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON report.")] = False,
) -> None:
    """Check config, query and mapping; report rows by outcome; send nothing.

    Exit 0 when every row would be sent (a duplicate confirmationref is skipped, as
    in sync), 1 when some rows are rejected, 2 on a config or query error. The window
    defaults to the sync's.
    """
    from connector import jobs
    from connector.cli.render import fail, write_json
    from connector.cli.render_runs import print_validation

    try:
        loaded, now = jobs.as_config(config), clock.now()
        start, end = jobs.sync_bounds(loaded, *window_options(since, until), now)
        report = jobs.validate(loaded, start, end, now=now, show=show)
    except ConnectorError as exc:
        fail(str(exc), exc.exit_code)
    if as_json:
        payloads = [json.loads(p) if p.startswith("{") else p for p in report.payloads]
        write_json(report.as_dict() | {"payloads": payloads})
    else:
        print_validation(report, config)
    clean = report.rows_rejected == 0 and report.duplicates_differing == 0
    raise typer.Exit(EXIT_OK if clean else EXIT_ROWS_NOT_ACCEPTED)
