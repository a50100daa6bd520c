"""What a Dagster process of the images does not spend: pandas in code servers, a final GC at exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from template_tools.locations import ROOT, CodeLocation, read_locations

LOCATIONS = read_locations()


def _python(code: str, python: str = sys.executable, **env: str) -> str:
    """Run ``code`` in a fresh interpreter (PYTHONPATH from ``env`` only); its stdout."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, env={**base, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("location", LOCATIONS, ids=lambda location: location.name)
def test_serving_a_location_does_not_import_pandas(location: CodeLocation) -> None:
    """A code server imports every asset module and never runs one: pandas and numpy (~50 MiB,
    ~0.5 s per server) load in the run worker only (see ``platform_kit.frames.DataFrame``).
    Loaded by the location's own environment, as its image's."""
    loaded = _python(
        f"import sys, {location.module} as d\n"
        "d.defs.get_repository_def().load_all_definitions()\n"
        "print(sorted(m for m in ('pandas', 'numpy') if m in sys.modules))",
        str(location.bin() / "python"),
    )
    assert loaded.strip() == "[]"


CYCLE = """
import gc
gc.disable()
class Cycle:
    def __del__(self):
        print("collected at exit")
cycle = Cycle(); cycle.me = cycle; del cycle
"""


def test_the_images_sitecustomize_skips_the_final_garbage_collection() -> None:
    """With deploy/dagster on the path (as /opt/dagster/lib is in the images), garbage left at
    exit is not collected: the interpreter skips the heap walk that made ``docker stop`` of a
    code server take ~1.4 s. Without it, the same garbage is collected."""
    assert _python(CYCLE) == "collected at exit\n"
    assert _python(CYCLE, PYTHONPATH=str(ROOT / "deploy" / "dagster")) == ""
