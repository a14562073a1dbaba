"""Pausing Python's cyclic garbage collector while a run builds its many small objects.

A nightly run decodes tens of thousands of entries and builds as many findings, report
items and JSON lines. None of them form reference cycles (tuples, dicts, strings,
pydantic models: reference counting frees them), but each allocation counts towards the
collector's thresholds, and every collection of the oldest generation walks the whole
heap (the ORM's caches, the run's rows). Measured on the 2M-event benchmark, those
collections were a fifth of a nightly run (4.3 s -> 3.4 s without them). The few cycles a
run does create are collected when the collector is switched back on, at the end of the
run; they stay few however large the run: a refresh leaves about ten objects in cycles
per chunk of 5,000 entries (measured: 60 for 30,000 entries, 600 with chunks of 500),
so memory stays flat while decoding millions of entries.

Few is not small, though: those cycles are SQL statement objects, and each holds the
list of up to 500 ids it was bound to. A run that streams its breaks in parts
(``derive_breaks``, ``stream_report``) makes a look-up or two per part, so it collects
the youngest generation after each part (what that part allocated, nothing older): with
the cycles left, ``bfa bundle export`` of 110,000 entries grew by 17 MB; collected, flat,
for about 2 % of the run's time (bench/ARCHIVE.md).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def paused_gc(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with the cyclic collector off, restoring its previous state after
    (nesting is harmless: only the outermost call switches it back on)."""

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return run


def collect_young() -> None:
    """While the collector is paused, collect the youngest generation: what was allocated
    since the last call (never the older heap a full collection would walk). A loop over
    chunks or parts calls it after each, so that the statement cycles a chunk leaves
    (each holding its list of ids) do not pile up until the run ends."""
    if not gc.isenabled():
        gc.collect(0)
