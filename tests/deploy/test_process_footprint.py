"""What a Dagster process of the images does not spend: pandas in code servers, a final GC at exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCATIONS = sorted(p.name for p in ROOT.glob("code_locations/*/src/*") if (p / "definitions.py").is_file())


def _python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter of this venv (PYTHONPATH from ``env`` only); its stdout."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**base, **env}
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("location", LOCATIONS)
def test_serving_a_location_does_not_import_pandas(location: str) -> None:
    """A code server imports every asset module and never runs one: pandas and numpy (~50 MiB,
    ~0.5 s per server) load in the run worker only (see ``platform_kit.frames.DataFrame``)."""
    loaded = _python(
        f"import sys, {location}.definitions as d\n"
        "d.defs.get_repository_def().load_all_definitions()\n"
        "print(sorted(m for m in ('pandas', 'numpy') if m in sys.modules))"
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
