"""One location shipped on its own: a `helm upgrade` that changes its Deployment and nothing else.

docs/kubernetes.md ("Shipping one location"): ``template_tools.kubernetes --ship-overlay`` writes
the user deployments list of the live release (``helm get values``) with one location's image
tag changed, applied with ``helm upgrade --reuse-values -f <overlay>``. Helm's ``--reuse-values``
coalesces the overlay over the release's values, as ``-f values.yaml -f <overlay>`` does over
values.yaml, so rendering the latter with the real chart shows what the upgrade changes: the
objects are compared one by one with those of values.yaml alone. Each rendered user Deployment
must also roll out without a gap: a new pod first, ready only once its code loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.kubernetes.conftest import KUBERNETES_VERSIONS, VALUES, Rendering

from instance_kit.k8s_policy import repository_of
from template_tools import helm_overlays as overlays
from template_tools import kubernetes as generator
from template_tools.locations import ROOT, CodeLocation, read_locations
from testkit import chart as charts

RELEASE_TAG = "5e1f2a3b4c6d"  # a content-derived release id (instance_kit.releases)
NEXT_TAG = "0a9b8c7d6e5f"
READY_COMMAND = ["python", "-m", "platform_services.healthcheck", "code-server"]


def keyed(objects: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Each rendered object, by kind and name, as canonical YAML."""
    found = {}
    for resource in objects:
        key = (resource["kind"], resource["metadata"]["name"])
        assert key not in found, f"rendered twice: {key}"
        found[key] = yaml.safe_dump(resource, sort_keys=True)
    return found


def flat(value: Any, path: str = "") -> dict[str, Any]:
    """Leaf values by path (list items by index; env vars by name)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        named = all(isinstance(item, dict) and "name" in item for item in value)
        return {
            k: v
            for index, item in enumerate(value)
            for k, v in flat(item, f"{path}[{item['name'] if named else index}]").items()
        }
    return {path: value}


def changed_paths(before: str, after: str) -> set[str]:
    old, new = flat(yaml.safe_load(before)), flat(yaml.safe_load(after))
    return {path for path in old.keys() | new.keys() if old.get(path) != new.get(path)}


def helm_values_after(live: dict[str, Any], overlay: str) -> dict[str, Any]:
    """The release's values after ``helm upgrade --reuse-values -f overlay``: the overlay's list replaces the live one."""
    loaded = yaml.safe_load(overlay)
    return {
        **live,
        "dagster-user-deployments": {**live["dagster-user-deployments"], **loaded["dagster-user-deployments"]},
    }


@pytest.fixture(scope="module")
def locations() -> list[CodeLocation]:
    found = read_locations()
    assert len(found) >= 2, "shipping one location is checked against the others: workspace.yaml lists fewer than 2"
    return found


@pytest.fixture(scope="module")
def chart(charts_by_version: dict[str, charts.OfflineChart]) -> charts.OfflineChart:
    return charts_by_version[KUBERNETES_VERSIONS[-1]]


@pytest.fixture(scope="module")
def live(values: dict[str, Any]) -> dict[str, Any]:
    """What `helm get values` returns after an install with values.yaml: the file, its anchors resolved."""
    return values


def render(chart: charts.OfflineChart, folder: Path, overlay: str) -> dict[tuple[str, str], str]:
    path = folder / "ship.yaml"
    path.write_text(overlay, encoding="utf-8")
    return keyed(chart.template([VALUES, path]))


def test_shipping_one_location_changes_its_deployment_and_nothing_else(
    chart: charts.OfflineChart,
    rendering: Rendering,
    live: dict[str, Any],
    locations: list[CodeLocation],
    tmp_path: Path,
) -> None:
    before = keyed(rendering.objects)
    for location in locations:
        overlay = overlays.ship_overlay(ROOT, live, (location.name, RELEASE_TAG))
        after = render(chart, tmp_path, overlay)

        assert after.keys() == before.keys()
        deployment = ("Deployment", generator.deployment_name(location))
        assert {key for key in before if before[key] != after[key]} == {deployment}, location.name
        # In that Deployment: its image (and so the image its code server reports) and the pod's
        # checksum, which makes the chart roll it.
        container = ".spec.template.spec.containers[dagster-user-deployments]"
        assert changed_paths(before[deployment], after[deployment]) == {
            f"{container}.image",
            f"{container}.env[DAGSTER_CURRENT_IMAGE].value",
            ".spec.template.metadata.annotations.checksum/dagster-user-deployment",
        }
        image = yaml.safe_load(after[deployment])["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"{repository_of(rendering.container(deployment[1])['image'])}:{RELEASE_TAG}"
    print(f"shipping checked: {len(locations)} locations, {len(before)} rendered objects compared each time")


def test_a_second_location_shipped_later_keeps_the_first_ones_release(
    chart: charts.OfflineChart, live: dict[str, Any], locations: list[CodeLocation], tmp_path: Path
) -> None:
    first, second = locations[0], locations[1]
    shipped = helm_values_after(live, overlays.ship_overlay(ROOT, live, (first.name, RELEASE_TAG)))
    after = render(chart, tmp_path, overlays.ship_overlay(ROOT, shipped, (second.name, NEXT_TAG)))

    images = {
        name: yaml.safe_load(after[("Deployment", generator.deployment_name(location))])["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
        for name, location in (("first", first), ("second", second))
    }
    assert images["first"].endswith(f":{RELEASE_TAG}")
    assert images["second"].endswith(f":{NEXT_TAG}")


def test_an_upgrade_with_values_yaml_keeps_each_locations_live_release(
    chart: charts.OfflineChart, live: dict[str, Any], locations: list[CodeLocation], tmp_path: Path
) -> None:
    first = locations[0]
    shipped = helm_values_after(live, overlays.ship_overlay(ROOT, live, (first.name, RELEASE_TAG)))
    after = render(chart, tmp_path, overlays.ship_overlay(ROOT, shipped))

    for location in locations:
        deployment = yaml.safe_load(after[("Deployment", generator.deployment_name(location))])
        tag = deployment["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]
        assert tag == (RELEASE_TAG if location == first else "local"), location.name


def test_shipping_an_unknown_location_or_a_reference_for_a_tag_is_refused(live: dict[str, Any]) -> None:
    with pytest.raises(generator.KubernetesError, match="no code location 'nope'"):
        overlays.ship_overlay(ROOT, live, ("nope", RELEASE_TAG))
    name = read_locations()[0].name
    with pytest.raises(generator.KubernetesError, match="is not an image tag"):
        overlays.ship_overlay(ROOT, live, (name, "evil/other:tag"))


def test_each_user_deployment_rolls_out_a_ready_pod_before_stopping_the_old_one(
    rendering: Rendering, locations: list[CodeLocation]
) -> None:
    for location in locations:
        deployment = rendering.get("Deployment", generator.deployment_name(location))
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        container = rendering.container(generator.deployment_name(location))
        # Ready once the code loaded (the grpc-health-check is SERVING with broken code too).
        assert container["readinessProbe"]["exec"]["command"] == READY_COMMAND
        # That check asks port DAGSTER_GRPC_PORT (default 4000): the port the server listens on.
        port = rendering.env(generator.deployment_name(location)).get("DAGSTER_GRPC_PORT", "4000")
        assert container["args"][container["args"].index("-p") + 1] == port == str(location.port)


def test_the_readiness_check_is_in_every_code_locations_image() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    runtime = dockerfile.split(" AS runtime", 1)[1].split("\nFROM ", 1)[0]
    for module in ("__init__.py", "healthcheck.py", "grpc_probe.py"):
        assert f"deploy/dagster/src/platform_services/{module}" in runtime
    assert "FROM venv AS code_location" in dockerfile  # built on that stage
    assert "PYTHONPATH=/opt/dagster/app:/opt/dagster/lib" in runtime
