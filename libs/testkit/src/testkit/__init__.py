"""The test harness of this repository, used by its tests and benchmarks; no image ships it.

- :mod:`testkit.stack`: ``Stack``, a real ``docker compose`` stack of this repo, driven
  through its gateway.
- :mod:`testkit.postgres`: ``running_postgres``, a throw-away Postgres 15 server from the
  host's binaries.
"""
