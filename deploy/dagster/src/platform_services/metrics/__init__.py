"""Prometheus metrics of the deployment: runs, the run queue, daemons, code locations, assets, ticks, volumes.

    python -m platform_services.metrics       # the `metrics` service; reads $DAGSTER_HOME/dagster.yaml

Settings, from the environment (a bad value exits 2 with one line naming it):

    METRICS_HOST       address to listen on (default 0.0.0.0)
    METRICS_PORT       port (default 9102)
    METRICS_WORKSPACE  the workspace.yaml whose grpc_server locations are probed
                       (default $DAGSTER_HOME/workspace.yaml)
    METRICS_VOLUMES    comma-separated name=path pairs whose file system usage is reported,
                       e.g. storage=/opt/dagster/storage,postgres=/var/lib/postgresql/data
                       (statvfs needs no read access to the folder itself; default: none)

Endpoints: ``GET /metrics`` (Prometheus text format), ``GET /health`` ("ok" whenever the
process serves; never touches Postgres), ``POST /alerts`` (Alertmanager's webhook: one
``ALERT <status> <alertname> severity=... <labels>: <summary>`` line per alert on stdout).

Everything is read when Prometheus scrapes, in a few statements whatever the size of the run
history (one GROUP BY over the runs, the runs updated since the last scrape, the heartbeats,
the asset table, the instigators and their recent failed ticks); the code servers are probed
concurrently meanwhile. When Postgres is down a scrape still answers, within the connect
timeout of dagster.yaml, with ``dagster_storage_up 0`` and the location and volume metrics;
the problem is logged once, not every scrape. The metrics (all gauges unless noted):

    dagster_runs{location,job,status}                  runs in storage
    dagster_run_duration_seconds{location,job,status}  histogram: runs that finished since the
                                                       exporter started, end - start (0 if never started)
    dagster_run_queue_length, dagster_run_queue_oldest_age_seconds
    dagster_daemon_heartbeat_age_seconds{daemon}       each daemon the instance requires
    dagster_code_location_loaded{location}             1 when its server serves and its code loaded
    dagster_asset_last_materialization_timestamp_seconds{location,asset}
    dagster_tick_failures_total{location,instigator,type}  counter, since the exporter started
    dagster_volume_size_bytes{volume}, dagster_volume_used_bytes{volume},
    dagster_volume_used_ratio{volume}                  used / (used + available), as df's Use%
    dagster_storage_up, dagster_scrape_duration_seconds

``location`` is a run's ``dagster/code_location`` tag, which Dagster sets on every run it
launches from a code location ("" for runs without it, e.g. ``execute_in_process``).

The modules: ``settings`` (the environment, checked), ``queries`` (the statements a scrape
runs where Dagster has no API), ``collector`` (what a scrape reads and reports), ``http``
(the endpoints) and ``__main__`` (the service).
"""
