"""Allocator settings for a process that churns through chunks; imported first.

Each chunk allocates and frees the same large amounts (strings, request bodies), and
by default both allocators hand freed memory straight back to the kernel, so every
chunk faulted its memory in anew: a third of the connector's CPU went to page faults.
- polars' jemalloc: keep freed pages for jemalloc's usual 10 s (polars sets 0.5 s),
  except in a `sync`, `backfill` or `audiences` run from the command line: the platform's rate
  limit paces those, so page faults cost them no time, and they run unattended for
  hours, so they hand freed pages back at once (55 MB less at its peak in
  bench/memory.py; `bench/prepare.py` runs a third slower that way). A value the user
  puts in `_RJEM_MALLOC_CONF` still wins. Must be set before polars loads.
- glibc's malloc (Python `bytes` of request bodies, up to 256 KB): serve them from
  the heap instead of a fresh mmap each, and keep up to 32 MB of freed heap. Two
  arenas, not one per thread (the default, 8 per core): each arena kept its own
  freed memory, 40-60 MB in all in a long sync (bench/memory.py). Freed bodies sit
  between live ones, where the trim threshold never reaches them: `release_free_memory`
  hands such holes back (`malloc_trim`), once per chunk of a sync.
Must not: import polars (or anything that does).
"""

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

KEEP_FREED_PAGES = "dirty_decay_ms:10000"
RETURN_FREED_PAGES = "dirty_decay_ms:0,muzzy_decay_ms:0"
PACED_COMMANDS = frozenset({"sync", "backfill", "audiences"})


def cli_command(argv: list[str]) -> str | None:
    """The command this process runs when it is the CLI (`rokt-connector COMMAND ...`,
    or `python -m connector COMMAND ...`, whose argv[0] is "-m" while the package
    loads); None for any other program."""
    program = argv[0] if argv else ""
    if program != "-m" and Path(program).name != "rokt-connector":
        return None
    return next((arg for arg in argv[1:] if not arg.startswith("-")), None)


def jemalloc_conf(argv: list[str]) -> str:
    """polars' jemalloc settings for a process started with `argv`."""
    return RETURN_FREED_PAGES if cli_command(argv) in PACED_COMMANDS else KEEP_FREED_PAGES


os.environ.setdefault("_RJEM_MALLOC_CONF", jemalloc_conf(sys.argv))

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc <malloc.h>
_libc_name = ctypes.util.find_library("c") if sys.platform == "linux" else None
_libc = ctypes.CDLL(_libc_name) if _libc_name else None
_mallopt = getattr(_libc, "mallopt", None)  # glibc only (not musl)
_malloc_trim = getattr(_libc, "malloc_trim", None)
if _mallopt is not None:
    _mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    _mallopt(_M_TRIM_THRESHOLD, 32 << 20)
    _mallopt(_M_ARENA_MAX, 2)


def release_free_memory() -> None:
    """Give the free pages inside glibc's heaps back to the system (a few ms)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
