"""The environment a worker's task processes start with, set before anything imports pyarrow.

`dags/pipespec_dags.py` applies it (as defaults: a deployment's own settings win) when a task
process parses the DAG file, before its step runs.

- `ARROW_DEFAULT_MEMORY_POOL=jemalloc`: Arrow's buffers from jemalloc. With Arrow's default
  allocator (mimalloc) a task that holds one batch at a time still grew with the rows it streamed:
  the extract of one CSV source peaked at 269 MB at 250k rows and 325 MB at 2.5M, while Arrow's own
  peak stayed at 47 -> 52 MB; with jemalloc 218 -> 228 MB, at the same speed (bench/data_throughput.py,
  the memory target, 1M -> 10M rows in 4 sources). glibc's malloc (`system`) grew the most. Arrow
  reads the variable once, when pyarrow is imported; a pyarrow built without jemalloc warns and keeps
  its default.
- `JE_ARROW_MALLOC_CONF=muzzy_decay_ms:0` (Arrow's jemalloc): freed pages go back to the OS when they
  decay, rather than being marked free-on-demand (MADV_FREE), which the kernel leaves counted in the
  process's RSS until it needs the memory. The largest extract task went from 205 -> 239 MB to
  201 -> 226 MB at 1M -> 10M rows, at the same speed (`dirty_decay_ms:0` as well: 180 -> 194 MB, but
  each task ~25% slower). jemalloc reads it at its first allocation, after pyarrow's import.
"""

from __future__ import annotations

import os

WORKER_ENVIRONMENT = {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc", "JE_ARROW_MALLOC_CONF": "muzzy_decay_ms:0"}


def use_worker_environment() -> None:
    """Set each of WORKER_ENVIRONMENT's variables that this process's environment does not set."""
    for name, value in WORKER_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
