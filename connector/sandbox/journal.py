"""The sandbox's journal (`--journal`): a file of JSON lines, `{key: value}` each, opened
owner-only and never through a link, appended and flushed before an answer, read back on
start so a restarted sandbox remembers (what the lines mean is `records`' business).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from connector import files
from connector.errors import ConfigError


def _open(path: Path) -> IO[str]:
    """`path` opened to read and append, created owner-only (it holds hashed PII), never
    through a symbolic link, and only a regular file of this user with no other link
    that is empty or a journal; ConfigError otherwise (the file left as it was)."""
    what = "--journal"
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, files.OWNER_ONLY)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            files.refuse_link(path, what, "give the path of a regular file")
        raise ConfigError(f"{what}: {path} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            problem = "is not a regular file"
        elif info.st_uid != os.geteuid():
            problem = "belongs to another user"
        elif info.st_nlink > 1:
            problem = "has other hard links (it would write through them)"
        elif info.st_size and os.pread(fd, 2, 0) != b'{"':  # every journal line starts so
            problem = "is not a sandbox journal (it holds other data)"
        else:
            problem = ""
        if problem:
            raise ConfigError(f"{what}: {path} {problem}; give another path")
        os.fchmod(fd, files.OWNER_ONLY)
        return os.fdopen(fd, "a+", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


class Journal:
    """An open journal file; once closed it writes nothing and its lines stay for the
    next sandbox."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] | None = _open(path)

    def events(self) -> Iterator[Any]:
        """Each line's value, from the first; a line that is no JSON is skipped (the last
        one, cut short when a sandbox was killed)."""
        file = self._file
        if file is None:
            return
        file.seek(0)
        for line in file:
            try:
                yield json.loads(line)
            except ValueError:
                continue
        file.seek(0, os.SEEK_END)

    def append(self, key: str, values: Iterable[object]) -> None:
        """Append a `{key: value}` line per value, in one write, and flush."""
        if self._file is not None:
            lines = "".join(json.dumps({key: v}, separators=(",", ":")) + "\n" for v in values)
            if lines:
                self._file.write(lines)
                self._file.flush()

    def truncate(self) -> None:
        if self._file is not None:
            self._file.truncate(0)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
