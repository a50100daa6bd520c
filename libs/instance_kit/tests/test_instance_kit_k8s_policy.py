"""instance_kit.k8s_policy: what a run's Kubernetes Job may be, checked and applied without a cluster.

The contexts are dagster-k8s' own K8sContainerContext, built from the same config a code
server reports and a dagster-k8s/config tag carries (tests/kubernetes builds whole Jobs from
the chart's rendering with the real launcher).
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import pytest
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import UserDefinedDagsterK8sConfig

from instance_kit.k8s_policy import K8sLaunchPolicy, LocationGrant

SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY_CONTEXT = {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001}
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "4Gi"}}
ACCOUNT = "proj-user-deployments"
TMP = {"name": "tmp", "emptyDir": {}}
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}


def io(location: str) -> dict[str, Any]:
    return {"name": "io", "persistentVolumeClaim": {"claimName": f"proj-io-{location}"}}


IO_MOUNT = {"name": "io", "mountPath": "/opt/dagster/io"}
PLATFORM = K8sContainerContext(
    namespace="proj",
    service_account_name=ACCOUNT,
    image_pull_policy="IfNotPresent",
    resources=RESOURCES,
    security_context=SECURITY_CONTEXT,
    volumes=[TMP, {"name": "storage", "persistentVolumeClaim": {"claimName": "proj-storage"}}],
    volume_mounts=[TMP_MOUNT, {"name": "storage", "mountPath": "/opt/dagster/storage"}],
    run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
        {
            "pod_spec_config": {"securityContext": POD_SECURITY_CONTEXT, "automountServiceAccountToken": True},
            "job_spec_config": {"activeDeadlineSeconds": 21600},
        }
    ),
)


def grant(location: str) -> LocationGrant:
    context = K8sContainerContext(
        volumes=[TMP, io(location)],
        volume_mounts=[TMP_MOUNT, IO_MOUNT],
        env_config_maps=[f"proj-{location}-env"],
        env_secrets=[f"proj-{location}-secrets"],
    )
    return LocationGrant(image=f"proj-{location}:1", context=context)


POLICY = K8sLaunchPolicy(platform=PLATFORM, grants={name: grant(name) for name in ("simple_ops", "modular_assets")})
IMAGE = "proj-simple_ops:1"

#: What a location's code server reports for its runs (the chart's k8sContainerContext, in its shape).
GENUINE = {
    "k8s": {
        "env": [{"name": "SOURCE_API_URL", "value": "http://sample-api:8080"}],
        "env_config_maps": ["proj-simple_ops-env"],
        "env_secrets": ["proj-simple_ops-secrets"],
        "image_pull_policy": "IfNotPresent",
        "namespace": "proj",
        "resources": RESOURCES,
        "service_account_name": ACCOUNT,
        "volumes": [TMP, io("simple_ops")],
        "volume_mounts": [TMP_MOUNT, IO_MOUNT],
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }
}


def requested(
    container_context: dict[str, Any] | None = None, tag: dict[str, Any] | None = None
) -> K8sContainerContext:
    """What a run asks: its stored container context and its dagster-k8s/config tag, as dagster-k8s reads them."""
    tags = {"dagster-k8s/config": json.dumps(tag)} if tag else {}
    run = dg.DagsterRun(job_name="a_job", tags=tags)
    context = K8sContainerContext.create_from_config(container_context or {})
    return context.merge(K8sContainerContext.create_for_run(run, None, include_run_tags=True))


def check(tag: dict[str, Any]) -> list[str]:
    return POLICY.check(requested(GENUINE, tag), IMAGE, "simple_ops")


def test_the_genuine_run_asks_for_nothing_beyond_its_grant_and_gets_it() -> None:
    asked = requested(GENUINE)

    assert POLICY.check(asked, IMAGE, "simple_ops") == []
    final = POLICY.apply(asked, "simple_ops").run_k8s_config
    container, pod = final.container_config, final.pod_spec_config
    assert container["image"] == IMAGE
    assert container["security_context"]["run_as_user"] == 10001
    assert container["resources"] == RESOURCES
    assert pod["service_account_name"] == ACCOUNT
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "storage", "io"]
    assert pod["volumes"][2]["persistent_volume_claim"] == {"claim_name": "proj-io-simple_ops"}
    assert {"config_map_ref": {"name": "proj-simple_ops-env"}} in container["env_from"]
    assert container["env"] == [{"name": "SOURCE_API_URL", "value": "http://sample-api:8080"}]
    assert final.pod_template_spec_metadata["labels"] == {"dagster/code-location": "simple_ops"}


@pytest.mark.parametrize(
    "image", ["proj-simple_ops:5e1f2a3b4c6d", "proj-simple_ops@sha256:" + "0" * 64], ids=["tag", "digest"]
)
def test_a_run_of_another_release_of_its_location_starts_from_that_release(image: str) -> None:
    asked = requested(GENUINE)

    assert POLICY.check(asked, image, "simple_ops") == []
    assert POLICY.apply(asked, "simple_ops", image).run_k8s_config.container_config["image"] == image


@pytest.mark.parametrize(
    "image",
    ["proj-modular_assets:5e1f2a3b4c6d", "proj-modular_assets:1", "registry:5000/proj-simple_ops:1", "proj-simple"],
    ids=["another-locations-release", "another-locations-image", "another-registry", "a-prefix"],
)
def test_another_locations_image_at_any_tag_is_refused_and_never_applied(image: str) -> None:
    asked = requested(GENUINE)

    [violation] = POLICY.check(asked, image, "simple_ops")
    assert violation == (
        f"image {image!r} (code location 'simple_ops' runs only 'proj-simple_ops:1' or another tag of 'proj-simple_ops')"
    )
    assert POLICY.apply(asked, "simple_ops", image).run_k8s_config.container_config["image"] == IMAGE


def test_less_than_the_grant_is_within_the_policy() -> None:
    assert (
        check(
            {
                "container_config": {
                    "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": "50m"}},
                    "volume_mounts": [{**IO_MOUNT, "readOnly": True}],
                    "env": [{"name": "MODE", "value": "fast"}],
                },
                "job_spec_config": {"activeDeadlineSeconds": 600},
                "pod_template_spec_metadata": {"labels": {"dagster/code-location": "simple_ops"}},
            }
        )
        == []
    )


@pytest.mark.parametrize(
    ("tag", "named"),
    [
        (
            {"pod_template_spec_metadata": {"labels": {"dagster/code-location": "modular_assets"}}},
            "pod_template_spec_metadata.labels.dagster/code-location='modular_assets' (the platform sets 'simple_ops')",
        ),
        (
            {"pod_spec_config": {"volumes": [io("modular_assets")]}},
            "volume 'io' {'persistent_volume_claim': {'claim_name': 'proj-io-modular_assets'}} (granted: volume 'tmp'",
        ),
        (
            {"pod_spec_config": {"volumes": [{"name": "host", "hostPath": {"path": "/"}}]}},
            "volume 'host' {'host_path': {'path': '/'}}",
        ),
        (
            {"container_config": {"volumeMounts": [{"name": "io", "mountPath": "/etc"}]}},
            "mount of 'io' at '/etc' rw (granted: mount of 'tmp' at '/tmp' rw",
        ),
        (
            {"container_config": {"securityContext": {"runAsUser": 0}}},
            "container_config.security_context.run_as_user=0 (the platform sets 10001)",
        ),
        (
            {"pod_spec_config": {"securityContext": {"runAsUser": 0}}},
            "pod_spec_config.security_context.run_as_user=0 (the platform sets 10001)",
        ),
        (
            {"container_config": {"securityContext": {"privileged": True}}},
            "container_config.security_context.privileged=True (not allowed for runs)",
        ),
        (
            {"container_config": {"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}},
            "container_config.security_context.capabilities.add=['SYS_ADMIN'] (not allowed for runs)",
        ),
        (
            {"container_config": {"image": "attacker/tools:latest"}},
            "image 'attacker/tools:latest' (code location 'simple_ops' runs only 'proj-simple_ops:1' "
            "or another tag of 'proj-simple_ops')",
        ),
        (
            {"pod_spec_config": {"serviceAccountName": "proj"}},
            f"pod_spec_config.service_account_name='proj' (the platform sets '{ACCOUNT}')",
        ),
        ({"pod_spec_config": {"hostNetwork": True}}, "pod_spec_config.host_network=True (not allowed for runs)"),
        ({"pod_spec_config": {"hostPID": True}}, "pod_spec_config.host_pid=True (not allowed for runs)"),
        (
            {"pod_spec_config": {"containers": [{"name": "sidecar", "image": "attacker/tools:latest"}]}},
            "pod_spec_config.containers=[{'name': 'sidecar', 'image': 'attacker/tools:latest'}] (not allowed",
        ),
        (
            {"pod_spec_config": {"nodeName": "control-plane"}},
            "pod_spec_config.node_name='control-plane' (not allowed for runs)",
        ),
        (
            {"container_config": {"resources": {"limits": {"memory": "64Gi"}}}},
            "container_config.resources.limits.memory='64Gi' (at most '4Gi')",
        ),
        (
            {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}},
            "container_config.resources.limits.nvidia.com/gpu='1' (not allowed for runs)",
        ),
        (
            {"job_spec_config": {"activeDeadlineSeconds": 10**9}},
            "job_spec_config.active_deadline_seconds=1000000000 (at most 21600)",
        ),
        (
            {"job_spec_config": {"backoffLimit": 100}},
            "job_spec_config.backoff_limit=100 (not allowed for runs)",
        ),
        (
            {"container_config": {"command": ["sh", "-c", "id"]}},
            "container_config.command=['sh', '-c', 'id'] (not allowed for runs)",
        ),
        (
            {"container_config": {"env": [{"name": "DAGSTER_HOME", "value": "/tmp"}]}},
            "env var 'DAGSTER_HOME' (DAGSTER_* and the platform's env vars are set by the platform)",
        ),
        (
            {
                "container_config": {
                    "env": [
                        {
                            "name": "KEY",
                            "valueFrom": {"secretKeyRef": {"name": "proj-modular_assets-secrets", "key": "k"}},
                        }
                    ]
                }
            },
            "env var 'KEY' from {'secret_key_ref': {'name': 'proj-modular_assets-secrets', 'key': 'k'}} (a run's env vars "
            "are literal or from its granted Secret proj-simple_ops-secrets, ConfigMap proj-simple_ops-env)",
        ),
        (
            {"container_config": {"envFrom": [{"secretRef": {"name": "proj-modular_assets-secrets"}}]}},
            "env from Secret 'proj-modular_assets-secrets' (granted: env from ConfigMap 'proj-simple_ops-env', "
            "env from Secret 'proj-simple_ops-secrets')",
        ),
        (
            {
                "pod_template_spec_metadata": {
                    "annotations": {"container.apparmor.security.beta.kubernetes.io/dagster": "unconfined"}
                }
            },
            "pod_template_spec_metadata.annotations=",
        ),
    ],
)
def test_a_run_asking_for_more_is_refused_naming_what_it_asked_and_what_is_allowed(
    tag: dict[str, Any], named: str
) -> None:
    found = check(tag)

    assert len(found) == 1, found
    assert named in found[0], found[0]


def test_the_job_is_the_policys_whatever_the_run_asked() -> None:
    """Even a run that would be refused cannot change what apply builds: only its env vars are taken."""
    asked = requested(
        GENUINE,
        {
            "container_config": {"image": "attacker/tools:latest", "securityContext": {"runAsUser": 0}},
            "pod_spec_config": {"serviceAccountName": "proj", "volumes": [io("modular_assets")]},
            "pod_template_spec_metadata": {"labels": {"dagster/code-location": "modular_assets"}},
        },
    )
    final = POLICY.apply(asked, "simple_ops").run_k8s_config

    assert final == POLICY.apply(requested(GENUINE), "simple_ops").run_k8s_config


def test_a_namespace_other_than_the_platforms_and_an_unregistered_location_are_refused() -> None:
    other_namespace = {"k8s": {**GENUINE["k8s"], "namespace": "kube-system"}}
    assert POLICY.check(requested(other_namespace), IMAGE, "simple_ops") == [
        "namespace 'kube-system' (runs run in 'proj')"
    ]
    found = POLICY.check(requested({}), "proj-billing:1", "billing")
    assert found == ["code location 'billing' is not registered (registered: modular_assets, simple_ops)"]


def test_the_policy_itself_cannot_be_configured_unsafely() -> None:
    root = PLATFORM._replace(run_k8s_config=PLATFORM.run_k8s_config._replace(container_config={}))
    with pytest.raises(ValueError, match="must not run as root"):
        K8sLaunchPolicy(platform=root, grants={})
    unbounded = K8sContainerContext(namespace="proj", service_account_name=ACCOUNT, security_context=SECURITY_CONTEXT)
    with pytest.raises(ValueError, match=r"limits\.memory"):
        K8sLaunchPolicy(platform=unbounded, grants={})
    with pytest.raises(ValueError, match="names no image"):
        K8sLaunchPolicy(platform=PLATFORM, grants={"simple_ops": LocationGrant(image="")})
