"""Does run retention keep Postgres bounded? Repeated days of new runs and retention sweeps.

    .venv/bin/python -m bench.retention_cycles          # `make bench-storage` runs it (~1-2 min)
    .venv/bin/python -m bench.retention_cycles --cycles 20 --runs-per-day 1000 --no-vacuum

On a fresh Postgres 15 from the host's binaries (no Docker), with the deployment's storage:
seeds ``--history`` days of finished runs with their event logs (~12 events a run,
materializations of 40 assets included; bench.metrics_scrape's seeding), most of them older
than the retention. Then each cycle is one simulated day: a day's worth of new runs, one call of
``platform_services.janitor.retention.delete_old_runs`` (what the janitor runs every sweep, at most 2,000
runs a call) with ``--retention-days``, and ``VACUUM (ANALYZE)``: what autovacuum does in the
background, run explicitly so that the numbers do not depend on its timing (``--no-vacuum``
leaves it to autovacuum). Plain VACUUM makes the space of deleted rows reusable; it does not
give it back to the file system (except empty pages at the end of a table, which it truncates),
so a bounded database shows as a size that stops growing once a retention period of runs has
been replaced. Prints one row per cycle.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as db
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage

from bench.metrics_scrape import add_events, add_runs, fresh_instance
from platform_services.janitor.retention import delete_old_runs

MB = 1_000_000


def measure(run_storage: SqlRunStorage, vacuum: bool) -> tuple[int, int, int]:
    """(database bytes, runs, event_logs rows), after VACUUM when ``vacuum``."""
    with run_storage.connect() as connection:  # an AUTOCOMMIT connection: VACUUM needs one
        if vacuum:
            connection.execute(db.text("VACUUM (ANALYZE)"))
        size = connection.execute(db.text("SELECT pg_database_size(current_database())")).scalar_one()
        runs = connection.execute(db.text("SELECT count(*) FROM runs")).scalar_one()
        events = connection.execute(db.text("SELECT count(*) FROM event_logs")).scalar_one()
    return int(size), int(runs), int(events)


def add_day(instance: dg.DagsterInstance, day: datetime, runs: int, rng: random.Random) -> int:
    seeded = add_runs(instance, runs, day, day + timedelta(days=1), rng, finished_only=True)
    return add_events(instance, seeded, rng)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10, help="simulated days (default 10)")
    parser.add_argument("--runs-per-day", type=int, default=300, help="new runs a day (default 300)")
    parser.add_argument("--retention-days", type=float, default=3, help="the retention (default 3 days)")
    parser.add_argument("--history", type=int, default=7, help="days of old runs seeded first (default 7)")
    parser.add_argument("--no-vacuum", action="store_true", help="no explicit VACUUM: leave it to autovacuum")
    args = parser.parse_args(argv)
    rng = random.Random(7)
    load_start = os.getloadavg()[0]
    vacuum = not args.no_vacuum
    # Simulated days end today: day 0 of the history is (history + cycles) days ago.
    first_day = (datetime.now(UTC) - timedelta(days=args.history + args.cycles)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    #: (cycle, runs added, runs deleted, runs, event_logs rows, database bytes, sweep seconds)
    rows: list[tuple[str, int | None, int | None, int, int, int, float | None]] = []
    with fresh_instance() as (instance, _):
        run_storage = instance.run_storage
        assert isinstance(run_storage, SqlRunStorage)
        started = time.perf_counter()
        events = sum(
            add_day(instance, first_day + timedelta(days=day), args.runs_per_day, rng) for day in range(args.history)
        )
        seeding = time.perf_counter() - started
        size, runs, event_rows = measure(run_storage, vacuum)
        print(
            f"  seeded {args.history} days: {runs:,} runs, {events:,} events in {seeding:.1f} s; {size / MB:.1f} MB",
            flush=True,
        )
        rows.append(("seed", None, None, runs, event_rows, size, None))
        for cycle in range(1, args.cycles + 1):
            day = first_day + timedelta(days=args.history + cycle - 1)
            add_day(instance, day, args.runs_per_day, rng)
            started = time.perf_counter()
            sweep = delete_old_runs(instance, args.retention_days, now=day + timedelta(days=1))
            seconds = time.perf_counter() - started
            size, runs, event_rows = measure(run_storage, vacuum)
            rows.append((str(cycle), args.runs_per_day, len(sweep.deleted), runs, event_rows, size, seconds))
            print(f"  cycle {cycle}: deleted {len(sweep.deleted):,} runs in {seconds:.1f} s", flush=True)

    how = "VACUUM (ANALYZE) after each cycle" if vacuum else "autovacuum only"
    load = " / ".join(f"{value:.1f}" for value in (load_start, os.getloadavg()[0]))
    print(
        f"\nretention cycles: {args.runs_per_day} runs a day, retention {args.retention_days:g} days, "
        f"{args.history} days of history first; {how}; load average {load} (start / end)"
    )
    print(f"{'cycle':>6} {'added':>6} {'deleted':>8} {'runs':>7} {'event_logs':>11} {'db MB':>7} {'sweep s':>8}")
    for name, added, deleted, run_count, event_count, db_bytes, sweep_seconds in rows:
        numbers = ("" if added is None else f"{added:,}", "" if deleted is None else f"{deleted:,}")
        sweep_text = "" if sweep_seconds is None else f"{sweep_seconds:.1f}"
        print(
            f"{name:>6} {numbers[0]:>6} {numbers[1]:>8} {run_count:>7,} {event_count:>11,} "
            f"{db_bytes / MB:>7.1f} {sweep_text:>8}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
