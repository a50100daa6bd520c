"""The benchmark's one table: a row per metric with median, min, n, floor/reference, target, verdict."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

#: Dagster's own examples/deploy_docker, rebuilt before the project started, on another day
#: (historical: not re-measured here, see bench/README.md): the peer this template is compared with.
DEPLOY_DOCKER = {
    "up_to_loaded_s": 13.7,
    "launch_to_success_s": 4.5,  # a one-asset job
    "webserver_image_mb": 487,
    "code_location_image_mb": 413,
    "idle_mib": 369,  # 4 containers: postgres, webserver, daemon, one code location
}
BASE_IMAGE_MB = 281  # the python:3.11-slim-bookworm stand-in on this machine


@dataclass
class Metric:
    """One row: repeated samples of a quantity where lower is better."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    reference: str = ""
    """The floor or reference to read the number against (free text with its value)."""
    target: float | None = None
    """Met when the median is at most this; None for rows that only inform."""
    target_text: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        return min(self.samples)

    @property
    def verdict(self) -> str:
        if self.target is None or not self.samples:
            return ""
        return "yes" if self.median <= self.target else "NO"


def _number(value: float, unit: str) -> str:
    if unit in ("MB", "MiB"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.2f} {unit}"


def render(metrics: list[Metric], header: str = "") -> str:
    """The table as aligned plain text (also valid GitHub Markdown)."""
    titles = ["metric", "median", "min", "n", "floor / reference", "target", "met"]
    rows = [titles, ["---"] * len(titles)]
    for metric in metrics:
        if not metric.samples:
            rows.append([metric.name, "not measured", "", "0", metric.reference, metric.target_text, ""])
            continue
        target = metric.target_text or ("" if metric.target is None else f"<= {_number(metric.target, metric.unit)}")
        rows.append(
            [
                metric.name,
                _number(metric.median, metric.unit),
                _number(metric.minimum, metric.unit),
                str(len(metric.samples)),
                metric.reference,
                target,
                metric.verdict,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(titles))]
    lines = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    return "\n".join(([header, ""] if header else []) + lines)
