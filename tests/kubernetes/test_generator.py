"""template_tools.kubernetes through `make generate`: the committed files are its output, and a new location gets its parts.

The "third location" runs against a temporary copy of the files the generator reads
(workspace.yaml, values.yaml, a pyproject.toml per location), so this checkout never changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from template_tools import generate, helm_overlays, kubernetes
from template_tools.codeowners import CODEOWNERS
from template_tools.locations import ROOT, WORKSPACE, CodeLocation, add_location, read_locations
from template_tools.settings import COMPOSE, ENV_EXAMPLE, SETTINGS

NEW = CodeLocation("billing_reports", team="billing")
#: Every input of `make generate`, and its outputs as committed.
INPUTS = (
    WORKSPACE,
    "pyproject.toml",  # the platform's pins, which each location's pyproject.toml gets
    COMPOSE,
    ENV_EXAMPLE,
    SETTINGS,
    CODEOWNERS,
    kubernetes.GATEWAY_TEMPLATE,
    kubernetes.ACCESS,
    *kubernetes.generate(ROOT),
)


def copy_inputs(root: Path, names: list[str]) -> None:
    """The generator's inputs, in ``root``: workspace.yaml, the hand-written files, the current outputs, the projects."""
    for path in INPUTS:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / path, root / path)
    for name in names:
        project = root / "code_locations" / name
        project.mkdir(parents=True)
        pins = "[tool.uv]\n# >>> generated: platform-pins\n# <<< generated: platform-pins\n"
        (project / "pyproject.toml").write_text(
            f'[project]\nname = "{name.replace("_", "-")}"\n{pins}', encoding="utf-8"
        )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the inputs with a third location in workspace.yaml (as `make new-location` adds one)."""
    names = [location.name for location in read_locations()]
    copy_inputs(tmp_path, [*names, NEW.name])
    workspace = tmp_path / WORKSPACE
    workspace.write_text(add_location(workspace.read_text(encoding="utf-8"), NEW), encoding="utf-8")
    return tmp_path


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def test_the_committed_files_are_the_generators_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0, capsys.readouterr().err


def test_check_fails_until_a_new_location_is_generated(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--root", str(repo), "--check"]) == 1
    assert f"verify: {kubernetes.VALUES} is not what `make generate` writes" in capsys.readouterr().err

    assert generate.main(["--root", str(repo)]) == 0
    assert generate.main(["--root", str(repo), "--check"]) == 0


def test_a_third_location_gets_its_user_deployment_grant_workspace_entry_network_policy_and_claim(
    repo: Path,
) -> None:
    assert generate.main(["--root", str(repo)]) == 0

    values = yaml.safe_load((repo / kubernetes.VALUES).read_text(encoding="utf-8"))
    [deployment] = [
        item for item in values["dagster-user-deployments"]["deployments"] if item["name"] == "billing-reports"
    ]
    assert deployment["image"] == {
        "repository": "registry.example.com/dagster-template/dagster-billing_reports",
        "tag": "local",
        "pullPolicy": "IfNotPresent",
    }
    assert deployment["dagsterApiGrpcArgs"] == [
        "--lazy-load-user-code",
        "-m",
        "billing_reports.definitions",
        "--location-name",
        "billing_reports",
    ]
    assert deployment["port"] == 4000
    assert deployment["securityContext"] == values["x-shared"]["securityContext"]  # merged from *code-location
    assert {"name": "io", "persistentVolumeClaim": {"claimName": "dagster-io-billing-reports"}} in deployment["volumes"]
    grant = values["runLauncher"]["config"]["customRunLauncher"]["config"]["locations"]["billing_reports"]
    assert grant["image"] == "registry.example.com/dagster-template/dagster-billing_reports:local"
    assert grant["volumes"] == deployment["volumes"] and grant["volume_mounts"] == deployment["volumeMounts"]
    assert grant["env_config_maps"] == ["dagster-dagster-user-deployments-billing-reports-user-env"]

    [config_map] = load_all(repo / kubernetes.WORKSPACE_CONFIG)
    workspace = yaml.safe_load(config_map["data"]["workspace.yaml"])
    assert workspace["load_from"][-1] == {
        "grpc_server": {
            "location_name": "billing_reports",
            "host": "billing-reports",
            "port": 4000,
            "additional_metadata": {"team": "billing"},
        }
    }

    policies = {doc["metadata"]["name"]: doc for doc in load_all(repo / kubernetes.NETWORK_POLICIES)}
    policy = policies["dagster-code-location-billing-reports"]["spec"]
    assert policy["podSelector"]["matchLabels"]["deployment"] == "billing-reports"
    assert {**kubernetes.RUN_PODS, "dagster/code-location": "billing_reports"} in [
        peer["podSelector"]["matchLabels"] for peer in policy["ingress"][0]["from"]
    ]

    claims = {doc["metadata"]["name"]: doc for doc in load_all(repo / kubernetes.STORAGE)}
    assert claims["dagster-io-billing-reports"]["spec"]["accessModes"] == ["ReadWriteMany"]


def outside_generated(text: str) -> list[str]:
    """The lines of values.yaml written by hand: all but those between the markers."""
    kept, inside = [], False
    for line in text.splitlines():
        if "# <<< generated:" in line:
            inside = False
        if not inside:
            kept.append(line)
        if "# >>> generated:" in line:
            inside = True
    return kept


def test_only_the_generated_lines_of_values_change(repo: Path) -> None:
    before = (repo / kubernetes.VALUES).read_text(encoding="utf-8")
    assert generate.main(["--root", str(repo)]) == 0
    after = (repo / kubernetes.VALUES).read_text(encoding="utf-8")

    assert after != before
    assert outside_generated(after) == outside_generated(before)
    assert after.count("# >>> generated:") == after.count("# <<< generated:") == 2


def test_a_removed_location_loses_its_parts(tmp_path: Path) -> None:
    first, *rest = read_locations()
    copy_inputs(tmp_path, [first.name])
    workspace = tmp_path / WORKSPACE
    document = yaml.safe_load(workspace.read_text(encoding="utf-8"))
    document["load_from"] = document["load_from"][:1]
    workspace.write_text(yaml.safe_dump(document), encoding="utf-8")

    assert generate.main(["--root", str(tmp_path)]) == 0
    text = "".join((tmp_path / path).read_text(encoding="utf-8") for path in kubernetes.generate(tmp_path))
    for location in rest:
        assert kubernetes.k8s_name(location) not in text and location.name not in text


def test_a_name_kubernetes_cannot_take_is_refused() -> None:
    with pytest.raises(kubernetes.KubernetesError, match="too long"):
        kubernetes.k8s_name(CodeLocation("a" * 43))
    with pytest.raises(kubernetes.KubernetesError, match="another Service"):
        kubernetes.k8s_name(CodeLocation("sample_api"))


def test_values_without_the_markers_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_inputs(tmp_path, [location.name for location in read_locations()])
    values = tmp_path / kubernetes.VALUES
    values.write_text(values.read_text(encoding="utf-8").replace("# <<< generated: deployments", ""), encoding="utf-8")

    assert generate.main(["--root", str(tmp_path), "--check"]) == 1
    assert "no `# <<< generated: deployments` line" in capsys.readouterr().err


def test_the_image_overlay_sets_every_image_and_repeats_each_deployment_whole(
    capsys: pytest.CaptureFixture[str], values: dict[str, Any]
) -> None:
    assert helm_overlays.main(["--image-overlay", "--registry", "ghcr.io/acme/", "--tag", "v1.2"]) == 0
    overlay = yaml.safe_load(capsys.readouterr().out)

    instance = {"repository": "ghcr.io/acme/dagster-dagster", "tag": "v1.2", "pullPolicy": "IfNotPresent"}
    assert overlay["dagsterWebserver"] == overlay["dagsterDaemon"] == {"image": instance}
    deployments = overlay["dagster-user-deployments"]["deployments"]
    originals = values["dagster-user-deployments"]["deployments"]
    assert [item["name"] for item in deployments] == [item["name"] for item in originals]
    for item, original in zip(deployments, originals, strict=True):
        assert (
            item["image"]["repository"] == "ghcr.io/acme/dagster-" + original["image"]["repository"].rsplit("-", 1)[1]
        )
        assert item["image"]["tag"] == "v1.2"
        assert {key: value for key, value in item.items() if key != "image"} == {
            key: value for key, value in original.items() if key != "image"
        }


def test_the_ship_overlay_command_changes_one_locations_tag_in_the_live_list(
    capsys: pytest.CaptureFixture[str], values: dict[str, Any], tmp_path: Path
) -> None:
    live = tmp_path / "live.yaml"
    live.write_text(yaml.safe_dump(values), encoding="utf-8")  # as `helm get values -o yaml` prints them
    originals = values["dagster-user-deployments"]["deployments"]
    shipped = originals[0]["name"].replace("-", "_")

    assert (
        helm_overlays.main(["--ship-overlay", "--live", str(live), "--location", shipped, "--tag", "5e1f2a3b4c6d"]) == 0
    )
    deployments = yaml.safe_load(capsys.readouterr().out)["dagster-user-deployments"]["deployments"]

    assert deployments[0] == {**originals[0], "image": {**originals[0]["image"], "tag": "5e1f2a3b4c6d"}}
    assert deployments[1:] == originals[1:]
    with pytest.raises(SystemExit):
        helm_overlays.main(["--ship-overlay", "--location", shipped])  # a location needs its tag
    assert helm_overlays.main(["--ship-overlay", "--location", "nope", "--tag", "x"]) == 1
    assert "no code location 'nope'" in capsys.readouterr().err
