"""The sandbox's journal: a killed sandbox started again on it remembers what it received
and accepted; the file is private and never written through a link.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sandbox_helpers import BULK, SANDBOX_AUTH, answer, batch, bulk

from connector.sandbox import Sandbox, SandboxSettings


def test_the_journal_brings_back_what_a_killed_sandbox_received(tmp_path: Path) -> None:
    journal = tmp_path / "sandbox.journal"
    first = Sandbox(SandboxSettings(journal=journal))
    answer(first, bulk([batch(0), batch(1)]))
    answer(first, bulk([batch(1)]))  # resent
    with journal.open("a", encoding="utf-8") as file:
        file.write('{"receipt": "cut sho')  # the line a SIGKILL interrupted

    again = Sandbox(SandboxSettings(journal=journal))
    assert again.recorded() == first.recorded()
    for key in ("batches", "unique_confirmationrefs", "resent", "max_receipts"):
        assert again.stats()[key] == first.stats()[key]
    answer(again, bulk([batch(0)]))  # still known after the restart
    other_id = batch(1) | {"source_request_id": "another-request-id"}
    answer(again, bulk([other_id]))  # the same conversion under a new id
    stats = again.stats()
    assert (stats["resent"], stats["duplicate_confirmationrefs"]) == (2, 1)
    again.reset()
    assert journal.read_text() == ""
    first.close()
    again.close()
    empty = Sandbox(SandboxSettings(journal=journal))
    assert empty.stats()["batches"] == 0
    empty.close()


def test_a_journal_written_before_records_named_their_transport_still_replays(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "sandbox.journal"
    first = Sandbox(SandboxSettings(journal=journal))
    answer(first, bulk([batch(0)]))
    first.close()
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    for line in lines:
        line.get("accepted", {}).pop("transport", None)
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    again = Sandbox(SandboxSettings(journal=journal))
    [record] = again.recorded()["batches"]
    assert (record["confirmationref"], record["transport"]) == ("ORD-00000", "events_api")
    answer(again, bulk([batch(0)]))
    assert again.stats()["resent"] == 1
    again.close()


def test_the_journal_is_private_and_never_written_through_a_link(
    sandbox_factory: Callable[..., Any], tmp_path: Path
) -> None:
    journal = tmp_path / "sandbox.journal"
    sandbox = sandbox_factory("--journal", str(journal))
    with httpx.Client(auth=SANDBOX_AUTH) as client:
        assert client.post(sandbox.url + BULK, content=bulk([batch(0)])).status_code == 202
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600  # it holds hashed PII
    sandbox.kill()
    journal.chmod(0o644)
    sandbox.restart()  # appends to its own journal, and makes it private again
    assert sandbox.accepted_refs() == ["ORD-00000"]
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600

    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's data\n", encoding="utf-8")
    victim.chmod(0o644)
    (tmp_path / "link.journal").symlink_to(victim)
    (tmp_path / "dangling.journal").symlink_to(tmp_path / "planted.txt")
    os.link(victim, tmp_path / "hard.journal")
    passwd = tmp_path / "passwd"  # one's own file that is no journal (as root: /etc/passwd)
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    passwd.chmod(0o644)
    command = [sys.executable, "-m", "connector", "sandbox", "--port", "0", "--journal"]
    for path, says in [
        (tmp_path / "link.journal", f"is a symbolic link to {victim}"),
        (tmp_path / "dangling.journal", f"is a symbolic link to {tmp_path / 'planted.txt'}"),
        (tmp_path / "hard.journal", "has other hard links"),
        (passwd, "is not a sandbox journal"),
    ]:
        started = subprocess.run(
            [*command, str(path)],
            capture_output=True,
            text=True,
            timeout=20,  # a sandbox that started would serve until killed
            env={**os.environ, "COLUMNS": "200"},
            check=False,
        )
        assert (started.returncode, started.stdout) == (2, ""), started.stderr
        assert f"--journal: {path} {says}" in started.stderr
    assert victim.read_text(encoding="utf-8") == "the victim's data\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not (tmp_path / "planted.txt").exists()
    assert passwd.read_text(encoding="utf-8").startswith("root:x:0:0")
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o644
