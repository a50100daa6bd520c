"""Benchmark this stack (A) against a stock variant of it (B) in one run, interleaved.

    .venv/bin/python -m bench.run            # everything (`make bench`, ~45-60 min)
    .venv/bin/python -m bench.run --quick    # a subset (`make bench-quick`, ~10-15 min)
    .venv/bin/python -m bench.run --repeat 3 --json bench.json

B is the same stack with Dagster's defaults for everything the template tunes (bench.variants,
bench/stock.yml). The two never run at once: each measurement runs on A, then on B (the order
alternates), and the other one is down, its volumes kept, in the meantime. Each switch is a warm
start, and is measured as one. Both stacks are removed with their volumes at the end, also after an
error or Ctrl-C. Prints one table, A next to B; bench/README.md says what each row means.
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
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import measure
from bench.harness import BenchStack
from bench.measure import SEED, Scale, load_average
from bench.report import Metric, Row, pair, render
from bench.runs import RunTimeline
from bench.variants import share_images, stock_stack, template_stack


@dataclass(frozen=True)
class Plan:
    """How much of everything a mode measures."""

    start_rounds: int  # each: a cold start, a warm start and an idle window, per stack
    idle_settle_s: float
    idle_window_s: float
    repeat: int  # runs per job for the latency rows
    throughput_runs: int
    scales: tuple[tuple[Scale, int], ...]


FULL = Plan(2, 30, 60, 5, 50, ((Scale("10x", 100), 3), (Scale("1,000x", 10_000), 2), (Scale("10,000x", 100_000), 1)))
QUICK = Plan(1, 20, 30, 2, 12, ((Scale("10x", 100), 1),))
ORDER = (
    "cold start",
    "warm start",
    "idle",
    "run latency",
    "overhead",
    "throughput",
    "scale",
    "metrics scrape",
    "image sizes",
    "build",
)


@dataclass
class Bench:
    """Both stacks, which one is up, and every metric measured so far (per section and stack)."""

    stacks: list[BenchStack]
    details: dict[str, Any]
    metrics: dict[str, dict[str, dict[str, Metric]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    active: BenchStack | None = None
    automation_stopped: set[str] = field(default_factory=set)

    def record(self, section: str, stack: BenchStack, measure_it: Callable[[], list[Metric]]) -> None:
        """Run one measurement of one stack; its samples join the same rows of earlier rounds.
        A failure is reported, and the next measurement still runs."""
        print(f"bench: {section} on {stack.label} (load {load_average()})", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            rows = self.metrics.setdefault(section, {}).setdefault(stack.label, {})
            for metric in measure_it():
                if metric.name in rows:
                    rows[metric.name].samples.extend(metric.samples)
                else:
                    rows[metric.name] = metric
        except Exception as exc:
            self.errors.append(f"{section} ({stack.label}): {exc}")
            traceback.print_exc()
        print(f"bench: {section} on {stack.label} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)

    def activate(self, stack: BenchStack) -> None:
        """Make ``stack`` the one that is up: the other goes down (volumes kept); this start is a
        warm-start sample. Its sensors and schedules are stopped the first time (that persists)."""
        if self.active is stack:
            return
        if self.active is not None:
            self.active.stop()
        self.active = stack
        self.record("warm start", stack, lambda: measure.start(stack, False, self.details[stack.label]))
        if stack.label not in self.automation_stopped:
            self.details[stack.label]["automation_stopped"] = stack.stop_automation()
            self.automation_stopped.add(stack.label)

    def each(self, round_: int) -> list[BenchStack]:
        """Both stacks, A first in even rounds and B first in odd ones (drift hits both alike)."""
        return self.stacks if round_ % 2 == 0 else self.stacks[::-1]

    def rows(self) -> list[Row]:
        sections = sorted(
            self.metrics, key=lambda name: ORDER.index(name.split(" ")[0] if name.startswith("scale") else name)
        )
        out: list[Row] = []
        for section in sections:
            by_stack = self.metrics[section]
            template = list(by_stack.get("template", {}).values())
            stock = by_stack.get("stock")
            out += pair(template, list(stock.values()) if stock is not None else None)
        return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset: one start round, fewer runs, 10x scale only")
    parser.add_argument("--repeat", type=int, help="runs per job for the latency rows (default 5, quick 2)")
    parser.add_argument("--json", type=Path, help="also write every number (per phase, step, service, run) here")
    parser.add_argument("--project", default="dagster-bench", help="compose project of A (B's gets -stock)")
    parser.add_argument(
        "--run-memory",
        help="DAGSTER_MAX_RUN_MEMORY to start with (default: the compose "
        "file's); raised step by step up to 12g if a scale run is OOM-killed",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def measure_all(bench: Bench, plan: Plan, quick: bool) -> None:
    a, b = bench.stacks
    a.down()
    b.down()  # leftovers of an aborted benchmark
    bench.record("build", a, lambda: measure.build_images(a, cold=not quick, details=bench.details))
    bench.record("image sizes", a, lambda: measure.image_sizes(a))
    share_images(a, b)

    for round_ in range(plan.start_rounds):
        for stack in bench.each(round_):
            details = bench.details[stack.label]
            bench.record("cold start", stack, functools.partial(measure.start, stack, True, details))
            bench.record("warm start", stack, functools.partial(measure.start, stack, False, details))
            idle = functools.partial(measure.idle, stack, plan.idle_settle_s, plan.idle_window_s, details)
            bench.record("idle", stack, idle)
            stack.stop()
    bench.automation_stopped.clear()  # each cold start began with a fresh database

    seed_floors: list[dict[str, Any]] = []
    floor_cache: dict[Scale, list[dict[str, Any]]] = {}
    blocks: list[tuple[str, Callable[[BenchStack], list[Metric]]]] = []

    def latency(stack: BenchStack) -> list[Metric]:
        metrics, modular = measure.run_latency(stack, plan.repeat, bench.details[stack.label])
        if not seed_floors:
            seed_floors.extend(measure.floor_runs(SEED, plan.repeat, a.workdir, floor_cache))
        return metrics + _overhead(modular, seed_floors, bench.details[stack.label])

    def throughput(stack: BenchStack) -> list[Metric]:
        return measure.throughput(stack, plan.throughput_runs, bench.details[stack.label])

    def scrape(stack: BenchStack) -> list[Metric]:
        return measure.scrape_cost(stack, bench.details[stack.label])

    def scale_block(scale: Scale, runs: int, stack: BenchStack) -> list[Metric]:
        largest = scale == plan.scales[-1][0] and not quick
        return measure.scale_runs(stack, scale, runs, largest, floor_cache, bench.details[stack.label])

    blocks += [("run latency", latency), ("throughput", throughput), ("metrics scrape", scrape)]
    blocks += [(f"scale {scale.label}", functools.partial(scale_block, scale, runs)) for scale, runs in plan.scales]
    for index, (section, block) in enumerate(blocks):
        for stack in bench.each(index):
            bench.activate(stack)
            bench.record(section, stack, functools.partial(block, stack))


def _overhead(modular: list[RunTimeline], floors: list[dict[str, Any]], details: dict[str, Any]) -> list[Metric]:
    return measure.overhead(modular, floors, details) if modular and floors else []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.repeat:
        plan = Plan(**{**plan.__dict__, "repeat": args.repeat})
    workdir = Path(tempfile.mkdtemp(prefix="dagster-bench-"))
    a = template_stack(args.project, workdir / "template")
    b = stock_stack(f"{args.project}-stock", workdir / "stock")
    for stack in (a, b):
        stack.write_settings(
            SAMPLE_API_USERS=str(SEED.users),
            SAMPLE_API_POSTS_PER_USER=str(SEED.posts_per_user),
            **({"DAGSTER_MAX_RUN_MEMORY": args.run_memory} if args.run_memory else {}),
        )
    details: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "plan": plan.__dict__,
        "dagster": version("dagster"),
        "cpus": os.cpu_count(),
        "load_start": load_average(),
        "template": {},
        "stock": {},
    }
    bench = Bench([a, b], details)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        measure_all(bench, plan, args.quick)
    except KeyboardInterrupt:
        bench.errors.append("interrupted")
    except Exception as exc:
        bench.errors.append(f"aborted: {exc}")
        traceback.print_exc()
    finally:
        print("bench: removing both stacks", file=sys.stderr, flush=True)
        for stack in (a, b):
            stack.down()
        shutil.rmtree(workdir, ignore_errors=True)

    details["load_end"] = load_average()
    rows = bench.rows()
    header = (
        f"dagster {details['dagster']}, {details['mode']} mode, {details['cpus']} CPUs; A = this stack, "
        f"B = stock Dagster settings (bench.variants); load average {details['load_start']} at start, "
        f"{details['load_end']} at end"
    )
    print(render(rows, header))
    for error in bench.errors:
        print(f"not measured: {error}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"details": details, "errors": bench.errors, "rows": [_json(row) for row in rows]},
                indent=2,
                default=str,
            )
        )
    return 1 if bench.errors else 0


def _json(row: Row) -> dict[str, Any]:
    def side(metric: Metric | None) -> dict[str, Any] | None:
        return None if metric is None else {"samples": metric.samples, "reference": metric.reference}

    return {
        "name": row.a.name,
        "unit": row.a.unit,
        "template": side(row.a),
        "stock": side(row.b),
        "ratio": row.ratio,
        "target": row.target_text,
        "met": row.verdict,
    }


if __name__ == "__main__":
    sys.exit(main())
