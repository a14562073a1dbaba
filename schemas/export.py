"""Entry point: ``python -m schemas.export [--check]`` (see ``schemas._export``)."""

from __future__ import annotations

from schemas._export import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
