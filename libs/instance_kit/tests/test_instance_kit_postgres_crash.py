"""PooledPostgresStorage when Postgres crashes (kill -9) with runs in flight.

A real Postgres 15 (testkit.postgres) is killed with SIGKILL, the postmaster and every
backend at once, as when its container dies, and started again on the same data folder and
port, where it runs crash recovery first ("the database system is starting up"). The run
workers are real ones (``dagster api execute_run``, what the run launcher starts in a run
container) in child processes. docs/decisions.md#storage-calls-wait-out-a-postgres-restart

``INSTANCE_KIT_CRASH_STORAGE=stock`` runs the run-level trials against dagster-postgres' own
storage instead (``module:Class`` names another one): they fail there, which is the point.
"""

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
import sqlalchemy
import yaml
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.api import create_execution_plan
from dagster._core.instance import DagsterInstance
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    AssetEventTagsTable,
    SqlEventLogStorageTable,
)
from dagster._core.utils import make_new_run_id
from dagster._grpc.types import ExecuteRunArgs

from instance_kit import storage
from testkit.postgres import PASSWORD, PostgresServer, running_postgres

# --- the jobs the run workers execute (they load this file by its path) --------------------

STEPS = 5
OBSERVATIONS = 30  # per step: the worker stores events back to back, so a kill lands mid-call


@dg.op
def busy(context: dg.OpExecutionContext, upstream: int = 0) -> int:
    time.sleep(0.3)
    for i in range(OBSERVATIONS):
        context.log_event(dg.AssetObservation(asset_key=f"crash_{context.op.name}", metadata={"i": i}))
    return upstream + 1


@dg.op
def reject_bad_data(value: int) -> int:
    raise ValueError(f"bad record: {value}")  # a genuine data failure


@dg.job(executor_def=dg.in_process_executor)
def crash_job() -> None:
    value = busy.alias("step_1")()
    for n in range(2, STEPS + 1):
        value = busy.alias(f"step_{n}")(value)


@dg.job(executor_def=dg.in_process_executor)
def bad_data_job() -> None:
    reject_bad_data(busy.alias("step_1")())


DEFS = dg.Definitions(jobs=[crash_job, bad_data_job])


# --- a Postgres that can crash ----------------------------------------------------------------


class CrashablePostgres:
    """The server, run as this process' child (pg_ctl's postmaster would be nobody's, and its
    zombie would hold the lock file), so that it can be killed -9 and started again."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.process: subprocess.Popen[bytes] | None = None
        self.url = (
            f"postgresql+psycopg2://dagster:{PASSWORD}@127.0.0.1:{server.port}/dagster?connect_timeout=5"
            "&application_name=observer"
        )

    def start(self) -> None:
        with open(self.server.data_dir / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [*self.server.run_as, "postgres", "-D", str(self.server.data_dir)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while not self._ready():  # what pg_ctl -w waits for: "ready" in postmaster.pid
            assert self.process.poll() is None, (self.server.data_dir / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Postgres did not start"
            time.sleep(0.02)

    def _ready(self) -> bool:
        try:
            lines = (self.server.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready" and int(lines[0]) == self._postmaster_pid()

    def _postmaster_pid(self) -> int:
        """The postgres process under this one (``runuser`` sits in between as root)."""
        assert self.process is not None
        if not self.server.run_as:
            return self.process.pid
        children = _children(self.process.pid)
        return children[0] if children else -1

    def kill(self) -> None:
        """SIGKILL to the postmaster and all its children at once, as when the container dies."""
        assert self.process is not None
        postmaster = self._postmaster_pid()
        for pid in [postmaster, *_children(postmaster)]:
            with contextlib.suppress(ProcessLookupError):  # ended by itself meanwhile
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        self.server.pg_ctl("stop", "-m", "immediate")
        if self.process is not None:
            self.process.wait(timeout=10)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):  # ended meanwhile
            continue
    return found


@pytest.fixture(scope="module")
def postgres() -> Iterator[CrashablePostgres]:
    """A server of this module's own: killing the session's would break the other tests' pools."""
    with running_postgres() as server:
        server.pg_ctl("stop", "-m", "fast")  # started by pg_ctl: start it again as a child
        crashable = CrashablePostgres(server)
        crashable.start()
        try:
            yield crashable
        finally:
            if crashable.process is not None and crashable.process.poll() is not None:
                crashable.start()  # running_postgres stops the server itself
    if crashable.process is not None:
        crashable.process.wait(timeout=10)


def _storage_config(postgres: CrashablePostgres) -> dict[str, Any]:
    db = {**postgres.server.db_config, "params": {"application_name": "crash-test", "connect_timeout": 5}}
    choice = os.environ.get("INSTANCE_KIT_CRASH_STORAGE", "instance_kit.storage:PooledPostgresStorage")
    if choice == "stock":
        return {"postgres": {"postgres_db": db}}
    module, cls = choice.split(":")
    return {"custom": {"module": module, "class": cls, "config": {"postgres_db": db}}}


@pytest.fixture
def home(tmp_path: Path, postgres: CrashablePostgres) -> Path:
    """DAGSTER_HOME with dagster.yaml's storage and run retry policy."""
    config = {
        "storage": _storage_config(postgres),
        "run_retries": {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False},
        "telemetry": {"enabled": False},
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def _events(instance: DagsterInstance, run_id: str) -> list[EventLogEntry]:
    return [record.event_log_entry for record in instance.get_records_for_run(run_id, limit=10_000).records]


def _count(events: list[EventLogEntry], event_type: DagsterEventType, step_key: str | None = None) -> int:
    return sum(1 for e in events if e.dagster_event_type == event_type and (step_key is None or e.step_key == step_key))


# --- storage level ---------------------------------------------------------------------------


def _event(run_id: str, i: int) -> EventLogEntry:
    """Event ``i``: a log message, or (every third) a materialization with an indexed tag."""
    dagster_event = None
    if i % 3 == 0:
        materialization = dg.AssetMaterialization(f"crash_asset_{i % 4}", tags={"dagster/data_version": f"v{i}"})
        dagster_event = DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION.value,
            "crash_job",
            event_specific_data=StepMaterializationData(materialization),
        )
    return EventLogEntry(None, logging.INFO, f"event {i}", run_id, time.time(), dagster_event=dagster_event)


def _check_event(run_id: str) -> EventLogEntry:
    evaluation = dg.AssetCheckEvaluation(dg.AssetKey("crash_asset_0"), "crash_check", passed=True)
    dagster_event = DagsterEvent(
        DagsterEventType.ASSET_CHECK_EVALUATION.value, "crash_job", event_specific_data=evaluation
    )
    return EventLogEntry(None, logging.INFO, "check", run_id, time.time(), dagster_event=dagster_event)


def _rows(instance: DagsterInstance, run_id: str) -> tuple[list[str], int, int]:
    """The run's event messages, and how many asset event tags and asset check rows it has."""
    engine = instance.event_log_storage._engine  # type: ignore[attr-defined]
    ids = sqlalchemy.select(SqlEventLogStorageTable.c.id).where(SqlEventLogStorageTable.c.run_id == run_id)
    with engine.connect() as conn:
        tags = conn.execute(
            sqlalchemy.select(sqlalchemy.func.count()).where(AssetEventTagsTable.c.event_id.in_(ids))
        ).scalar_one()
        checks = conn.execute(
            sqlalchemy.select(sqlalchemy.func.count()).where(AssetCheckExecutionsTable.c.run_id == run_id)
        ).scalar_one()
    return sorted(e.user_message for e in _events(instance, run_id)), tags, checks


def test_store_event_stores_every_event_exactly_once_through_a_kill(
    home: Path, postgres: CrashablePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    instance = DagsterInstance.from_config(str(home))
    run_id, total, written = make_new_run_id(), 300, [0]
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(total):
                instance.handle_new_event(_event(run_id, i))
                written[0] = i + 1
        except BaseException as error:
            errors.append(error)

    writer = threading.Thread(target=write)
    with caplog.at_level(logging.WARNING, logger=storage.__name__):
        writer.start()
        _wait_until(lambda: written[0] >= 50 or not writer.is_alive(), "50 events written")
        postgres.kill()
        killed_at = written[0]
        time.sleep(2)
        postgres.start()
        writer.join(timeout=60)
    assert not errors, f"{errors[0]!r} escaped store_event"
    assert killed_at < total, "the writer was done before the kill"
    assert any("retrying" in r.getMessage() for r in caplog.records), "no retry: did the kill land?"
    messages, tags, _ = _rows(instance, run_id)
    assert messages == sorted(f"event {i}" for i in range(total)), "an event is missing or stored twice"
    assert tags == len(range(0, total, 3)), "asset event tags missing or doubled"


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO event_logs",  # committed, then the NOTIFY fails: not inserted again
        "INSERT INTO asset_event_tags",  # inside the index transaction...
        "INSERT INTO asset_keys",  # ...then its COMMIT fails
        "UPDATE asset_check_executions",  # no planned row: the INSERT that follows fails
    ],
)
def test_a_kill_right_after_each_statement_of_store_event_stores_it_once(
    home: Path, postgres: CrashablePostgres, statement: str
) -> None:
    instance = DagsterInstance.from_config(str(home))
    engine = instance.event_log_storage._engine  # type: ignore[attr-defined]
    run_id, killed = make_new_run_id(), threading.Event()

    def kill_after(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        if sql.lstrip().startswith(statement) and not killed.is_set():
            killed.set()
            postgres.kill()
            threading.Timer(1.0, postgres.start).start()

    sqlalchemy.event.listen(engine, "after_cursor_execute", kill_after)
    try:
        for event in [_event(run_id, 0), _check_event(run_id), _event(run_id, 3), _event(run_id, 6)]:
            instance.handle_new_event(event)  # 0, 3 and 6: materializations with a tag each
    finally:
        sqlalchemy.event.remove(engine, "after_cursor_execute", kill_after)
    assert killed.is_set()
    _wait_until(lambda: postgres._ready(), "Postgres back")
    assert _rows(instance, run_id) == (["check", "event 0", "event 3", "event 6"], 3, 1)


def test_a_retried_insert_that_had_committed_is_not_inserted_again(home: Path) -> None:
    """The INSERT whose answer was lost: the retry finds the row instead of adding a second one."""
    instance = DagsterInstance.from_config(str(home))
    event_log = instance.event_log_storage
    assert isinstance(event_log, storage.PooledPostgresEventLogStorage)
    run_id = make_new_run_id()
    row = event_log._event_to_row(_event(run_id, 1))
    first = event_log.insert_event_row(row, after_failure=False)
    assert event_log.insert_event_row(row, after_failure=True) == first
    assert len(_events(instance, run_id)) == 1


def test_genuine_database_errors_are_raised_at_once(home: Path, postgres: CrashablePostgres) -> None:
    instance = DagsterInstance.from_config(str(home))
    engine = instance.run_storage._engine  # type: ignore[attr-defined]
    tries = [0]

    def run(sql: str, engine: sqlalchemy.Engine = engine) -> Callable[[bool], object]:
        def call(_: bool) -> object:
            tries[0] += 1
            with engine.connect() as conn:
                return conn.execute(sqlalchemy.text(sql))

        return call

    wrong_password = sqlalchemy.create_engine(postgres.url.replace(PASSWORD, "wrong"))
    genuine = {
        "bad SQL": run("select * from no_such_table"),
        "a duplicate key": run(
            "insert into runs (run_id, run_body, status) select run_id, run_body, status from runs limit 1"
        ),
        "a statement timeout": run("set statement_timeout = 10; select pg_sleep(1)"),
        "a wrong password": run("select 1", wrong_password),
    }
    instance.add_run(dg.DagsterRun(job_name="seed", run_id=make_new_run_id()))  # a row to duplicate
    for what, call in genuine.items():
        tries[0] = 0
        with pytest.raises(sqlalchemy.exc.DBAPIError) as raised:
            storage.retrying(call, what, budget=30)
        assert tries[0] == 1, f"{what} was retried"
        assert not storage.is_transient(raised.value), what
    refused = sqlalchemy.create_engine(postgres.url.replace(str(postgres.server.port), "1"))
    with pytest.raises(storage.StorageUnavailableError):
        storage.retrying(run("select 1", refused), "connection refused", budget=0.5)
    assert tries[0] > 2, "connection refused was not retried"
    tries[0] = 0
    with pytest.raises(sqlalchemy.exc.OperationalError):  # a budget of 0: one try, its own error
        storage.retrying(run("select 1", refused), "one try", budget=0)
    assert tries[0] == 1


# --- run level -------------------------------------------------------------------------------


def _launch(instance: DagsterInstance, home: Path, job_name: str) -> tuple[str, subprocess.Popen[bytes], Path]:
    """A run, executed by a real run worker (the command run containers run) in a child process."""
    recon = ReconstructableJob(ReconstructableRepository.for_file(__file__, "DEFS"), job_name)
    job_def = recon.get_definition()
    origin = recon.get_python_origin()
    run = instance.create_run_for_job(job_def, execution_plan=create_execution_plan(recon), job_code_origin=origin)
    args = ExecuteRunArgs(
        job_origin=origin, run_id=run.run_id, instance_ref=instance.get_ref(), set_exit_code_on_failure=True
    )
    log = home / f"worker-{run.run_id}.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "api", "execute_run", dg.serialize_value(args)],
            env={**os.environ, "DAGSTER_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return run.run_id, worker, log


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 60, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


#: Where the trials kill Postgres: as soon as this many events of this type (and step) are stored.
KILL_POINTS = {
    "run start (outside steps)": (DagsterEventType.RUN_START, None, 1),
    "step start": (DagsterEventType.STEP_START, "step_2", 1),
    "mid-step, storing observations": (DagsterEventType.ASSET_OBSERVATION, "step_3", 10),
    "step output handled, before its success": (DagsterEventType.HANDLED_OUTPUT, "step_4", 1),
    "last step's success, before the run's": (DagsterEventType.STEP_SUCCESS, f"step_{STEPS}", 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_a_run_survives_postgres_killed_under_it(home: Path, postgres: CrashablePostgres, kill_point: str) -> None:
    """kill -9 mid-run, Postgres back ~3 s later (as its container restarts): the run succeeds by
    itself, every step once, every event once."""
    event_type, step_key, count = KILL_POINTS[kill_point]
    instance = DagsterInstance.from_config(str(home))
    run_id, worker, log = _launch(instance, home, "crash_job")
    observer = sqlalchemy.create_engine(postgres.url, poolclass=sqlalchemy.pool.NullPool)
    query = sqlalchemy.select(sqlalchemy.func.count()).where(
        SqlEventLogStorageTable.c.run_id == run_id,
        SqlEventLogStorageTable.c.dagster_event_type == event_type.value,
        SqlEventLogStorageTable.c.step_key == step_key if step_key else sqlalchemy.true(),
    )

    def reached() -> bool:
        assert worker.poll() is None, f"the run worker ended before the kill:\n{log.read_text()[-3000:]}"
        with observer.connect() as conn:
            return conn.execute(query).scalar_one() >= count

    with observer.connect() as conn:  # the first connect (SCRAM) outside the polling loop
        conn.execute(sqlalchemy.text("select 1"))
    _wait_until(reached, f"{count} {event_type.value} of {step_key or 'the run'}", timeout=90)
    postgres.kill()
    time.sleep(3)
    postgres.start()
    exit_code = worker.wait(timeout=150)

    output = log.read_text()
    run = instance.get_run_by_id(run_id)
    events = _events(instance, run_id)
    problems = [
        *([f"worker exit code {exit_code}"] if exit_code else []),
        *([f"run {run.status.value if run else 'missing'}"] if not (run and run.is_success) else []),
        *[
            f"{step}: {n} {what}"
            for step in [f"step_{n}" for n in range(1, STEPS + 1)]
            for what, n, want in [
                ("STEP_SUCCESS", _count(events, DagsterEventType.STEP_SUCCESS, step), 1),
                ("STEP_FAILURE", _count(events, DagsterEventType.STEP_FAILURE, step), 0),
                ("observations", _count(events, DagsterEventType.ASSET_OBSERVATION, step), OBSERVATIONS),
            ]
            if n != want
        ],
        *[
            f"{n} {t.value}"
            for t in (DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS)
            if (n := _count(events, t)) != 1
        ],
    ]
    failures = [e.get_dagster_event() for e in events if e.dagster_event_type == DagsterEventType.STEP_FAILURE]
    detail = failures[0].step_failure_data.error.to_string() if failures else output[-4000:]  # type: ignore[union-attr]
    assert not problems, f"killed at {kill_point}: {problems}\n{detail}"
    print(f"\n[crash] {kill_point}: SUCCESS, {output.count('retrying')} storage retries logged by the worker")


def test_a_data_error_in_a_step_is_still_a_step_failure_that_is_not_retried(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    instance = DagsterInstance.from_config(str(home))
    with caplog.at_level(logging.WARNING, logger=storage.__name__):
        result = bad_data_job.execute_in_process(instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    assert run.tags.get("dagster/failure_reason") == "STEP_FAILURE"
    assert run.tags.get("dagster/will_retry") == "false"
    events = _events(instance, result.run_id)
    assert _count(events, DagsterEventType.STEP_FAILURE, "reject_bad_data") == 1
    assert not [r for r in caplog.records if r.name == storage.__name__], "a storage retry for a data error"


def test_an_outage_longer_than_the_retries_fails_the_run_not_the_step_so_run_retries_apply(
    home: Path, postgres: CrashablePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Postgres still away when the step's retries give up: no STEP_FAILURE (never retried under
    retry_on_asset_or_op_failure: false) but a run failure, which run retries start again."""
    monkeypatch.setattr(storage, "RETRY_SECONDS", 1.0)
    instance = DagsterInstance.from_config(str(home))

    class RestartWhenGivingUp(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "giving up" in record.getMessage() and postgres.process and postgres.process.poll() is not None:
                postgres.start()  # back for the run's failure, after the step's event gave up

    @dg.op
    def postgres_dies_under_this_step() -> int:
        postgres.kill()
        return 1

    @dg.job(executor_def=dg.in_process_executor)
    def outage_job() -> None:
        postgres_dies_under_this_step()

    handler = RestartWhenGivingUp()
    logging.getLogger(storage.__name__).addHandler(handler)
    try:
        result = outage_job.execute_in_process(instance=instance, raise_on_error=False)
    finally:
        logging.getLogger(storage.__name__).removeHandler(handler)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    assert run.tags.get("dagster/failure_reason") == "RUN_EXCEPTION"
    assert run.tags.get("dagster/will_retry") == "true"
    events = _events(instance, result.run_id)
    assert _count(events, DagsterEventType.STEP_FAILURE) == 0
    failure = next(e for e in events if e.dagster_event_type == DagsterEventType.RUN_FAILURE)
    assert "StorageUnavailableError" in str(failure.dagster_event.event_specific_data)  # type: ignore[union-attr]


def test_a_lost_connection_is_transient_also_when_sqlalchemy_did_not_wrap_it() -> None:
    # As raised from SQLAlchemy's connection setup (its isolation level) when Postgres was killed.
    assert storage.is_transient(psycopg2.OperationalError("server closed the connection unexpectedly"))
    assert not storage.is_transient(psycopg2.OperationalError("permission denied for table runs"))
