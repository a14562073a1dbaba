"""BFA Ledger benchmarks (``make bench``; see bench/README.md).

Not part of the installed package: run from the repository root as
``python -m bench.run``. Every figure is printed beside a baseline measured in
the same run, and the ratio between them is what we quote.
"""
