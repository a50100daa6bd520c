"""What a run may be, whichever launcher starts it: the rules both launch policies share.

A stored run (its image, its container context, its tags) is only what some code location
wrote into the shared storage. Each launcher decides from the platform's settings instead,
with the same rules:

* **the image**: a registered location's own image, and nothing else (:meth:`RunRules.check_image`);
* **env vars**: literal values only, and never ``DAGSTER_*`` or one the platform sets
  (:meth:`RunRules.check_env`);
* **the platform's settings**: a run may repeat a setting the platform makes, never change
  it, and may not ask for one the platform does not make at all (:func:`check_setting`);
  what the run gets is the platform's, whatever it asked.

Where the rules apply: :mod:`instance_kit.docker_policy` (a Docker container's
``container_kwargs``) and :mod:`instance_kit.k8s_policy` (the Job dagster-k8s builds).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

LOCATION_PLACEHOLDER = "{location}"
# Env vars a run may not set: the platform's (instance config, DAGSTER_RUN_JOB_NAME, ...).
RESERVED_ENV_PREFIX = "DAGSTER_"


def is_empty(value: Any) -> bool:
    """A value that asks for nothing (a setting stated as off, empty or absent)."""
    return value in (None, False, "", [], {}, ())


def check_setting(name: str, value: Any, platform: Mapping[str, Any], what: str = "runs") -> list[str]:
    """A setting a run states: the platform's own value, or nothing if the platform makes none.

    Everything the platform does not set (privileges, devices, host namespaces, ...) is refused
    unless it is empty: an allowlist, not a denylist.
    """
    key = name.rsplit(".", 1)[-1]
    if key in platform:
        return [] if value == platform[key] else [f"{name}={value!r} (the platform sets {platform[key]!r})"]
    return [] if is_empty(value) else [f"{name}={value!r} (not allowed for {what})"]


class RunRules(ABC):
    """The rules both policies apply; a subclass says what the platform grants and sets."""

    @abstractmethod
    def registered_locations(self) -> frozenset[str]:
        """The code locations whose runs may launch."""

    @abstractmethod
    def image_for(self, location: str) -> str:
        """The one image runs of ``location`` start from."""

    @abstractmethod
    def platform_env_names(self) -> frozenset[str]:
        """The env vars the platform sets in every run, which a run may not set."""

    def allowed_images(self, location: str) -> list[str]:
        """The images runs of ``location`` may start from: its own first, then any other release of it."""
        return [self.image_for(location)]

    def allows_image(self, location: str, image: str) -> bool:
        """``image`` is one of ``location``'s releases (a registered location's)."""
        return image in self.allowed_images(location)

    def describe_images(self, location: str) -> str:
        """What :meth:`allows_image` allows, as a refusal names it."""
        allowed = self.allowed_images(location)
        releases = f" or one of its {len(allowed) - 1} recorded releases" if len(allowed) > 1 else ""
        return f"{allowed[0]!r}{releases}"

    def check_image(self, image: str | None, location: str | None) -> list[str]:
        """Violations of the image rule: a registered location, and only its own image (or releases)."""
        if not location:
            return ["no code location is recorded on the run"]
        locations = self.registered_locations()
        if location not in locations:
            registered = ", ".join(sorted(locations)) or "none"
            return [f"code location {location!r} is not registered (registered: {registered})"]
        if image is not None and not self.allows_image(location, image):
            return [f"image {image!r} (code location {location!r} runs only {self.describe_images(location)})"]
        return []

    def check_env(self, name: str, literal: bool) -> list[str]:
        """An env var a run sets: ``literal`` when it has a value of its own (not the launcher's, a Secret's...)."""
        if name.startswith(RESERVED_ENV_PREFIX) or name in self.platform_env_names():
            return [f"env var {name!r} (DAGSTER_* and the platform's env vars are set by the platform)"]
        if not literal:
            return [f"env var {name!r} without a value (only NAME=value is allowed)"]
        return []

    def check_env_vars(self, env_vars: Iterable[str]) -> list[str]:
        """Dagster's ``NAME=value`` form (a bare NAME would copy the launcher's own value into the run)."""
        violations = []
        for env_var in env_vars:
            name, has_value, _ = env_var.partition("=")
            violations += self.check_env(name, bool(has_value))
        return violations
