"""Fixtures of the modular_assets tests: a real sample-api process and the location's resources.

One sample-api process serves the whole session; every test that uses it
starts from its start-up knobs (``api.reset()``), so tests can change knobs
freely and in any order.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from platform_kit.source_api import SourceApiResource
from sample_api.testing import SampleApi, running_sample_api

from modular_assets.definitions import defs
from modular_assets.resources import RESOURCES, RunCachedFilesystemIOManager

#: Retry quickly in tests: a fault costs milliseconds, not the production backoff.
FAST_RETRIES = dict(timeout_seconds=5.0, max_attempts=3, backoff_seconds=0.0, max_total_seconds=15.0)


@pytest.fixture(scope="session")
def sample_api_process() -> Iterator[SampleApi]:
    with running_sample_api(users=10, posts_per_user=10) as api:
        yield api


@pytest.fixture
def api(sample_api_process: SampleApi) -> Iterator[SampleApi]:
    """The sample API with its start-up knobs: 10 users x 10 posts, no faults."""
    sample_api_process.reset()
    yield sample_api_process
    sample_api_process.reset()


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
        "source_api": SourceApiResource(base_url=dg.EnvVar("SOURCE_API_URL"), **FAST_RETRIES),
        "io_manager": RunCachedFilesystemIOManager(base_dir=str(tmp_path / "storage")),
    }


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


@pytest.fixture
def run_job(run_resources: dict[str, object], instance: dg.DagsterInstance):
    """Run one of the location's jobs in process, with ``run_resources``; failures are returned."""

    def run(name: str) -> dg.ExecuteInProcessResult:
        job = defs.resolve_job_def(name)
        return job.execute_in_process(instance=instance, resources=run_resources, raise_on_error=False)

    return run
