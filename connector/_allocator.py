"""Allocator settings that must be in place before polars loads; imported first.

Polars' jemalloc returns freed pages to the kernel almost at once, so every chunk
faults its memory in anew (a third of the connector's CPU went to page faults).
Keeping freed pages for jemalloc's usual 10 s lets each chunk reuse the last one's
memory. Peak memory is unchanged; a value the user set in `_RJEM_MALLOC_CONF` wins.
Must not: import polars (or anything that does).
"""

import os

os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:10000")
