"""The metrics service's settings, from the environment: each checked, a bad one named with its fix."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import yaml
from dagster._core.instance.ref import InstanceRef  # the only check of dagster.yaml that does not connect

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 9102


class ConfigError(Exception):
    """A bad setting; the message names the variable and what to set."""


@dataclasses.dataclass(frozen=True)
class CodeServer:
    """A grpc_server entry of workspace.yaml."""

    location: str
    host: str
    port: int


class Volume(NamedTuple):
    """A file system whose usage is reported, by name (METRICS_VOLUMES)."""

    name: str
    path: str


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str
    port: int
    code_servers: tuple[CodeServer, ...]
    volumes: tuple[Volume, ...]


def read_code_servers(path: Path) -> tuple[CodeServer, ...]:
    """The grpc_server locations of a workspace.yaml (other kinds of entries have no server to probe)."""
    workspace = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    servers = []
    for entry in workspace.get("load_from") or []:
        target = entry.get("grpc_server") if isinstance(entry, Mapping) else None
        if not isinstance(target, Mapping):
            continue
        name = str(target.get("location_name") or target.get("host") or "")
        try:
            port = int(target["port"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{name or 'a grpc_server entry'} has no integer port") from None
        servers.append(CodeServer(name, str(target.get("host") or "localhost"), port))
    return tuple(servers)


def parse_volumes(value: str) -> tuple[Volume, ...]:
    """``name=path,name=path`` (blank: none)."""
    volumes: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, path = (part.strip() for part in item.partition("="))
        if not sep or not name or not path:
            raise ConfigError(
                f"METRICS_VOLUMES: {item!r} is not name=path: set comma-separated name=path pairs, "
                "e.g. storage=/opt/dagster/storage,exports=/opt/dagster/exports"
            )
        if name in volumes:
            raise ConfigError(f"METRICS_VOLUMES: the name {name!r} is given twice: give each volume its own name")
        volumes[name] = path
    return tuple(Volume(name, path) for name, path in volumes.items())


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The exporter's settings, each checked (:class:`ConfigError` names the variable and the fix)."""
    home = env.get("DAGSTER_HOME", "")
    if not home or not (Path(home) / "dagster.yaml").is_file():
        raise ConfigError(
            f"DAGSTER_HOME={home!r} has no dagster.yaml: set DAGSTER_HOME to the folder of the deployment's dagster.yaml"
        )
    try:
        InstanceRef.from_dir(home)
    except Exception as error:
        raise ConfigError(f"DAGSTER_HOME: {home}/dagster.yaml is not a valid instance config: {error}") from None
    raw_port = env.get("METRICS_PORT", str(DEFAULT_PORT))
    if not raw_port.strip().isdigit() or not 0 < int(raw_port) < 65536:
        raise ConfigError(
            f"METRICS_PORT={raw_port!r} is not a port: set a number from 1 to 65535 (default {DEFAULT_PORT})"
        )
    workspace = Path(env.get("METRICS_WORKSPACE") or Path(home) / "workspace.yaml")
    if not workspace.is_file():
        raise ConfigError(
            f"METRICS_WORKSPACE={str(workspace)!r} is not a file: set it to the deployment's workspace.yaml "
            "(default $DAGSTER_HOME/workspace.yaml)"
        )
    try:
        code_servers = read_code_servers(workspace)
    except (ConfigError, yaml.YAMLError, AttributeError) as error:
        raise ConfigError(f"METRICS_WORKSPACE={str(workspace)!r} is not a usable workspace.yaml: {error}") from None
    volumes = parse_volumes(env.get("METRICS_VOLUMES", ""))
    for volume in volumes:
        try:
            os.statvfs(volume.path)
        except OSError as error:
            raise ConfigError(
                f"METRICS_VOLUMES: {volume.name}={volume.path}: {error.strerror}: mount the volume there or fix the path"
            ) from None
    return Settings(env.get("METRICS_HOST") or DEFAULT_HOST, int(raw_port), code_servers, volumes)
