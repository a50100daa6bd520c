"""Each code location's releases: the images it was deployed from, which one is live, and when.

A release is an image of one location, tagged with its content id: a hash of the image's code,
platform libraries and installed packages (each records its files' hashes), computed when the
image is built (``/opt/dagster/release-id``, deploy/Dockerfile). The same content gets the same
tag, and a tag is never moved.

One record per location and compose project, ``<releases dir>/<project>/<location>.json``,
written on the host by ``make deploy``, ``make rollback`` and ``make up``
(template_tools.deploy). The launch policy reads it in the daemon: a run may start from any
recorded release of its own location (a run queued before a deploy starts with the code it was
queued with), and from no other location's image.

Next to it, ``<location>.env`` (compose's ``env_file`` of the location's service) tells the code
server which release it is, so that it reports that immutable tag to the runs it plans.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Where an image keeps its content id (deploy/Dockerfile writes it).
RELEASE_ID_FILE = "/opt/dagster/release-id"
#: How many releases of a location are kept (their images too): enough to roll back a few deploys.
KEEP = 5


class ReleaseError(ValueError):
    """A record that cannot be read; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Release:
    """One image of a location."""

    tag: str  # its content id, the image's tag
    built: str  # when `make deploy` or `make up` recorded it (ISO 8601, UTC)
    commit: str = ""  # the git commit it was built from, with "+changes" for uncommitted ones


@dataclasses.dataclass(frozen=True)
class Deployment:
    """A release made live."""

    tag: str
    at: str  # ISO 8601, UTC
    by: str  # an API token's name, or the host's user
    action: str  # "deploy", "rollback", or "up" (`make up` recreated the location)


@dataclasses.dataclass
class LocationReleases:
    location: str
    releases: list[Release] = dataclasses.field(default_factory=list)
    history: list[Deployment] = dataclasses.field(default_factory=list)

    @property
    def live(self) -> str | None:
        return self.history[-1].tag if self.history else None

    @property
    def previous(self) -> str | None:
        """The release that was live before the live one: what `make rollback` returns to."""
        live = self.live
        return next((d.tag for d in reversed(self.history) if d.tag != live), None)

    def release(self, tag: str) -> Release | None:
        return next((r for r in self.releases if r.tag == tag), None)

    def add(self, release: Release) -> None:
        if self.release(release.tag) is None:
            self.releases.append(release)

    def prune(self, keep: int = KEEP) -> list[str]:
        """Forget all but the ``keep`` newest releases (never the live or previous one); the forgotten tags."""
        kept = {self.live, self.previous} | {r.tag for r in self.releases[-keep:]}
        dropped = [r.tag for r in self.releases if r.tag not in kept]
        self.releases = [r for r in self.releases if r.tag in kept]
        return dropped

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LocationReleases:
        return cls(
            location=str(data["location"]),
            releases=[Release(**r) for r in data.get("releases") or []],
            history=[Deployment(**d) for d in data.get("history") or []],
        )


def record_path(directory: Path, location: str) -> Path:
    return directory / f"{location}.json"


def env_path(directory: Path, location: str) -> Path:
    return directory / f"{location}.env"


def read(directory: Path, location: str) -> LocationReleases:
    """The location's record (an empty one when there is none yet)."""
    path = record_path(directory, location)
    try:
        return LocationReleases.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return LocationReleases(location)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReleaseError(
            f"{path} is not a readable release record ({error}): restore it from a backup of the "
            "releases folder, or delete it (the next `make deploy` starts a new record)"
        ) from None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write(directory: Path, record: LocationReleases) -> None:
    """The record and the location's env file, each replaced atomically."""
    _write(record_path(directory, record.location), json.dumps(record.to_json(), indent=2) + "\n")
    _write(env_path(directory, record.location), env_text(record.live))


def write_env(directory: Path, location: str, tag: str | None) -> None:
    """Only the env file: a deploy writes it before the new release's server starts."""
    _write(env_path(directory, location), env_text(tag))


def restore_env(path: Path, text: str | None) -> None:
    """Put back an env file as it was (``None``: there was none)."""
    if text is None:
        path.unlink(missing_ok=True)
    else:
        _write(path, text)


def env_text(live: str | None) -> str:
    """The code server's env file: which release it runs (checked against the image's own id)."""
    header = "# Written by make deploy / make rollback / make up: the release this location runs.\n"
    return header + (f"DAGSTER_RELEASE={live}\n" if live else "")


def release_tags(directory: str | Path | None, locations: Iterable[str]) -> dict[str, frozenset[str]]:
    """Each location's recorded release tags (none where there is no record or no directory)."""
    if not directory:
        return {}
    tags = {}
    for location in locations:
        record = read(Path(directory), location)
        tags[location] = frozenset(r.tag for r in record.releases)
    return tags
