"""The test harness of this repository, used by its tests and benchmarks; no image ships it.

- :mod:`testkit.stack`: ``Stack``, a real ``docker compose`` stack of this repo, driven
  through its gateway.
- :mod:`testkit.postgres`: ``running_postgres``, a throw-away Postgres 15 server from the
  host's binaries.
- :mod:`testkit.sample_api`: ``running_sample_api``, a real sample-api process and its
  admin API.
- :mod:`testkit.auth`: the auth service's files in a folder, and the service running against
  them as a process (``start_auth``).
- :mod:`testkit.pytest_plugin`: the ``api`` and ``sample_api_process`` fixtures, and the
  guard of the ``docker`` marker, in every pytest session of the workspace (``pytest11``).
"""
