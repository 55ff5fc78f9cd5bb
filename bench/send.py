"""Benchmark: sending conversions to the local Event API sandbox, connector vs. the mparticle SDK.

Builds the seeded example warehouse (`examples/build_warehouse.py`, default 20,000 rows,
about 92% valid) and, in one run, against sandboxes on loopback with no faults, measures:
  1. the connector's bulk throughput, unthrottled (`bulk: true`,
     `max_batches_per_second: 100000`, `concurrency: 8`, sandbox without a rate limit):
     batches/s = batches_sent / the run's `duration_s`;
  2. a rate-limited run (sandbox rate limit 270 batches/s, connector
     `max_batches_per_second: 270`, its own warehouse of `--limited-rows` rows): the
     sustained rate over the sending phase, from `/_sandbox/stats` polled every 0.25 s
     (start-up excluded), as a fraction of 270 (target >= 95%), the 429s the sandbox
     gave, and that every valid conversion was accepted exactly once;
  3. the batches of run 1, fetched back from its sandbox, sent through the official
     `mparticle` SDK (`EventsApi.bulk_upload_events`, 100 batches a call, synchronous)
     to a fresh sandbox: model building and the upload loop timed separately;
  4. the pixel transports (`pixel`, `rudderstack_pixel`; one conversion per GET) on a
     warehouse of `--pixel-rows` rows: requests/s unthrottled, and the sustained rate
     at the default limit of 100 requests/s (sandbox and connector) as a fraction of it.
Prints a table and the connector/SDK ratio. The sandboxes run `connector.sandbox.serve`
in child processes (as `python -m connector sandbox` does) so that every batch the first
one accepts is kept for step 3.

Usage: python bench/send.py [--rows N] [--limited-rows N] [--pixel-rows N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import mparticle
import yaml

from connector.config import load_config
from connector.engine.run import sync
from connector.report import RunReport
from connector.sandbox import SandboxSettings, serve

REPO = Path(__file__).resolve().parents[1]
ANCHOR = "2026-11-01"  # fixed, so the example rows are the same on every day
SINCE = datetime(2026, 10, 1, tzinfo=UTC)  # the rows span [anchor - 25 days, anchor)
UNTIL = datetime(2026, 11, 2, tzinfo=UTC)
API_KEY, API_SECRET, WRITE_KEY = "sandbox-key", "sandbox-secret", "sandbox-write-key"
LIMIT = 270.0  # batches per second: the Event API's documented default
PIXEL_LIMIT = 100.0  # requests per second: the pixel transports' default
UNTHROTTLED = 100_000.0  # the config's cap on max_batches_per_second
CONCURRENCY = 8
SDK_BATCHES_PER_CALL = 100
PAGE = 10_000  # the sandbox's largest /_sandbox/batches page
POLL_S = 0.25


def _serve(rate_limit: float | None, keep_bodies: int, urls: Any) -> None:
    """Child process: the sandbox on a free loopback port; its URL goes to `urls`."""
    settings = SandboxSettings(
        api_key=API_KEY,
        api_secret=API_SECRET,
        write_key=WRITE_KEY,
        rate_limit=rate_limit,
        keep_bodies=keep_bodies,
    )
    serve(settings, "127.0.0.1", 0, ready=urls.put)


class Sandbox:
    """A fresh sandbox in a child process, stopped on exit."""

    def __init__(self, rate_limit: float | None = None, keep_bodies: int = 10_000) -> None:
        context = multiprocessing.get_context("spawn")
        urls = context.Queue()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(rate_limit, keep_bodies, urls), daemon=True
        )
        self.process.start()
        try:
            self.url: str = urls.get(timeout=60)
        except Exception:
            self.stop()
            raise RuntimeError("sandbox did not start within 60 s") from None
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.client.get("/_sandbox/stats").json()
        return stats

    def batches(self) -> list[dict[str, Any]]:
        """Every batch it accepted (as recorded), in the order received."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.client.get(
                "/_sandbox/batches", params={"offset": len(found), "limit": PAGE}
            )
            items = page.json()["batches"]
            found += items
            if len(items) < PAGE:
                return found

    def stop(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        self.process.terminate()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    batches: int
    throttled: int  # 429 responses so far


@dataclass
class Poller:
    """Polls a sandbox's stats every POLL_S seconds in a background thread."""

    url: str
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _poll(self, client: httpx.Client) -> None:
        stats = client.get("/_sandbox/stats").json()
        at = time.monotonic()
        self.samples.append(Sample(at, stats["batches"], stats["responses_by_status"]["429"]))

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.wait(POLL_S):
                self._poll(client)
            self._poll(client)  # the state after the run

    def __enter__(self) -> Poller:
        self._thread = threading.Thread(target=self._run, name="stats-poller", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def sustained(self) -> tuple[float, int, float]:
        """Batches/s between the first poll that saw a batch and the first that saw them all;
        also those batches and seconds."""
        final = self.samples[-1].batches
        first = next(s for s in self.samples if s.batches > 0)
        last = next(s for s in self.samples if s.batches == final)
        seconds = last.at - first.at
        counted = last.batches - first.batches
        return (counted / seconds if seconds > 0 else float("nan")), counted, seconds


def build_warehouse(directory: Path, rows: int) -> int:
    """The example warehouse of `rows` rows in `directory`; returns its valid row count."""
    script = REPO / "examples" / "build_warehouse.py"
    options = ["--out-dir", str(directory), "--rows", str(rows), "--seed", "7", "--anchor", ANCHOR]
    subprocess.run(
        [sys.executable, str(script), *options],
        check=True,
        capture_output=True,
    )
    manifest = json.loads((directory / "warehouse.manifest.json").read_text(encoding="utf-8"))
    valid: int = manifest["valid"]
    return valid


def write_config(
    directory: Path, name: str, url: str, rate: float, transport: str = "events_api"
) -> Path:
    destination: dict[str, Any] = {"transport": transport, "base_url": url}
    if transport == "events_api":
        destination |= {"api_key": API_KEY, "api_secret": API_SECRET, "bulk": True}
        destination["max_batches_per_second"] = rate
    else:
        destination |= {"api_key": API_KEY, "write_key": WRITE_KEY}
        destination["max_requests_per_second"] = rate
    config = {
        "source": {
            "database": str(directory / "warehouse.duckdb"),
            "query": str(REPO / "sql" / "conversions.sql"),
        },
        "destination": destination | {"concurrency": CONCURRENCY},
        "ledger": {"path": str(directory / f"{name}.ledger.duckdb")},  # fresh per run
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_sync(config_path: Path) -> RunReport:
    report = sync(load_config(config_path), SINCE, UNTIL, now=UNTIL)
    if report.status == "failed":
        raise SystemExit(f"sync failed: {report.message}")
    return report


def _fill(model: Any, values: dict[str, Any], where: str) -> Any:
    """Set `values` on an SDK model, refusing keys it has no field for (they would be lost)."""
    for key, value in values.items():
        if key not in model.swagger_types:
            raise SystemExit(f"the mparticle SDK's {where} has no field {key!r}")
        setattr(model, key, value)
    return model


def to_sdk(batch: dict[str, Any]) -> Any:
    """One connector batch (JSON) as the SDK's `mparticle.Batch` model."""
    model = mparticle.Batch()
    model.environment = batch["environment"]
    model.source_request_id = batch["source_request_id"]
    identities = batch.get("user_identities", {})
    model.user_identities = _fill(mparticle.UserIdentities(), identities, "UserIdentities")
    model.user_attributes = dict(batch.get("user_attributes", {}))
    if "device_info" in batch:
        device = mparticle.DeviceInformation()
        model.device_info = _fill(device, batch["device_info"], "DeviceInformation")
    if "ip" in batch:
        model.ip = batch["ip"]
    if "integration_attributes" in batch:
        model.integration_attributes = batch["integration_attributes"]
    (event,) = batch["events"]
    data = event["data"]
    model.events = [
        mparticle.AppEvent(
            event_name=data["event_name"],
            custom_event_type=data["custom_event_type"],
            timestamp_unixtime_ms=data["timestamp_unixtime_ms"],
            source_message_id=data["source_message_id"],
            custom_attributes=dict(data["custom_attributes"]),
        )
    ]
    return model


def sdk_upload(url: str, models: list[Any]) -> tuple[int, float, str | None]:
    """Upload `models` 100 per call; returns calls made, seconds, and the first error."""
    configuration = mparticle.Configuration()
    configuration.api_key = API_KEY
    configuration.api_secret = API_SECRET
    configuration.host = f"{url}/v2"
    api = mparticle.EventsApi(configuration)
    calls = 0
    started = time.perf_counter()
    try:
        for start in range(0, len(models), SDK_BATCHES_PER_CALL):
            api.bulk_upload_events(models[start : start + SDK_BATCHES_PER_CALL])
            calls += 1
    except mparticle.rest.ApiException as exc:
        return calls, time.perf_counter() - started, f"HTTP {exc.status}: {exc.body!r}"
    return calls, time.perf_counter() - started, None


def pixels(directory: Path, valid: int) -> None:
    """Run 4: each pixel transport unthrottled, then at PIXEL_LIMIT requests/s."""
    print(f"\n4. the pixel transports, one conversion per GET ({valid:,} valid conversions)")
    for transport in ("pixel", "rudderstack_pixel"):
        with Sandbox() as box:
            fast = run_sync(
                write_config(directory, f"{transport}-fast", box.url, UNTHROTTLED, transport)
            )
        with Sandbox(rate_limit=PIXEL_LIMIT) as box:
            config_path = write_config(directory, transport, box.url, PIXEL_LIMIT, transport)
            with Poller(box.url) as poller:
                limited = run_sync(config_path)
            stats = box.stats()
        sustained, counted, seconds = poller.sustained()
        once = stats["unique_confirmationrefs"] == stats["batches"] == limited.accepted == valid
        print(
            f"   {transport}: unthrottled {fast.requests:,} requests in {fast.duration_s:.2f} s "
            f"-> {fast.requests / fast.duration_s:,.0f} requests/s (whole run)\n"
            f"   {'':{len(transport)}}  limit {PIXEL_LIMIT:g}/s: sustained {sustained:,.1f} "
            f"requests/s = {sustained / PIXEL_LIMIT:.1%} of {PIXEL_LIMIT:g} ({counted:,} over "
            f"{seconds:.2f} s, start-up excluded); 429s "
            f"{stats['responses_by_status']['429']}; each accepted once: "
            f"{'yes' if once and stats['duplicate_confirmationrefs'] == 0 else 'NO'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="example rows, runs 1 and 3")
    parser.add_argument("--limited-rows", type=int, default=8_000, help="example rows, run 2")
    parser.add_argument("--pixel-rows", type=int, default=2_000, help="example rows, run 4")
    parser.add_argument("--only-pixels", action="store_true", help="run 4 alone")
    args = parser.parse_args()
    if args.only_pixels:
        with tempfile.TemporaryDirectory() as tmp:
            pixels(Path(tmp), build_warehouse(Path(tmp), args.pixel_rows))
        return
    with tempfile.TemporaryDirectory() as tmp:
        fast_dir, limited_dir = Path(tmp, "unthrottled"), Path(tmp, "limited")
        fast_dir.mkdir()
        limited_dir.mkdir()
        valid = build_warehouse(fast_dir, args.rows)
        limited_valid = build_warehouse(limited_dir, args.limited_rows)
        print(
            f"warehouses: {args.rows:,} rows ({valid:,} valid) and "
            f"{args.limited_rows:,} rows ({limited_valid:,} valid)"
        )

        # 1. bulk, unthrottled
        with Sandbox(keep_bodies=valid + PAGE) as box:
            fast = run_sync(write_config(fast_dir, "unthrottled", box.url, UNTHROTTLED))
            fast_stats = box.stats()
            recorded = box.batches()
        fast_rate = fast.batches_sent / fast.duration_s
        wire_s = recorded[-1]["received_at"] - recorded[0]["received_at"] if recorded else 0.0
        wire_rate = fast.batches_sent / wire_s if wire_s > 0 else float("nan")
        print(
            f"\n1. connector, bulk, unthrottled: {fast.batches_sent:,} batches in "
            f"{fast.requests:,} requests ({fast.batches_sent / max(fast.requests, 1):.1f} "
            f"batches/request), {fast.duration_s:.2f} s -> {fast_rate:,.0f} batches/s\n"
            f"   (whole run incl. query and preparation; the sandbox received them over "
            f"{wire_s:.2f} s; accepted {fast.accepted:,}, retries {fast.retries}, "
            f"429s {fast_stats['responses_by_status']['429']}, "
            f"sandbox rejected {fast_stats['rejected']})"
        )

        # 2. rate limited: sandbox and connector both at 270 batches/s
        with Sandbox(rate_limit=LIMIT) as box:
            config_path = write_config(limited_dir, "limited", box.url, LIMIT)
            with Poller(box.url) as poller:
                limited = run_sync(config_path)
            limited_stats = box.stats()
        sustained, counted, seconds = poller.sustained()
        naive = limited.batches_sent / limited.duration_s
        throttled = limited_stats["responses_by_status"]["429"]
        exactly_once = (
            limited_stats["unique_confirmationrefs"]
            == limited_stats["batches"]
            == limited.accepted
            == limited_valid
            and limited_stats["duplicate_confirmationrefs"] == 0
        )
        print(
            f"\n2. connector, rate limit {LIMIT:g} batches/s (sandbox and connector): "
            f"{limited.batches_sent:,} batches in {limited.requests:,} requests, "
            f"{limited.duration_s:.2f} s\n"
            f"   sustained {sustained:,.1f} batches/s = {sustained / LIMIT:.1%} of {LIMIT:g} "
            f"(target >= 95%; {counted:,} batches over {seconds:.2f} s, start-up excluded)\n"
            f"   whole run {naive:,.1f} batches/s = {naive / LIMIT:.1%}; "
            f"429s from the sandbox: {throttled} (retries {limited.retries})\n"
            f"   every valid conversion accepted once: {'yes' if exactly_once else 'NO'} "
            f"(valid {limited_valid:,}, accepted {limited.accepted:,}, sandbox batches "
            f"{limited_stats['batches']:,}, unique confirmationrefs "
            f"{limited_stats['unique_confirmationrefs']:,}, duplicates "
            f"{limited_stats['duplicate_confirmationrefs']}, resent {limited_stats['resent']})"
        )

        # 3. the same batches through the official mparticle SDK, one call at a time
        started = time.perf_counter()
        models = [to_sdk(item["batch"]) for item in recorded]
        build_s = time.perf_counter() - started
        with Sandbox() as box:
            calls, upload_s, error = sdk_upload(box.url, models)
            sdk_stats = box.stats()
        sdk_rate = len(models) / upload_s
        sdk_all_rate = len(models) / (build_s + upload_s)
        refused = {**sdk_stats["rejections_by_code"], **sdk_stats["request_errors_by_code"]}
        problems = f", by code {refused}" if refused else ""
        accepted_all = sdk_stats["batches"] == len(models) and sdk_stats["rejected"] == 0
        print(
            f"\n3. mparticle SDK {version('mparticle')} bulk_upload_events, synchronous: "
            f"{len(models):,} batches in {calls:,} calls\n"
            f"   building models {build_s:.2f} s, upload loop {upload_s:.2f} s -> "
            f"{sdk_rate:,.0f} batches/s ({sdk_all_rate:,.0f} incl. building)\n"
            f"   sandbox accepted all: {'yes' if accepted_all else 'NO'} (batches "
            f"{sdk_stats['batches']:,}, rejected {sdk_stats['rejected']}{problems})"
        )
        if error is not None:
            print(f"   SDK stopped on an error: {error}")

        ratio = fast_rate / sdk_rate
        rows = [
            ("connector bulk, unthrottled", fast.batches_sent, fast.requests, fast.duration_s),
            ("  of which on the wire (sandbox)", fast.batches_sent, fast.requests, wire_s),
            (
                f"connector, limit {LIMIT:g}/s (whole)",
                limited.batches_sent,
                limited.requests,
                limited.duration_s,
            ),
            ("mparticle SDK upload loop", len(models), calls, upload_s),
            ("mparticle SDK build + upload", len(models), calls, build_s + upload_s),
        ]
        print(f"\n{'run':<34}{'batches':>9}{'requests':>10}{'seconds':>9}{'batches/s':>11}")
        for name, batches, requests, secs in rows:
            print(f"{name:<34}{batches:>9,}{requests:>10,}{secs:>9.2f}{batches / secs:>11,.0f}")
        print(
            f"{'connector, limit sustained':<34}{counted:>9,}{'':>10}{seconds:>9.2f}"
            f"{sustained:>11,.1f}  ({sustained / LIMIT:.1%} of {LIMIT:g})"
        )
        print(
            f"connector / SDK upload: {ratio:.1f}x (connector run incl. query + preparation); "
            f"{wire_rate / sdk_rate:.1f}x over the connector's time on the wire"
        )
        pixel_dir = Path(tmp, "pixels")
        pixel_dir.mkdir()
        pixels(pixel_dir, build_warehouse(pixel_dir, args.pixel_rows))


if __name__ == "__main__":
    main()
