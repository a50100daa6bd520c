"""Release records, and the launch policy's image rule over them (pure: no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster_docker.container_context import DockerContainerContext

from instance_kit import releases
from instance_kit.docker_policy import LaunchPolicy
from instance_kit.releases import Deployment, LocationReleases, Release

POLICY = LaunchPolicy(
    image_template="proj-{location}:local",
    mem_limit="4g",
    pids_limit=512,
    locations=frozenset({"simple_ops", "modular_assets"}),
    release_tags={"simple_ops": frozenset({"a1b2c3d4e5f6"}), "modular_assets": frozenset({"0f0f0f0f0f0f"})},
)
COMMAND = ["dagster", "api", "execute_run", "{}"]


def check(image: str, location: str) -> list[str]:
    return POLICY.check(DockerContainerContext(), image, location, COMMAND)


def test_a_location_may_run_its_image_and_its_recorded_releases() -> None:
    assert POLICY.allowed_images("simple_ops") == ["proj-simple_ops:local", "proj-simple_ops:a1b2c3d4e5f6"]
    assert check("proj-simple_ops:local", "simple_ops") == []
    assert check("proj-simple_ops:a1b2c3d4e5f6", "simple_ops") == []


@pytest.mark.parametrize(
    "image",
    ["proj-modular_assets:0f0f0f0f0f0f", "proj-simple_ops:0f0f0f0f0f0f", "proj-simple_ops:unrecorded"],
    ids=["another-locations-release", "its-tag-on-my-repository", "unrecorded-tag"],
)
def test_another_locations_release_or_an_unrecorded_tag_is_refused(image: str) -> None:
    [violation] = check(image, "simple_ops")
    assert violation == (
        f"image {image!r} (code location 'simple_ops' runs only 'proj-simple_ops:local' or one of its 1 recorded releases)"
    )


def test_a_registry_port_is_not_taken_for_a_tag() -> None:
    policy = LaunchPolicy(
        image_template="registry:5000/team/{location}",
        mem_limit="1g",
        pids_limit=1,
        locations=frozenset({"x"}),
        release_tags={"x": frozenset({"abc"})},
    )
    assert policy.allowed_images("x") == ["registry:5000/team/x", "registry:5000/team/x:abc"]


def deployed(*tags: str) -> LocationReleases:
    record = LocationReleases("simple_ops")
    for n, tag in enumerate(tags):
        record.add(Release(tag, f"2026-12-0{n + 1}T00:00:00Z"))
        record.history.append(Deployment(tag, f"2026-12-0{n + 1}T00:00:00Z", "alice", "deploy"))
    return record


def test_live_is_the_last_deployed_and_previous_the_one_before_it() -> None:
    record = deployed("aaa", "bbb")
    assert (record.live, record.previous) == ("bbb", "aaa")

    record.history.append(Deployment("aaa", "2026-12-03T00:00:00Z", "alice", "rollback"))
    assert (record.live, record.previous) == ("aaa", "bbb")  # a second rollback goes forward again


def test_pruning_keeps_the_newest_and_never_the_live_or_previous_one() -> None:
    record = deployed("r1", "r2", "r3", "r4", "r5", "r6", "r7")
    record.history.append(Deployment("r1", "2026-12-09T00:00:00Z", "alice", "rollback"))

    dropped = record.prune(keep=3)

    assert dropped == ["r2", "r3", "r4"]
    assert [r.tag for r in record.releases] == ["r1", "r5", "r6", "r7"]


def test_a_record_round_trips_and_writes_the_code_servers_env_file(tmp_path: Path) -> None:
    record = deployed("aaa", "bbb")

    releases.write(tmp_path, record)

    assert releases.read(tmp_path, "simple_ops") == record
    assert releases.env_path(tmp_path, "simple_ops").read_text().splitlines()[-1] == "DAGSTER_RELEASE=bbb"
    assert releases.release_tags(tmp_path, ["simple_ops", "modular_assets"]) == {
        "simple_ops": frozenset({"aaa", "bbb"}),
        "modular_assets": frozenset(),
    }
    assert releases.release_tags(None, ["simple_ops"]) == {}


def test_a_broken_record_names_the_file_and_the_fix(tmp_path: Path) -> None:
    releases.record_path(tmp_path, "simple_ops").write_text("{not json")

    with pytest.raises(releases.ReleaseError, match=r"simple_ops.json is not a readable release record .* delete it"):
        releases.read(tmp_path, "simple_ops")
