"""`make dev`: the sample API plus `dagster dev` with both code locations, no Docker.

The UI is at http://127.0.0.1:3000 (DEV_UI_PORT), the sample API at
http://127.0.0.1:8090 (DEV_API_PORT). Runs, schedules and sensors use a local
instance in .dagster_home/ (SQLite); CSV exports land in ./exports/. Ctrl-C stops
both processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def main() -> int:
    api_port = os.environ.get("DEV_API_PORT", "8090")
    ui_port = os.environ.get("DEV_UI_PORT", "3000")
    home, exports = ROOT / ".dagster_home", ROOT / "exports"
    home.mkdir(exist_ok=True)
    exports.mkdir(exist_ok=True)
    instance_config = home / "dagster.yaml"
    if not instance_config.exists():  # a local SQLite instance, telemetry off like the stack's
        instance_config.write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SOURCE_API_URL": f"http://127.0.0.1:{api_port}",
        "EXPORTS_DIR": str(exports),
    }
    api = subprocess.Popen(
        [sys.executable, "-m", "sample_api", "--host", "127.0.0.1", "--port", api_port, "--quiet"], env=env
    )
    print(f"dev: sample API on :{api_port}, exports in {exports}, UI at http://127.0.0.1:{ui_port}", flush=True)
    try:
        return subprocess.call(
            [str(BIN / "dagster"), "dev", "-w", str(ROOT / "deploy/dev/workspace.yaml"),
             "-h", "127.0.0.1", "-p", ui_port],
            # Not the repo root: `dagster dev` loads a .env from its working directory,
            # and the stack's .env points SOURCE_API_URL at the compose network.
            env=env, cwd=home,
        )
    except KeyboardInterrupt:
        return 0
    finally:
        api.terminate()
        api.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
