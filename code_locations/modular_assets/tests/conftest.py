"""Fixtures of the modular_assets tests: the location's resources against a real sample-api.

``api`` (one sample-api process for the session, reset before each test) comes
from the testkit.pytest_plugin.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from modular_assets.definitions import defs
from modular_assets.resources import RESOURCES, RunCachedFilesystemIOManager
from platform_kit.source_api import SourceApiResource
from testkit.sample_api import SampleApi

RunJob = Callable[[str], dg.ExecuteInProcessResult]


@pytest.fixture
def exports_dir(api: SampleApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Set SOURCE_API_URL and EXPORTS_DIR as the deployment does; return this location's export folder."""
    monkeypatch.setenv("SOURCE_API_URL", api.url)
    monkeypatch.setenv("EXPORTS_DIR", str(tmp_path / "exports"))
    return tmp_path / "exports" / "modular_assets"


@pytest.fixture
def run_resources(exports_dir: Path, tmp_path: Path) -> dict[str, object]:
    """The location's resources, with fast retries and the IO manager's files in tmp_path.

    The IO manager keeps asset values on disk between runs, as in the
    deployment, so a group job or a single asset can run on its own later.
    """
    return {
        **RESOURCES,
        # Retry quickly: a fault costs milliseconds in tests, not the production backoff.
        "source_api": SourceApiResource(
            base_url=dg.EnvVar("SOURCE_API_URL"),
            timeout_seconds=5.0,
            max_attempts=3,
            backoff_seconds=0.0,
            max_total_seconds=15.0,
        ),
        "io_manager": RunCachedFilesystemIOManager(base_dir=str(tmp_path / "storage")),
    }


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


@pytest.fixture
def run_job(run_resources: dict[str, object], instance: dg.DagsterInstance) -> RunJob:
    """Run one of the location's jobs in process, with ``run_resources``; failures are returned."""

    def run(name: str) -> dg.ExecuteInProcessResult:
        job = defs.resolve_job_def(name)
        return job.execute_in_process(instance=instance, resources=run_resources, raise_on_error=False)

    return run
