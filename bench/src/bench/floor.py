"""The floor: the modular_assets pipeline as one plain Python process, without Dagster's machinery.

Fetches users and posts from a sample API with ``requests``, then runs the same pure functions
the 13 assets and the asset checks of ``all_assets_job`` call (``platform_kit`` and the location's
``transforms``/``analytics``/``exports`` modules: plain pandas), in one process, keeping every
value in memory, and writes the same CSV/JSON files. What it does not do: materialization
metadata, events, the IO manager (pickling each value to disk and loading it again), run and
step bookkeeping in Postgres, a container. That difference is the orchestration overhead.

    code_locations/modular_assets/.venv/bin/python -P bench/src/bench/floor.py \
        --api-url http://127.0.0.1:8090 --out /tmp/floor

It runs in modular_assets' own environment (its lock, the pandas of its image), as a file:
that environment holds the location and platform_kit, not the bench.

Prints one JSON object: seconds for the pipeline and for each step, peak RSS of this process
(getrusage ru_maxrss, the kernel's VmHWM), and the cost of the imports in two parts: pandas and
requests first, then the location's modules. Those import Dagster (they define assets), which a
pandas-only script would not; ``plain_peak_rss_mib`` is the peak without the memory that second
import added, and the caller subtracts ``location_import_s`` from the process's wall time.
"""

from __future__ import annotations

import functools
import time

IMPORT_STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
from collections.abc import Callable, Mapping  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import pandas as pd  # noqa: E402
import requests  # noqa: E402


def rss_mib() -> float:
    """Current resident set size of this process, in MiB."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


PLAIN_IMPORT_S = time.perf_counter() - IMPORT_STARTED
RSS_AFTER_PLAIN_IMPORT = rss_mib()

from modular_assets.analytics import activity_stats, rank_top_authors, summarize  # noqa: E402
from modular_assets.exports import CSV_FILES, SUMMARY_FILE, summary_payload  # noqa: E402
from modular_assets.transforms import clean_posts, clean_users, enrich_posts  # noqa: E402
from platform_kit import checks  # noqa: E402
from platform_kit.exports import ExportedFile, write_csv_atomic, write_json_atomic  # noqa: E402
from platform_kit.frames import flatten_users, posts_frame  # noqa: E402
from platform_kit.source_api import POST_FIELDS, USER_FIELDS, validate_records  # noqa: E402

LOCATION_IMPORT_S = time.perf_counter() - IMPORT_STARTED - PLAIN_IMPORT_S
T = TypeVar("T")


def fetch(api_url: str, path: str, required: Mapping[str, type]) -> list[dict[str, Any]]:
    """GET ``path`` and validate the records, as the location's SourceApiResource does."""
    response = requests.get(f"{api_url.rstrip('/')}{path}", timeout=600)
    response.raise_for_status()
    return validate_records(response.json(), response.url, required, hint="")


def run_pipeline(api_url: str, out_dir: Path) -> dict[str, float]:
    """Compute and write all_assets_job's outputs; return the seconds of each step."""
    timings: dict[str, float] = {}

    def step(name: str, compute: Callable[[], T]) -> T:
        started = time.perf_counter()
        value = compute()
        timings[name] = time.perf_counter() - started
        return value

    users_raw = step("api_users_raw", lambda: flatten_users(fetch(api_url, "/users", USER_FIELDS)))
    posts_raw = step("api_posts_raw", lambda: posts_frame(fetch(api_url, "/posts", POST_FIELDS)))
    users = step("users_cleaned", lambda: clean_users(users_raw))
    step(
        "checks of users_cleaned (2)",
        lambda: (checks.unique(users, "user_id"), checks.well_formed_emails(users, "email")),
    )
    posts = step("posts_cleaned", lambda: clean_posts(posts_raw))
    step(
        "checks of posts_cleaned (3)",
        lambda: (
            checks.unique(posts, "post_id"),
            checks.not_blank(posts, "title"),
            checks.references(posts, "user_id", users, "user_id"),
        ),
    )
    enriched = step("posts_with_user_info", lambda: enrich_posts(posts, users))
    stats = step("user_activity_stats", lambda: activity_stats(users, posts))
    top = step("top_authors", lambda: rank_top_authors(stats))
    summary = step("data_summary", lambda: summarize(users, posts, generated_at=datetime.now(UTC)))
    frames: dict[str, pd.DataFrame] = {
        "users_csv": users,
        "posts_enriched_csv": enriched,
        "user_stats_csv": stats,
        "top_authors_csv": top,
    }
    written: dict[str, ExportedFile] = {
        asset: step(asset, functools.partial(write_csv_atomic, frame, out_dir / CSV_FILES[asset]))
        for asset, frame in frames.items()
    }
    files = [
        {"asset": asset, "path": str(file.path), "rows": file.row_count, "size_bytes": file.size_bytes}
        for asset, file in written.items()
    ]
    step("export_summary", lambda: write_json_atomic(summary_payload(files, summary), out_dir / SUMMARY_FILE))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", required=True, help="base URL of a sample API")
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSV/JSON files")
    args = parser.parse_args()
    rss_after_import = rss_mib()
    started = time.perf_counter()
    steps = run_pipeline(args.api_url, args.out)
    pipeline_s = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "plain_import_s": PLAIN_IMPORT_S,
                "location_import_s": LOCATION_IMPORT_S,
                "pipeline_s": pipeline_s,
                "steps_s": steps,
                "rss_after_plain_import_mib": RSS_AFTER_PLAIN_IMPORT,
                "rss_after_import_mib": rss_after_import,
                "peak_rss_mib": peak_rss,
                "plain_peak_rss_mib": peak_rss - (rss_after_import - RSS_AFTER_PLAIN_IMPORT),
            }
        )
    )


if __name__ == "__main__":
    main()
