"""Dagster's Helm chart, linted and rendered offline by the real helm, its values schema enforced.

Where the tests find them:

* helm: on PATH, else beside this Python (``make helm`` installs a pinned one into the venv);
* the chart: ``DAGSTER_CHART`` (a chart folder or a packaged ``.tgz``), else ``.charts/dagster``
  (``make chart`` fetches it from Dagster's Helm repository at the pinned version).

The chart's values schema refers to Kubernetes' definitions on GitHub (``$ref`` to
``.../kubernetes-json-schema/master/v1.19.0/_definitions.json``), which helm fetches to
validate the values. Here nothing is fetched: the chart is rendered from a copy whose schema
refers to a local copy of the definitions of the Kubernetes version under test (the caller's
JSON Schema, e.g. kubernetes_validate's), so the schema is enforced as in an online install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from template_tools.locations import ROOT

CHART_SETTING = "DAGSTER_CHART"
DEFAULT_CHART = ROOT / ".charts" / "dagster"
#: The schema's references to Kubernetes' definitions (any version it names).
REMOTE_DEFINITIONS = re.compile(
    r"https://raw\.githubusercontent\.com/yannh/kubernetes-json-schema/master/[^\"#]+/_definitions\.json"
)


class ChartError(RuntimeError):
    """helm refused the chart or the values: its own words, with the command."""


def find_helm() -> str | None:
    """helm on PATH, else the one ``make helm`` put beside this Python."""
    beside = Path(sys.executable).parent / "helm"
    return shutil.which("helm") or (str(beside) if beside.is_file() else None)


def find_chart() -> Path | None:
    """The chart the tests render: ``DAGSTER_CHART`` (relative to the repository's root), else ``.charts/dagster``."""
    setting = os.environ.get(CHART_SETTING)
    if setting:
        path = Path(setting)
        path = path if path.is_absolute() else ROOT / path
        if not path.exists():
            raise ChartError(
                f"{CHART_SETTING}={setting} does not exist: point it at Dagster's chart (a folder or .tgz)"
            )
        return path
    return DEFAULT_CHART if (DEFAULT_CHART / "Chart.yaml").is_file() else None


def helm_version(helm: str) -> str:
    return subprocess.run([helm, "version", "--short"], capture_output=True, text=True, check=True).stdout.strip()


def _copy_tree(source: Path, target: Path) -> None:
    """A writable copy (the source may be read-only; copytree would copy its modes too)."""
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)


def unpack(source: Path, target: Path) -> Path:
    """The chart (folder or packaged .tgz) copied to ``target``; the copy's folder."""
    if source.is_dir():
        _copy_tree(source, target)
        return target
    with tarfile.open(source) as packaged:
        packaged.extractall(target.parent / "unpacked", filter="data")
    [folder] = [path for path in (target.parent / "unpacked").iterdir() if (path / "Chart.yaml").is_file()]
    _copy_tree(folder, target)
    return target


def local_definitions(definitions: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes' definitions as the chart's ``$ref``s address them (``#/definitions/<name>``).

    kubernetes_validate's files keep them under ``$defs`` (JSON Schema 2020-12), with ``$ref``s
    to ``#/$defs/...`` inside: both names are given, and the document's own ``$id`` is dropped
    so that it is known by the file it is read from.
    """
    document = {key: value for key, value in definitions.items() if key != "$id"}
    document["definitions"] = document["$defs"]
    return document


@dataclass(frozen=True)
class OfflineChart:
    """A copy of the chart whose values schema refers to local Kubernetes definitions."""

    helm: str
    folder: Path
    version: str  # the chart's (Chart.yaml)
    kubernetes_version: str

    @classmethod
    def prepare(
        cls, helm: str, source: Path, workdir: Path, kubernetes_version: str, definitions: dict[str, Any]
    ) -> OfflineChart:
        folder = unpack(source, workdir / "chart")
        local = workdir / "kubernetes-definitions.json"
        local.write_text(json.dumps(local_definitions(definitions)), encoding="utf-8")
        for schema in folder.rglob("values.schema.json"):
            text = schema.read_text(encoding="utf-8")
            schema.write_text(REMOTE_DEFINITIONS.sub(local.as_uri(), text), encoding="utf-8")
        chart = yaml.safe_load((folder / "Chart.yaml").read_text(encoding="utf-8"))
        return cls(helm, folder, str(chart["version"]), kubernetes_version)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.helm, *args], capture_output=True, text=True, timeout=120, check=False)

    def lint(self, values: Sequence[Path], *options: str) -> subprocess.CompletedProcess[str]:
        """``helm lint --strict`` of the chart with these values files (the result, passed or not)."""
        files = [arg for path in values for arg in ("-f", str(path))]
        return self._run(
            "lint", "--strict", "--kube-version", self.kubernetes_version, str(self.folder), *files, *options
        )

    def template(
        self, values: Sequence[Path], *options: str, release: str = "dagster", namespace: str = "dagster"
    ) -> list[dict[str, Any]]:
        """The objects ``helm template`` renders; ChartError with helm's message when it refuses."""
        files = [arg for path in values for arg in ("-f", str(path))]
        args = ["template", release, str(self.folder), "-n", namespace, "--kube-version", self.kubernetes_version]
        result = self._run(*args, *files, *options)
        if result.returncode != 0:
            raise ChartError(f"helm {' '.join(args[:2])} ... failed:\n{result.stderr.strip()}")
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
