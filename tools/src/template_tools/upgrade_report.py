"""What a Dagster upgrade must keep, and the rehearsal's report (template_tools.upgrade).

``History`` reads the stack's runs, schedules and sensors (with their ticks and cursors),
materializations and versions in one query; ``compare`` checks the upgraded stack's history
against the one recorded before, into the ``Report`` that the rehearsal prints.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol


class StackReader(Protocol):
    """What History.read needs of a stack."""

    def graphql(self, query: str, variables: dict[str, Any] | None = ..., timeout: float = ...) -> dict[str, Any]: ...

    def server_info(self) -> dict[str, str]: ...


#: Everything the upgrade must keep, in one query.
HISTORY_QUERY = """
{
  runsOrError { ... on Runs { count results { runId status } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }
    schedules { name scheduleState { id status ticks { tickId } } }
    sensors { name sensorState { id status ticks { tickId }
      typeSpecificData { ... on SensorData { lastCursor } } } }
  } } }
  assetsOrError { ... on AssetConnection { nodes { assetMaterializations { runId } } } }
  workspaceOrError { ... on Workspace { locationEntries { name
    locationOrLoadError { ... on RepositoryLocation { dagsterLibraryVersions { name version } } } } } }
}
"""


# --- what the upgrade must keep ---------------------------------------------------------
@dataclass(frozen=True)
class Instigator:
    """A schedule or sensor, and its stored state."""

    kind: str  # "schedule" or "sensor"
    location: str
    repository: str
    name: str
    state_id: str
    status: str
    ticks: frozenset[str]
    cursor: str | None

    @property
    def key(self) -> str:
        return f"{self.location}/{self.name}"


@dataclass
class History:
    """What the stack holds at one moment: the versions, runs, schedules/sensors, materializations."""

    versions: dict[str, str]
    """The webserver's /server_info: ``dagster_version`` etc."""
    location_versions: dict[str, str | None]
    """Each code location's dagster, as its code server reports it."""
    runs: dict[str, str]
    """Run id -> status."""
    run_count: int
    instigators: dict[str, Instigator]
    materializations: list[str]
    """The run id of each asset materialization event."""

    @classmethod
    def read(cls, stack: StackReader) -> History:
        data = stack.graphql(HISTORY_QUERY, timeout=60)
        instigators: list[Instigator] = []
        for repo in data["repositoriesOrError"]["nodes"]:
            for kind in ("schedule", "sensor"):
                for item in repo[f"{kind}s"]:
                    state = item[f"{kind}State"]
                    instigators.append(
                        Instigator(
                            kind=kind,
                            location=repo["location"]["name"],
                            repository=repo["name"],
                            name=item["name"],
                            state_id=state["id"],
                            status=state["status"],
                            ticks=frozenset(tick["tickId"] for tick in state["ticks"]),
                            cursor=(state.get("typeSpecificData") or {}).get("lastCursor"),
                        )
                    )
        location_versions = {}
        for entry in data["workspaceOrError"]["locationEntries"]:
            libraries = (entry["locationOrLoadError"] or {}).get("dagsterLibraryVersions") or []
            location_versions[entry["name"]] = next(
                (lib["version"] for lib in libraries if lib["name"] == "dagster"), None
            )
        return cls(
            versions=stack.server_info(),
            location_versions=location_versions,
            runs={run["runId"]: run["status"] for run in data["runsOrError"]["results"]},
            run_count=data["runsOrError"]["count"],
            instigators={instigator.key: instigator for instigator in instigators},
            materializations=[
                event["runId"] for asset in data["assetsOrError"]["nodes"] for event in asset["assetMaterializations"]
            ],
        )

    def ticks(self) -> int:
        return sum(len(instigator.ticks) for instigator in self.instigators.values())


# --- the report ---------------------------------------------------------------------
@dataclass
class Report:
    """The phases with their seconds, the checks with PASS/FAIL, and what stopped the rehearsal."""

    title: str = ""
    phases: list[tuple[str, float, str]] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"upgrade: {name}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            yield
        except BaseException as exc:
            self.phases.append((name, time.monotonic() - started, "FAIL"))
            self.errors.append(f"{name}: {exc}")
            raise
        self.phases.append((name, time.monotonic() - started, "ok"))

    def check(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append((name, passed, detail))
        print(f"upgrade:   {'PASS' if passed else 'FAIL'} {name} ({detail})", file=sys.stderr, flush=True)

    @property
    def passed(self) -> bool:
        return not self.errors and bool(self.checks) and all(passed for _, passed, _ in self.checks)

    def render(self) -> str:
        lines = [self.title, ""]
        lines += _table(["phase", "seconds", "result"], [[n, f"{s:.1f}", r] for n, s, r in self.phases])
        lines.append("")
        if self.checks:
            lines += _table(["check", "result", "detail"], [[n, "PASS" if p else "FAIL", d] for n, p, d in self.checks])
        else:
            lines.append("no check ran")
        lines += ["", *(f"error: {error}" for error in self.errors), *self.notes]
        lines.append(f"result: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def _table(titles: list[str], rows: list[list[str]]) -> list[str]:
    rows = [titles, ["---"] * len(titles), *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(titles))]
    return ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]


def compare(before: History, after: History, target: str, report: Report) -> None:
    """The checks of the upgraded stack against what was recorded before it."""
    report.check(
        f"webserver reports Dagster {target}",
        all(version == target for version in after.versions.values()),
        ", ".join(f"{name.removesuffix('_version')} {version}" for name, version in after.versions.items()),
    )
    report.check(
        f"every code server runs Dagster {target}",
        all(version == target for version in after.location_versions.values()),
        ", ".join(f"{location} {version}" for location, version in after.location_versions.items()),
    )
    lost = [run_id for run_id in before.runs if run_id not in after.runs]
    changed = [run_id for run_id in before.runs if run_id in after.runs and after.runs[run_id] != before.runs[run_id]]
    report.check(
        "every run is still there, with its status",
        not lost and not changed,
        f"{len(before.runs)} recorded ({', '.join(sorted(set(before.runs.values())))}); "
        f"lost {len(lost)}, status changed {len(changed)}",
    )
    report.check(
        "the number of runs is unchanged",
        after.run_count == before.run_count,
        f"{before.run_count} -> {after.run_count}",
    )
    states = {key: i.status for key, i in before.instigators.items()}
    states_after = {key: i.status for key, i in after.instigators.items()}
    report.check(
        "every schedule and sensor kept its state",
        states_after == states,
        ", ".join(f"{key} {status}" for key, status in sorted(states_after.items())),
    )
    lost_ticks = sum(
        len(i.ticks - after.instigators[k].ticks) for k, i in before.instigators.items() if k in after.instigators
    )
    report.check(
        "every recorded tick is still there",
        lost_ticks == 0 and set(after.instigators) >= set(before.instigators),
        f"{before.ticks()} before, {after.ticks()} after, {lost_ticks} lost",
    )
    cursors = {key: i.cursor for key, i in before.instigators.items() if i.cursor}
    kept = {key: after.instigators[key].cursor if key in after.instigators else None for key in cursors}
    report.check(
        "no sensor lost its cursor",
        all(kept.values()),
        f"{len(cursors)} cursors: {sum(kept[k] == c for k, c in cursors.items())} unchanged, "
        f"{sum(bool(kept[k]) and kept[k] != c for k, c in cursors.items())} advanced",
    )
    materialized = sum(run_id in before.runs for run_id in after.materializations)
    report.check(
        "the asset materializations are unchanged",
        materialized == len(before.materializations),
        f"{len(before.materializations)} -> {materialized} (of the recorded runs; {len(after.materializations)} in all)",
    )
