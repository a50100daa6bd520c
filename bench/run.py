"""Benchmark the compose deployment: start-up, run latency, orchestration overhead, scale, footprint.

    .venv/bin/python bench/run.py            # everything (`make bench`, ~15-25 min)
    .venv/bin/python bench/run.py --quick    # a 1-2 minute subset (`make bench-quick`)
    .venv/bin/python bench/run.py --repeat 3 --json bench.json

Builds and starts its own stack (compose project ``dagster-bench``, image tag ``bench``), measures,
and always removes it again with its volumes (also on errors and Ctrl-C). Prints one table; see
bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import measure
from harness import BenchStack
from measure import SEED, Scale, load_average
from report import Metric, render

FULL_SCALES = ((Scale("10x", 100), 3), (Scale("1,000x", 10_000), 2), (Scale("10,000x", 100_000), 1))
QUICK_SCALES = ((Scale("10x", 100), 1),)
IDLE_SECONDS = 30


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 1-2 minute subset (10x scale only, fewer repeats)")
    parser.add_argument("--repeat", type=int, help="repeats of the cheap measurements (default 5, quick 2)")
    parser.add_argument("--json", type=Path, help="also write every number (per phase, step, service) here")
    parser.add_argument("--project", default="dagster-bench", help="compose project name (default dagster-bench)")
    parser.add_argument(
        "--run-memory",
        help="DAGSTER_MAX_RUN_MEMORY to start with (default: the compose "
        "file's); raised step by step up to 12g if a scale run is OOM-killed",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repeat = args.repeat or (2 if args.quick else 5)
    workdir = Path(tempfile.mkdtemp(prefix="dagster-bench-"))
    stack = BenchStack(project=args.project, workdir=workdir)
    stack.write_env(
        SAMPLE_API_USERS=str(SEED.users),
        SAMPLE_API_POSTS_PER_USER=str(SEED.posts_per_user),
        **({"DAGSTER_MAX_RUN_MEMORY": args.run_memory} if args.run_memory else {}),
    )
    details: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "repeat": repeat,
        "dagster": version("dagster"),
        "cpus": os.cpu_count(),
        "load_start": load_average(),
    }
    sections: dict[str, list[Metric]] = {}
    errors: list[str] = []
    modular_runs: list = []

    def section(name: str, measure_it: Callable[[], list[Metric]]) -> None:
        """Run one measurement; a failure is reported and the next measurement still runs."""
        print(f"bench: {name} (load {load_average()})", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            sections[name] = measure_it()
        except Exception as exc:
            errors.append(f"{name}: {exc}")
            traceback.print_exc()
        print(f"bench: {name} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)

    def latency() -> list[Metric]:
        metrics, modular_runs[:] = measure.run_latency(stack, repeat, details)
        return metrics

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.down()  # leftovers of an aborted benchmark
        section("build", lambda: measure.build_images(stack, cold=not args.quick, details=details))
        section("image sizes", lambda: measure.image_sizes(stack))
        section("cold start", lambda: measure.cold_starts(stack, 1 if args.quick else repeat, details))
        section("idle memory", lambda: measure.idle_memory(stack, IDLE_SECONDS, 3, details))
        details["automation_stopped"] = stack.stop_automation()
        section("run latency", latency)
        if modular_runs:
            section("overhead", lambda: measure.overhead(stack, modular_runs, repeat, details))
        section("redeploy", lambda: measure.redeploys(stack, "modular_assets", 1 if args.quick else 3, details))
        scales = QUICK_SCALES if args.quick else FULL_SCALES
        for scale, runs in scales:
            largest = scale == scales[-1][0] and not args.quick
            section(
                f"scale {scale.label}",
                functools.partial(measure.scale_runs, stack, scale, runs, largest, details),
            )
    except KeyboardInterrupt:
        errors.append("interrupted")
    except Exception as exc:
        errors.append(f"aborted: {exc}")
        traceback.print_exc()
    finally:
        print("bench: removing the stack", file=sys.stderr, flush=True)
        stack.down()
        shutil.rmtree(workdir, ignore_errors=True)

    details["load_end"] = load_average()
    order = [
        "cold start",
        "redeploy",
        "run latency",
        "overhead",
        *(name for name in sections if name.startswith("scale")),
        "image sizes",
        "build",
        "idle memory",
    ]
    rows = [metric for name in order for metric in sections.get(name, [])]
    header = (
        f"dagster {details['dagster']}, {details['mode']} mode, repeat {repeat}, {details['cpus']} CPUs; "
        f"load average {details['load_start']} at start, {details['load_end']} at end"
    )
    print(render(rows, header))
    for error in errors:
        print(f"not measured: {error}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "details": details,
                    "errors": errors,
                    "metrics": [
                        {
                            "name": m.name,
                            "unit": m.unit,
                            "samples": m.samples,
                            "reference": m.reference,
                            "target": m.target,
                            "met": m.verdict,
                        }
                        for m in rows
                    ],
                },
                indent=2,
                default=str,
            )
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
