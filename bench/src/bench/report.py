"""The benchmark's table: one row per metric, this stack (A) next to the stock variant (B).

Each row shows the median and the best sample of each side, their ratio, the target and whether
A's median meets it. Lower is better unless the row says otherwise (throughput).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

#: Dagster's own examples/deploy_docker, rebuilt before the project started, on another day.
#: Historical, not re-measured: shown only as "historical" text, never compared against.
HISTORICAL_DEPLOY_DOCKER = {
    "webserver_image_mb": 487,
    "code_location_image_mb": 413,
}


@dataclass
class Metric:
    """One quantity of one stack: repeated samples, and what A's median is held to."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    reference: str = ""
    """Free text to read the number against (a floor, a breakdown), shown in the last column."""
    target: float | None = None
    """Met when the median is at most this (at least, for higher_is_better); None: no absolute target."""
    target_text: str = ""
    ratio_target: float | None = None
    """Met when A's median / B's median is at most this (at least, for higher_is_better)."""
    higher_is_better: bool = False
    shared: bool = False
    """Measured once for both stacks (the floors): shown for A only."""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return max(self.samples) if self.higher_is_better else min(self.samples)

    def meets(self, value: float, limit: float) -> bool:
        return value >= limit if self.higher_is_better else value <= limit


@dataclass
class Row:
    """A metric of this stack (``a``) and, when the stock variant measures it too, of that one (``b``)."""

    a: Metric
    b: Metric | None = None

    @property
    def ratio(self) -> float | None:
        if self.b is None or self.a.shared or not self.a.samples or not self.b.samples or self.b.median == 0:
            return None
        return self.a.median / self.b.median

    @property
    def target_text(self) -> str:
        a = self.a
        sign = ">=" if a.higher_is_better else "<="
        parts = [a.target_text or (f"{sign} {_number(a.target, a.unit)}" if a.target is not None else "")]
        if a.ratio_target is not None:
            parts.append(f"{sign} {a.ratio_target:g}x stock")
        return ", ".join(part for part in parts if part)

    @property
    def verdict(self) -> str:
        a, checks = self.a, []
        if not a.samples:
            return ""
        if a.target is not None:
            checks.append(a.meets(a.median, a.target))
        if a.ratio_target is not None:
            ratio = self.ratio
            checks.append(ratio is not None and a.meets(ratio, a.ratio_target))
        if not checks:
            return ""
        return "yes" if all(checks) else "NO"


def _number(value: float, unit: str) -> str:
    if unit in ("MB", "MiB"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "":
        return f"{value:,.0f}"
    return f"{value:,.2f} {unit}"


def _cell(metric: Metric | None) -> str:
    if metric is None:
        return ""
    if not metric.samples:
        return "not measured"
    median, best = _number(metric.median, metric.unit), _number(metric.best, metric.unit)
    n = len(metric.samples)
    return median if n == 1 else f"{median} ({'max' if metric.higher_is_better else 'min'} {best}, n {n})"


def render(rows: list[Row], header: str = "") -> str:
    """The table as aligned plain text (also valid GitHub Markdown)."""
    titles = ["metric", "this stack (A)", "stock (B)", "A/B", "target", "met", "notes"]
    table = [titles, ["---"] * len(titles)]
    for row in rows:
        ratio = row.ratio
        table.append(
            [
                row.a.name,
                _cell(row.a),
                "same as A" if row.a.shared else _cell(row.b) if row.b is not None else "-",
                "" if ratio is None else f"{ratio:.2f}x",
                row.target_text,
                row.verdict,
                row.a.reference,
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(titles))]
    lines = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) + " |" for line in table
    ]
    return "\n".join(([header, ""] if header else []) + lines)


def pair(template: list[Metric], stock: list[Metric] | None) -> list[Row]:
    """Rows of one measurement: A's metrics, each with B's metric of the same name (if B measured it)."""
    by_name = {metric.name: metric for metric in stock or []}
    return [Row(metric, by_name.get(metric.name) if stock is not None else None) for metric in template]
