"""What a run's Kubernetes Job may be: the launch policy, pure data checked and applied without a cluster.

dagster-k8s builds a run's Job from a ``K8sContainerContext``: the run launcher's settings,
with the run's own container context (what its code server reported) and its
``dagster-k8s/config`` tag merged over them. Both come from the shared run storage, so the
policy reads them only as what the run asks for, in dagster-k8s' normalized sections
(``container_config``, ``pod_spec_config``, ``pod_template_spec_metadata``, ``job_metadata``,
``job_spec_config``, ``job_config``) and its namespace, and builds the context the Job is made
from out of the platform's settings alone (:meth:`K8sLaunchPolicy.apply`):

* what every run gets (``platform``): the launcher's own settings (namespace, service
  account, the restricted security contexts, resources, the shared claims, the time limit);
* what one location's runs get (``grants``): its image, its claims, ConfigMaps and Secrets;
* the image: the one the run's code server reported, if it is a release of the run's own
  location (its grant's repository, at any tag or digest), else the grant's;
* the run's own env vars, literal or from a Secret or ConfigMap its location is granted;
* the location label (``dagster/code-location``, which the NetworkPolicies admit) of the
  verified location, never one the run states.

A run may ask for what its location is granted (the same volume, mount, ConfigMap, Secret),
for the platform's settings as they are (or lower resources and time limits), and nothing
else; the rules it shares with the Docker policy are :mod:`instance_kit.policy`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import UserDefinedDagsterK8sConfig
from kubernetes.utils import parse_quantity  # type: ignore[import-untyped]

from instance_kit.policy import RunRules, check_setting, is_empty

LOCATION_LABEL = "dagster/code-location"
#: The parts of a run's Job a run may ask for (dagster-k8s' UserDefinedDagsterK8sConfig, for runs).
SECTIONS = (
    "container_config",
    "pod_spec_config",
    "pod_template_spec_metadata",
    "job_metadata",
    "job_spec_config",
    "job_config",
)
#: Limits a run may lower, never raise (paths in the sections above).
AT_MOST = frozenset({"job_spec_config.active_deadline_seconds"})


def repository_of(image: str) -> str:
    """An image reference without its tag or digest (a registry's port is not a tag)."""
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


@dataclasses.dataclass(frozen=True)
class LocationGrant:
    """What a location's runs get beyond every run's: its image, and its volumes, ConfigMaps and Secrets.

    ``image`` is the location's repository at the release the values name; a run may start from
    that repository at any other tag too (one location shipped on its own with ``helm upgrade``,
    or a run queued before that). The repository is the location's own: its team can push any
    code to it already, so a list of tags would not narrow what the team may run. No other
    location's repository is allowed.
    """

    image: str
    context: K8sContainerContext = dataclasses.field(default_factory=K8sContainerContext)

    @property
    def repository(self) -> str:
        return repository_of(self.image)


@dataclasses.dataclass(frozen=True)
class K8sLaunchPolicy(RunRules):
    """What a run's Job may be: every run's settings (``platform``) and each location's ``grants``."""

    platform: K8sContainerContext
    grants: Mapping[str, LocationGrant]

    def __post_init__(self) -> None:
        container = self.platform.run_k8s_config.container_config
        pod = self.platform.run_k8s_config.pod_spec_config
        user = (container.get("security_context") or {}).get("run_as_user")
        non_root = (container.get("security_context") or {}).get("run_as_non_root") or (
            pod.get("security_context") or {}
        ).get("run_as_non_root")
        if user in (None, 0) or non_root is not True:
            raise ValueError(
                "the run launcher's security_context must set runAsNonRoot: true and a runAsUser other than 0: "
                "runs must not run as root"
            )
        if not (container.get("resources") or {}).get("limits", {}).get("memory"):
            raise ValueError("the run launcher's resources must set limits.memory: every run is bounded")
        if not self.platform.namespace or not pod.get("service_account_name"):
            raise ValueError("the run launcher must set job_namespace and service_account_name")
        for location, grant in self.grants.items():
            if not grant.image:
                raise ValueError(f"the grant of code location {location!r} names no image")

    def registered_locations(self) -> frozenset[str]:
        return frozenset(self.grants)

    def image_for(self, location: str) -> str:
        return self.grants[location].image

    def allows_image(self, location: str, image: str) -> bool:
        grant = self.grants.get(location)
        return grant is not None and (image == grant.image or repository_of(image) == grant.repository)

    def describe_images(self, location: str) -> str:
        return f"{self.image_for(location)!r} or another tag of {self.grants[location].repository!r}"

    def platform_env_names(self) -> frozenset[str]:
        return frozenset(entry["name"] for entry in self.platform.run_k8s_config.container_config.get("env", []))

    def allowed(self, location: str) -> dict[str, Any]:
        """Every run of ``location``'s sections, as the Job gets them: the platform's and its grant's."""
        return self._context(location, [], None).run_k8s_config.to_dict()

    def apply(self, requested: K8sContainerContext, location: str, image: str | None = None) -> K8sContainerContext:
        """The context a run's Job is built from: the platform's and its grant's, and the run's env vars.

        Only env vars are taken from the run (after :meth:`check` passed), and its ``image`` (what
        its code server reported) if it is a release of ``location``: everything else is the
        policy's, so nothing else the run asked for reaches the Job.
        """
        return self._context(location, list(requested.run_k8s_config.container_config.get("env", [])), image)

    def _context(self, location: str, env: list[Any], image: str | None) -> K8sContainerContext:
        grant = self.grants.get(location)
        if grant is not None and not (image and self.allows_image(location, image)):
            image = grant.image
        labels = {LOCATION_LABEL: location}
        own = {
            "container_config": {"image": image if grant else None, **({"env": env} if env else {})},
            "pod_template_spec_metadata": {"labels": labels},
            "job_metadata": {"labels": labels},
        }
        context = self.platform.merge(grant.context) if grant else self.platform
        return context.merge(K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(own)))

    def check(self, requested: K8sContainerContext, image: str | None, location: str | None) -> list[str]:
        """Everything the run's context (its container context and tags), image or location asks beyond the policy."""
        violations = self.check_image(image, location)
        allowed = self.allowed(location or "")
        asked = requested.run_k8s_config.to_dict()
        asked_image = asked["container_config"].get("image")
        if asked_image is not None:
            violations += [v for v in self.check_image(asked_image, location) if v not in violations]
        if requested.namespace not in (None, self.platform.namespace):
            violations.append(f"namespace {requested.namespace!r} (runs run in {self.platform.namespace!r})")
        for section in SECTIONS:
            for key, value in asked[section].items():
                if (section, key) == ("container_config", "image"):
                    continue
                violations += self._check(f"{section}.{key}", value, allowed[section])
        return violations

    def _check(self, path: str, value: Any, allowed: Mapping[str, Any]) -> list[str]:
        key = path.rsplit(".", 1)[-1]
        if path == "container_config.env":
            return self._check_env(value, allowed)
        if path == "container_config.resources":
            return _check_resources(value, allowed.get(key) or {})
        if path in AT_MOST and key in allowed:
            return (
                []
                if isinstance(value, int) and 0 < value <= allowed[key]
                else [f"{path}={value!r} (at most {allowed[key]!r})"]
            )
        if isinstance(value, Mapping) and isinstance(allowed.get(key), Mapping):
            return [v for name, item in value.items() for v in self._check(f"{path}.{name}", item, allowed[key])]
        if isinstance(value, list) and isinstance(allowed.get(key), list):
            granted = allowed[key]
            return [
                f"{_describe(path, item)} (granted: {', '.join(_describe(path, g) for g in granted) or 'none'})"
                for item in value
                if not any(_within(path, item, g) for g in granted)
            ]
        return check_setting(path, value, allowed)

    def _check_env(self, env: Sequence[Mapping[str, Any]], container: Mapping[str, Any]) -> list[str]:
        sources = container.get("env_from") or []
        secrets = {s["secret_ref"]["name"] for s in sources if s.get("secret_ref")}
        config_maps = {s["config_map_ref"]["name"] for s in sources if s.get("config_map_ref")}
        violations = []
        for entry in env:
            name, value_from = str(entry.get("name")), entry.get("value_from") or {}
            if is_empty(value_from):
                violations += self.check_env(name, entry.get("value") is not None)
                continue
            secret, config_map = value_from.get("secret_key_ref"), value_from.get("config_map_key_ref")
            if (set(value_from) == {"secret_key_ref"} and secret and secret.get("name") in secrets) or (
                set(value_from) == {"config_map_key_ref"} and config_map and config_map.get("name") in config_maps
            ):
                violations += self.check_env(name, True)
            else:
                granted = ", ".join(
                    [*(f"Secret {s}" for s in sorted(secrets)), *(f"ConfigMap {c}" for c in sorted(config_maps))]
                )
                violations.append(
                    f"env var {name!r} from {dict(value_from)!r} (a run's env vars are literal or from its "
                    f"granted {granted or 'nothing'})"
                )
        return violations


def _within(path: str, item: Any, granted: Any) -> bool:
    """``item`` asks for ``granted`` or less (a granted volume mounted read-only is less)."""
    if item == granted:
        return True
    if path.endswith(".volume_mounts") and isinstance(item, Mapping) and isinstance(granted, Mapping):
        return item.get("read_only") is True and _without(item, "read_only") == _without(granted, "read_only")
    return False


def _without(mapping: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _describe(path: str, item: Any) -> str:
    """A list item as a message names it: a volume by its source, a mount by its path, a source by its kind."""
    if not isinstance(item, Mapping):
        return f"{path} item {item!r}"
    if path.endswith(".volumes"):
        sources = {k: v for k, v in item.items() if k != "name" and v is not None}
        return f"volume {item.get('name')!r} {sources!r}"
    if path.endswith(".volume_mounts"):
        mode = "ro" if item.get("read_only") else "rw"
        sub = f" (subPath {item['sub_path']!r})" if item.get("sub_path") else ""
        return f"mount of {item.get('name')!r} at {item.get('mount_path')!r} {mode}{sub}"
    if path.endswith(".env_from"):
        if item.get("secret_ref"):
            return f"env from Secret {item['secret_ref'].get('name')!r}"
        if item.get("config_map_ref"):
            return f"env from ConfigMap {item['config_map_ref'].get('name')!r}"
    return f"{path} item {dict(item)!r}"


def _check_resources(asked: Mapping[str, Any], allowed: Mapping[str, Any]) -> list[str]:
    """Resources at most the platform's: its limit (else its request) of the same resource."""
    violations = []
    for kind, amounts in asked.items():
        if kind not in ("limits", "requests") or not isinstance(amounts, Mapping):
            violations += check_setting(f"container_config.resources.{kind}", amounts, {})
            continue
        for resource, quantity in amounts.items():
            cap = (allowed.get("limits") or {}).get(resource) or (allowed.get(kind) or {}).get(resource)
            name = f"container_config.resources.{kind}.{resource}"
            try:
                within = cap is not None and parse_quantity(quantity) <= parse_quantity(cap)
            except ValueError:
                within = False
            if not within:
                violations.append(
                    f"{name}={quantity!r} (at most {cap!r})" if cap else f"{name}={quantity!r} (not allowed for runs)"
                )
    return violations
