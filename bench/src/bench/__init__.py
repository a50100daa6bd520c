"""The benchmarks (bench/README.md): this stack against stock Dagster settings, and its storage.

- ``python -m bench.run``: A/B of the whole stack (``make bench``, ``make bench-quick``).
- ``python -m bench.metrics_scrape`` and ``python -m bench.retention_cycles``: the metrics
  scrape and run retention on a throw-away Postgres (``make bench-storage``).
- ``bench/floor.py``: the modular_assets pipeline without Dagster, the runs' floor (run in that
  location's own environment).
"""
