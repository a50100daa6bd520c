"""What a run's Docker container may be: the launch policy, pure data checked and applied without Docker.

The checks read only a run's requested container context (registry, env vars, networks and
``container_kwargs``), its image, code location and command; :meth:`LaunchPolicy.apply` builds
the Docker launcher's container context from the policy alone. The rules it shares with the
Kubernetes policy (image, env vars, the platform's settings) are :mod:`instance_kit.policy`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from dagster_docker.container_context import DockerContainerContext
from docker.utils import parse_bytes

from instance_kit.policy import LOCATION_PLACEHOLDER, RunRules, check_setting

DEFAULT_USER = "10001:10001"

# What every run container gets, whatever it asks for.
CAP_DROP = ("ALL",)
SECURITY_OPT = ("no-new-privileges",)

# The only commands the launcher itself builds (dagster_docker's launch_run / resume_run).
ALLOWED_COMMANDS = (("dagster", "api", "execute_run"), ("dagster", "api", "resume_run"))


class RequestedContext(Protocol):
    """What a run asks for its container (``DockerContainerContext`` has these fields)."""

    @property
    def registry(self) -> Mapping[str, str] | None: ...
    @property
    def env_vars(self) -> Sequence[str]: ...
    @property
    def networks(self) -> Sequence[str]: ...
    @property
    def container_kwargs(self) -> Mapping[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class VolumeGrant:
    """Where a granted named volume is mounted in a run container."""

    bind: str
    mode: str = "rw"


@dataclasses.dataclass(frozen=True)
class LaunchPolicy(RunRules):
    """What a run container may be: pure data, checked and applied without Docker."""

    image_template: str
    mem_limit: str | int
    pids_limit: int
    locations: frozenset[str] = frozenset()
    #: Per location, the tags of its recorded releases (instance_kit.releases): a run may start
    #: from any of them, e.g. one queued before a deploy, with the code it was queued with.
    release_tags: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    user: str = DEFAULT_USER
    networks: tuple[str, ...] = ()
    volumes: Mapping[str, VolumeGrant] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    env_vars: tuple[str, ...] = ()
    container_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    registry: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if LOCATION_PLACEHOLDER not in self.image_template:
            raise ValueError(f"image_template {self.image_template!r} must contain {{location}}")
        if _is_root(self.user):
            raise ValueError(f"user {self.user!r} is root: run containers must not run as root")
        if parse_bytes(self.mem_limit) <= 0 or self.pids_limit <= 0:
            raise ValueError("mem_limit and pids_limit must be positive")
        for mode in (grant.mode for grant in self.volumes.values()):
            if mode not in ("rw", "ro"):
                raise ValueError(f"volume mode {mode!r} must be 'rw' or 'ro'")
        # The platform's own container_kwargs must not fight the policy over its keys.
        clashing = sorted(POLICY_KEYS & set(self.container_kwargs))
        if clashing:
            raise ValueError(
                f"container_kwargs {clashing} are set by the launch policy: "
                "use the launcher's own keys (user, volumes, mem_limit, pids_limit, labels)"
            )

    def registered_locations(self) -> frozenset[str]:
        return self.locations

    def image_for(self, location: str) -> str:
        return self.image_template.replace(LOCATION_PLACEHOLDER, location)

    def allowed_images(self, location: str) -> list[str]:
        """The location's image (``image_template``), and the same repository at each recorded release."""
        image = self.image_for(location)
        repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        return [image, *(f"{repository}:{tag}" for tag in sorted(self.release_tags.get(location, ())))]

    def platform_env_names(self) -> frozenset[str]:
        return frozenset(env_var.split("=", 1)[0] for env_var in self.env_vars)

    def networks_for(self, location: str) -> list[str]:
        return [network.replace(LOCATION_PLACEHOLDER, location) for network in self.networks]

    def volumes_for(self, location: str) -> dict[str, VolumeGrant]:
        return {name.replace(LOCATION_PLACEHOLDER, location): grant for name, grant in self.volumes.items()}

    def check(
        self,
        requested: RequestedContext,
        image: str | None,
        location: str | None,
        command: Sequence[str] | None = None,
    ) -> list[str]:
        """Everything the run's container context, image, location or command asks beyond the policy."""
        violations = self.check_image(image, location)
        if command is not None and tuple(command[:3]) not in ALLOWED_COMMANDS:
            violations.append(
                f"command {list(command[:3])} (runs start only with 'dagster api execute_run' "
                "or 'dagster api resume_run')"
            )
        if requested.registry is not None:
            violations.append("registry settings (the platform's registry is used)")
        violations += self.check_env_vars(requested.env_vars)
        granted_networks = self.networks_for(location or "")
        for network in requested.networks:
            if network not in granted_networks:
                violations.append(f"network {network!r} (granted: {', '.join(granted_networks) or 'none'})")
        for key, value in requested.container_kwargs.items():
            violations += self._check_kwarg(key, value, location or "")
        return violations

    def apply(self, requested: RequestedContext, location: str) -> DockerContainerContext:
        """The container context a run is launched with: the platform's settings and the run's env vars.

        Only env vars are taken from the run (after :meth:`check` passed): everything
        else is the policy's, so nothing the run asked for reaches ``containers.create``.
        """
        container_kwargs = {
            **self.container_kwargs,
            "user": self.user,
            "cap_drop": list(CAP_DROP),
            "security_opt": list(SECURITY_OPT),
            "read_only": True,
            "volumes": {
                name: {"bind": grant.bind, "mode": grant.mode} for name, grant in self.volumes_for(location).items()
            },
            "mem_limit": self.mem_limit,
            "pids_limit": self.pids_limit,
            "labels": dict(self.labels),
        }
        return DockerContainerContext(
            registry=self.registry,
            env_vars=[*self.env_vars, *requested.env_vars],
            networks=self.networks_for(location),
            container_kwargs=container_kwargs,
        )

    def _check_kwarg(self, key: str, value: Any, location: str) -> list[str]:
        validate = KWARG_CHECKS.get(key)
        if validate is not None:
            return validate(self, value, location)
        # Everything else (privileged, cap_add, devices, mounts, network_mode, pid_mode, ipc_mode,
        # volumes_from, sysctls, ...) only as the platform's container_kwargs have it, or empty.
        return check_setting(key, value, self.container_kwargs, what="run containers")


# --- what a run may say about each key the policy sets: (policy, value, location) -> violations ---


def _check_user(policy: LaunchPolicy, value: Any, location: str) -> list[str]:
    return [f"user={value!r} (runs run as {policy.user!r})"] if str(value) != policy.user else []


def _check_cap_drop(policy: LaunchPolicy, value: Any, location: str) -> list[str]:
    if "ALL" not in {str(cap).upper() for cap in _as_list(value)}:
        return [f"cap_drop={value!r} (runs drop ALL capabilities)"]
    return []


def _check_security_opt(policy: LaunchPolicy, value: Any, location: str) -> list[str]:
    extra = [opt for opt in _as_list(value) if opt not in SECURITY_OPT]
    return [f"security_opt {extra!r} (allowed: {list(SECURITY_OPT)})"] if extra else []


def _check_read_only(policy: LaunchPolicy, value: Any, location: str) -> list[str]:
    return [f"read_only={value!r} (run containers have a read-only root filesystem)"] if value is not True else []


def _check_volumes(policy: LaunchPolicy, value: Any, location: str) -> list[str]:
    grants = policy.volumes_for(location)
    granted = ", ".join(f"{name}:{g.bind}:{g.mode}" for name, g in grants.items())
    allowed = f"(granted: {granted or 'none'})"
    violations = []
    for source, bind, mode in _volume_entries(value):
        grant = grants.get(source)
        if grant is None:
            if source.startswith(("/", ".", "~")) or "/" in source:
                violations.append(f"bind mount of host path {source!r} at {bind!r} {allowed}")
            else:
                violations.append(f"volume {source!r} at {bind!r} {allowed}")
        elif bind != grant.bind or mode not in (grant.mode, "ro"):
            violations.append(f"volume {source!r} at {bind!r} mode {mode!r} {allowed}")
    return violations


def _check_mem_limit(policy: LaunchPolicy, value: Any, location: str) -> list[str]:
    asked = _bytes_or_none(value)
    if asked is None or not 0 < asked <= parse_bytes(policy.mem_limit):
        return [f"mem_limit={value!r} (at most {policy.mem_limit!r})"]
    return []


def _check_pids_limit(policy: LaunchPolicy, value: Any, location: str) -> list[str]:
    if not isinstance(value, int) or not 0 < value <= policy.pids_limit:
        return [f"pids_limit={value!r} (at most {policy.pids_limit})"]
    return []


def _check_labels(policy: LaunchPolicy, value: Any, location: str) -> list[str]:
    labels = {label: "" for label in value} if isinstance(value, list) else dict(value)
    foreign = {k: v for k, v in labels.items() if policy.labels.get(k) != v}
    return [f"labels {foreign!r} (allowed: {dict(policy.labels)!r})"] if foreign else []


KWARG_CHECKS: Mapping[str, Callable[[LaunchPolicy, Any, str], list[str]]] = {
    "user": _check_user,
    "cap_drop": _check_cap_drop,
    "security_opt": _check_security_opt,
    "read_only": _check_read_only,
    "volumes": _check_volumes,
    "mem_limit": _check_mem_limit,
    "pids_limit": _check_pids_limit,
    "labels": _check_labels,
}
# container_kwargs keys the policy itself sets: a run may state them only within the policy.
POLICY_KEYS = frozenset(KWARG_CHECKS)


def _is_root(user: str) -> bool:
    return user.split(":", 1)[0].strip() in ("", "0", "root")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set) else [value]


def _bytes_or_none(value: Any) -> int | None:
    try:
        return int(parse_bytes(value))
    except Exception:  # docker-py raises its own DockerException for bad sizes
        return None


def _volume_entries(value: Any) -> list[tuple[str, str, str]]:
    """(source, bind, mode) of docker-py's ``volumes`` in its dict or list form."""
    entries = []
    if isinstance(value, Mapping):
        for source, spec in value.items():
            if isinstance(spec, Mapping):
                entries.append((str(source), str(spec.get("bind")), str(spec.get("mode", "rw"))))
            else:
                entries.append((str(source), str(spec), "rw"))
    elif isinstance(value, list | tuple):
        for item in value:
            parts = str(item).split(":")
            # "dst" alone is an anonymous volume; still nothing the policy grants.
            source, bind = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
            entries.append((source, bind, parts[2] if len(parts) > 2 else "rw"))
    else:
        entries.append((repr(value), "?", "?"))
    return entries
