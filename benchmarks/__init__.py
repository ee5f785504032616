"""Reproducible figures of the connector and its sandbox (``make bench``); not part of ``make test``.

Run a benchmark from the repository root as a module, e.g. ``.venv/bin/python -m benchmarks.backfill_bench``.
"""
