"""Owns the files the connector writes itself (the ledger's marker, exports): none
written through a symbolic link or into a directory, each owner-only from its first
byte (mode set on the descriptor, never on a path), put in place by one atomic rename.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from connector.errors import ConfigError

OWNER_ONLY = 0o600


def refuse_link(path: Path, what: str, fix: str = "remove the link") -> None:
    """ConfigError (exit 2) when `path` is a symbolic link, saying where it points."""
    if path.is_symlink():
        raise ConfigError(
            f"{what}: {path} is a symbolic link to {os.readlink(path)}; rokt-connector "
            "opens its files only at their own path, never through a link (which could "
            f"make it overwrite another file): {fix}"
        )


def check_target(path: Path, what: str, fix: str = "remove the link") -> None:
    """A file may be written at `path`: it is no link nor directory, and its directory
    exists (ConfigError otherwise)."""
    refuse_link(path, what, fix)
    if path.is_dir():
        raise ConfigError(f"{what}: {path} is a directory; name a file to write")
    if not path.parent.is_dir():
        raise ConfigError(f"{what}: the directory {path.parent} does not exist")


def _fresh(path: Path) -> tuple[int, Path]:
    """A new owner-only file of a random name beside `path`, open for writing.
    (`mkstemp` opens it with O_CREAT|O_EXCL|O_NOFOLLOW: it is never an existing file.)"""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.fchmod(fd, OWNER_ONLY)
    return fd, Path(name)


@contextlib.contextmanager
def replacing(path: Path, what: str) -> Iterator[IO[str]]:
    """Text written to the block's file lands at `path` (owner-only) in one rename
    when the block ends, or not at all (`check_target` first)."""
    check_target(path, what)
    fd, temp = _fresh(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


@contextlib.contextmanager
def written_by_another(path: Path, what: str, fix: str) -> Iterator[Path]:
    """A path for another program (DuckDB's COPY) to write, in a new private (0700)
    directory beside `path` (`check_target` first, with `fix`); when the block ends,
    the file it wrote is made owner-only and renamed to `path`. The directory is
    removed in any case."""
    check_target(path, what, fix)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        temp = folder / path.name
        yield temp
        _owner_only(temp)
        os.replace(temp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def restrict(path: Path) -> None:
    """Make the regular file at `path`, if there is one readable by others, owner-only
    (through a descriptor opened without following a link)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077:
        _owner_only(path)


def _owner_only(path: Path) -> None:
    """Mode 0600 through a descriptor opened without following a link (ELOOP for one)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        os.fchmod(fd, OWNER_ONLY)
    finally:
        os.close(fd)
