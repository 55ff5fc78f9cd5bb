"""`rokt-connector sandbox`: run the local emulator of the Event API and the pixel endpoints,
with the faults it injects on request; prints the URL it listens on once it is ready."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from connector.errors import ConnectorError


def sandbox_command(
    host: Annotated[
        str, typer.Option(help="Loopback address to listen on.", metavar="ADDRESS")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="0 picks a free port.", metavar="PORT")
    ] = 8787,
    api_key: Annotated[
        str,
        typer.Option(envvar="ROKT_SANDBOX_API_KEY", help="Key the sandbox accepts.", metavar="KEY"),
    ] = "sandbox-key",
    api_secret: Annotated[
        str,
        typer.Option(
            envvar="ROKT_SANDBOX_API_SECRET",
            help="Secret it accepts; better set in the environment (ps shows arguments).",
            metavar="SECRET",
        ),
    ] = "sandbox-secret",
    write_key: Annotated[
        str,
        typer.Option(
            envvar="ROKT_SANDBOX_WRITE_KEY",
            help="Write key the RudderStack pixel endpoint accepts; better set in the environment.",
            metavar="KEY",
        ),
    ] = "sandbox-write-key",
    rate_limit: Annotated[
        float | None,
        typer.Option(min=0.001, help="Batches per second before 429.", metavar="RATE"),
    ] = None,
    fail_rate: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Fraction of requests failing (5xx/429).", metavar="FRACTION"
        ),
    ] = 0.0,
    reject_rate: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            help="Fraction of valid batches rejected (each always the same way).",
            metavar="FRACTION",
        ),
    ] = 0.0,
    latency: Annotated[
        float, typer.Option(min=0, help="Seconds before each answer.", metavar="SECONDS")
    ] = 0.0,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the fault injection.", metavar="N")
    ] = None,
    burst_503: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Chance a request starts a burst of 503s.", metavar="FRACTION"
        ),
    ] = 0.0,
    storm_429: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Chance a request starts a storm of 429s.", metavar="FRACTION"
        ),
    ] = 0.0,
    burst_length: Annotated[
        int, typer.Option(min=1, help="Requests in one 503 burst or 429 storm.", metavar="N")
    ] = 5,
    retry_after_max: Annotated[
        int,
        typer.Option(min=0, help="Injected 429s say Retry-After 0..N seconds.", metavar="N"),
    ] = 1,
    reset_rate: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            help="Fraction of requests whose connection drops before the answer.",
            metavar="FRACTION",
        ),
    ] = 0.0,
    slow_rate: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Fraction answered --slow seconds late.", metavar="FRACTION"
        ),
    ] = 0.0,
    slow: Annotated[
        float, typer.Option(min=0, help="Delay of a late answer (s).", metavar="SECONDS")
    ] = 5.0,
    hang_rate: Annotated[
        float,
        typer.Option(min=0, max=1, help="Fraction of requests never answered.", metavar="FRACTION"),
    ] = 0.0,
    journal: Annotated[
        Path | None,
        typer.Option(
            help="Remember what was received in this file, across restarts.", metavar="FILE"
        ),
    ] = None,
    keep_bodies: Annotated[
        int, typer.Option(min=0, help="Accepted batches kept for /_sandbox/batches.", metavar="N")
    ] = 10_000,
    header_timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="Seconds a connection has to send a request's headers, else closed.",
            metavar="SECONDS",
        ),
    ] = 10.0,
    max_connections: Annotated[
        int,
        typer.Option(
            min=1, help="Connections open at once; one more is closed at once.", metavar="N"
        ),
    ] = 256,
    opaque_errors: Annotated[
        bool,
        typer.Option(
            "--opaque-errors",
            help="Bulk answers' errors do not say which batch failed (no Path, no position).",
        ),
    ] = False,
) -> None:
    """Emulate the Event API and the pixels (strict as the platform; see the sandbox in the README).

    Serves POST /v2/events and /v2/bulkevents (HTTP Basic key:secret), GET /v1/{api_key}/Pixel
    (Rokt's Pixel Service) and GET /pixel/v1/track?writeKey=... (RudderStack's Pixel API); the
    pixels answer a 1x1 GIF.
    """
    from connector.cli.render import fail
    from connector.sandbox import SandboxSettings, serve

    settings = SandboxSettings(
        api_key=api_key,
        api_secret=api_secret,
        write_key=write_key,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        reject_rate=reject_rate,
        latency_s=latency,
        seed=seed,
        keep_bodies=keep_bodies,
        burst_503_rate=burst_503,
        storm_429_rate=storm_429,
        burst_length=burst_length,
        retry_after_max_s=retry_after_max,
        reset_rate=reset_rate,
        slow_rate=slow_rate,
        slow_s=slow,
        hang_rate=hang_rate,
        journal=journal,
        opaque_errors=opaque_errors,
        header_timeout_s=header_timeout,
        max_connections=max_connections,
    )
    try:
        serve(
            settings, host, port, ready=lambda url: print(f"sandbox listening on {url}", flush=True)
        )
    except (ValueError, ConnectorError) as exc:
        fail(str(exc))
