"""Keep Dagster's run storage bounded: delete finished runs older than a retention period.

Deletes through Dagster's own API (``DagsterInstance.delete_run``: the run and its event
log), oldest first, in small batches, so no statement holds the tables for long. Never
deleted, whatever their age:

* a run that is not finished (queued, starting, started, canceling);
* the latest successful run of each job, so every job keeps a last good run;
* a run that holds the latest materialization of an asset, so every asset keeps its
  current value's lineage and metadata.

The storage janitor runs ``python -m platform_services.janitor.retention DAYS`` every sweep,
in a child process; the per-run files (compute logs, op outputs) it deletes by age itself.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.storage.dagster_run import FINISHED_STATUSES

from platform_services import audit_store

BATCH_SIZE = 100
#: At most this many runs per call: a first sweep over years of history spreads over several hours.
MAX_PER_SWEEP = 2000


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What one call deleted and kept (of the runs older than the cutoff)."""

    deleted: tuple[str, ...]
    kept: tuple[str, ...]


def protected_run_ids(instance: dg.DagsterInstance, job_names: set[str]) -> set[str]:
    """Runs kept whatever their age: the latest success of each job, the latest materialization of each asset."""
    # One query per job (a batch names a few): a JobBucket query returned more than
    # bucket_limit runs per job on Dagster 1.13's Postgres storage.
    protected = {
        record.dagster_run.run_id
        for job_name in job_names
        for record in instance.get_run_records(
            filters=dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
        )
    }
    materializations = instance.get_latest_materialization_events(instance.get_asset_keys())
    protected |= {event.run_id for event in materializations.values() if event is not None and event.run_id}
    return protected


def delete_old_runs(
    instance: dg.DagsterInstance,
    retention_days: float,
    now: datetime | None = None,
    limit: int = MAX_PER_SWEEP,
    batch_size: int = BATCH_SIZE,
) -> Sweep:
    """Delete up to ``limit`` finished runs created more than ``retention_days`` ago, oldest first."""
    if retention_days <= 0:
        return Sweep(deleted=(), kept=())
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    old = dg.RunsFilter(statuses=list(FINISHED_STATUSES), created_before=cutoff)
    deleted: list[str] = []
    kept: list[str] = []
    # In storage order (oldest first). The cursor is the last *kept* run: a deleted one can no
    # longer anchor a page, and the runs before a kept one are all deleted or kept already.
    cursor = None
    while len(deleted) < limit:
        batch = instance.get_run_records(filters=old, limit=batch_size, ascending=True, cursor=cursor)
        if not batch:
            break
        protected = protected_run_ids(instance, {record.dagster_run.job_name for record in batch})
        for record in batch:
            run_id = record.dagster_run.run_id
            if run_id in protected:
                kept.append(run_id)
                cursor = run_id
            elif len(deleted) < limit:
                instance.delete_run(run_id)
                deleted.append(run_id)
            else:
                break
    return Sweep(deleted=tuple(deleted), kept=tuple(kept))


def prune_audit_log(instance: dg.DagsterInstance, retention_days: float) -> int:
    """Delete the audit records older than ``retention_days`` (0: none); how many."""
    connect = getattr(instance.run_storage, "connect", None)
    if retention_days <= 0 or connect is None:
        return 0
    with connect() as connection:
        return audit_store.prune(connection, retention_days)


def main(argv: list[str]) -> int:
    """``python -m platform_services.janitor.retention DAYS [AUDIT_DAYS]``: one call on $DAGSTER_HOME's instance."""
    try:
        retention_days = float(argv[0])
        audit_days = float(argv[1]) if len(argv) > 1 else 0.0
    except (IndexError, ValueError):
        print(
            "usage: python -m platform_services.janitor.retention DAYS [AUDIT_DAYS]  (finished runs older "
            "than DAYS, and audit records older than AUDIT_DAYS, are deleted)"
        )
        return 2
    try:
        with dg.DagsterInstance.get() as instance:
            result = delete_old_runs(instance, retention_days)
            audited = prune_audit_log(instance, audit_days)
    except Exception as error:  # the janitor logs it and tries again at its next sweep
        print(f"could not delete old runs ({type(error).__name__}: {error}); is Postgres up?")
        return 1
    print(f"deleted {len(result.deleted)} run(s) older than {retention_days:g} days, kept {len(result.kept)}")
    if audit_days:
        print(f"deleted {audited} audit record(s) older than {audit_days:g} days")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
