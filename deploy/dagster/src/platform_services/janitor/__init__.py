"""The storage janitor: keeps the shared storage volume and Dagster's run storage bounded.

Runs write two kinds of per-run folders, named by run id: compute logs
(`compute_logs/<run_id>/` in the shared storage volume) and op outputs of the
filesystem IO manager (`<run_id>/` in their location's IO volume, mounted here at
`/opt/dagster/io/<location>`; `storage/<run_id>/` in volumes of older stacks).
Asset values (`<asset key>/`) are kept: they are overwritten by each
materialization and later runs may load them. Finished runs older than their own
retention are deleted from Postgres through Dagster's API (:mod:`.retention`).

    DAGSTER_STORAGE_RETENTION_DAYS   keep per-run folders this many days (default 14)
    JANITOR_INTERVAL_SECONDS         sweep this often (default 3600)
    DAGSTER_IO_DIR                   where the IO volumes are mounted (default /opt/dagster/io)
    DAGSTER_RUN_RETENTION_DAYS       delete finished runs (and their event logs) older than this
                                     from Postgres (default 90; 0 keeps them), through Dagster's API:
                                     .retention, which keeps the latest success of each job and the
                                     latest materialization of each asset

    python -m platform_services.janitor          sweep every JANITOR_INTERVAL_SECONDS
    python -m platform_services.janitor --once   one sweep, then exit (operators, tests)
Tick history is purged by dagster.yaml's retention.

Nothing here imports Dagster but :mod:`.retention`, which the sweep runs in a child process.
"""
