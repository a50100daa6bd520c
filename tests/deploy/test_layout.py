"""The layout's promises: one list of code locations, and everything that names a location agrees with it."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import yaml

from platform_services.networks import SHARED
from template_tools.locations import ROOT, location_names

LOCATIONS_ANCHOR = "x-locations"


def tracked(pattern: str) -> list[str]:
    listing = subprocess.run(["git", "-C", str(ROOT), "ls-files", pattern], capture_output=True, text=True, check=True)
    return listing.stdout.split()


def compose_file() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_listed_location_has_a_code_server_service_and_every_code_server_is_listed() -> None:
    services = compose_file()["services"]
    code_servers = [
        name for name, service in services.items() if (service.get("build") or {}).get("target") == "code_location"
    ]

    assert code_servers == location_names()


def networks_of(service: dict[str, Any]) -> set[str]:
    return set(service.get("networks") or ())


def test_each_location_has_its_own_network_which_the_shared_services_join_at_run_time() -> None:
    """In compose, only a location's code server is on its network: the shared services join it at
    run time (platform_services.networks), so that adding a team changes none of their configs."""
    compose = compose_file()
    names = location_names()

    assert list(compose[LOCATIONS_ANCHOR]) == names
    assert set(names) <= set(compose["networks"])
    for name, service in compose["services"].items():
        joined = networks_of(service) & set(names)
        if name in names:
            assert networks_of(service) == {name}, f"{name} must be on its own network only"
        else:
            assert joined == set(), f"{name} must not list a location's network (location_networks joins it)"
    assert set(SHARED) == {"postgres", "sample_api", "webserver", "webserver_viewer", "daemon", "metrics"}
    assert set(SHARED) <= set(compose["services"])
    assert {name: aliases for name, aliases in SHARED.items() if aliases} == {
        "postgres": ("postgres",),
        "sample_api": ("sample_api",),
    }


def test_each_location_has_its_own_io_volume_which_only_the_janitor_mounts() -> None:
    compose = compose_file()
    names = location_names()

    assert set(names) <= set(compose["volumes"])
    janitor = [v for v in compose["services"]["storage_janitor"]["volumes"] if v.split(":", 1)[0] in names]
    assert janitor == [f"{name}:/opt/dagster/io/{name}" for name in names]
    for name, service in compose["services"].items():
        if name != "storage_janitor":
            mounted = {str(volume).split(":", 1)[0] for volume in service.get("volumes") or []}
            assert not mounted & set(names), f"{name} mounts a location's IO volume"


def test_the_webserver_is_reachable_only_on_the_gateways_network() -> None:
    services = compose_file()["services"]

    assert networks_of(services["gateway"]) == {"ui", "monitoring"}
    assert "ports" not in services["webserver"]
    for name in ("webserver", "webserver_viewer"):
        service = services[name]
        alias = service["environment"]["WEBSERVER_HOST"]
        assert service["networks"]["ui"] == {"aliases": [alias]}, f"{name} listens on its ui alias only"
        assert '-h "$$WEBSERVER_HOST"' in service["command"][-1]


def test_monitoring_listens_only_where_prometheus_and_the_gateway_are() -> None:
    services = compose_file()["services"]
    compose = compose_file()

    assert compose["networks"]["monitoring"] == {"internal": True}
    on_monitoring = {name for name, service in services.items() if "monitoring" in networks_of(service)}
    assert on_monitoring == {"metrics", "prometheus", "alertmanager", "gateway"}
    # The exporter is on every location's network (it probes their code servers) but
    # listens only on its monitoring alias, as the webserver does on ui.
    metrics = services["metrics"]
    assert metrics["networks"]["monitoring"] == {"aliases": [metrics["environment"]["METRICS_HOST"]]}
    # Only Alertmanager has a route out, for the webhook.
    assert {name for name, service in services.items() if "alerting" in networks_of(service)} == {"alertmanager"}
    for name in ("metrics", "prometheus", "alertmanager"):
        assert services[name]["scale"] == "${DAGSTER_MONITORING:-1}", f"{name} follows the monitoring switch"


def test_every_project_under_code_locations_is_listed() -> None:
    folders = sorted(path.parent.name for path in (ROOT / "code_locations").glob("*/pyproject.toml"))

    assert folders == sorted(location_names())


def test_the_only_instance_config_is_the_top_level_one() -> None:
    assert tracked("*dagster.yaml") == ["dagster.yaml"]
    # ... and the stack's copy of the one list of locations, which `make generate` writes.
    assert tracked("*workspace.yaml") == ["deploy/workspace/workspace.yaml", "workspace.yaml"]


def test_no_code_edits_sys_path() -> None:
    offenders = [
        f"{path}:{number}"
        for path in tracked("*.py")
        for number, line in enumerate((ROOT / path).read_text().splitlines(), 1)
        if re.search(r"sys\.path\.(insert|append)", line)
    ]

    assert offenders == []
