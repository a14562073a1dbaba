"""Subprocess entry for memory measurements: ``python -m bench._child MODE HOME URL``.

``verify``: open the ledger and run a full ``Ledger.verify()`` (chain and derived
pass, as ``bfa verify`` does). ``open``: open the ledger and read its size only
(the baseline: interpreter, imports, engine, one query). Prints one JSON object
on stdout, with this process's peak RSS read from ``/proc/self/status``
(``VmHWM``; the high-water mark of this process's own address space, which
``ru_maxrss`` is not: after ``vfork``/``exec`` it also counts the parent's).
"""

from __future__ import annotations

import json
import sys
import time


def _vm_hwm_kib() -> int:
    """This process's peak resident set size (``VmHWM``), KiB; 0 when unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    mode, home, url = argv
    from ledger import Ledger

    t0 = time.perf_counter()
    led = Ledger.open(home, url)
    try:
        if mode == "verify":
            res = led.verify()
            out = {"ok": res.ok, "entries": res.entries_checked,
                   "derived": res.derived_checked, "problems": [p.message for p in res.problems]}
        elif mode == "open":
            out = {"ok": True, "entries": led.size()}
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        led.close()
    out["seconds"] = time.perf_counter() - t0
    out["vm_hwm_kib"] = _vm_hwm_kib()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
