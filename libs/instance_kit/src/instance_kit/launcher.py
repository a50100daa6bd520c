"""A Docker run launcher that starts run containers only as the platform allows.

``dagster_docker.DockerRunLauncher`` merges each run's stored container context
(and image) over the instance's ``container_kwargs``. The stored run comes from
the shared Postgres storage, which every code location can write, so a
compromised location could ask the daemon for ``user=0``, ``privileged``, a bind
mount of ``/var/run/docker.sock``, another location's image or network, and get
it. :class:`PolicyDockerRunLauncher` decides in the daemon instead:

* a run starts only from its own code location's image (``image_template`` with
  ``{location}``), and only if that location is registered in ``locations_file``
  (the deployment's ``workspace.yaml``);
* every container gets the platform's user, ``cap_drop: [ALL]``,
  ``no-new-privileges``, a read-only root filesystem, the granted named volumes
  and networks, ``mem_limit``, ``pids_limit`` and labels;
* a run's container context may repeat what the policy grants (or less) and add
  env vars with literal values; anything more refuses the run: an engine event
  names what was asked and what the policy allows, the run is marked failed and
  no container is created;
* the run is what its code location serves: the location it names (its remote
  job origin) is loaded in the daemon's workspace and has the run's repository
  and job, and the code the run worker would load (its job code origin: code
  pointer, executable, entry point, image and container context) is exactly the
  one that location's own gRPC server reports. The stored origins are only what
  some location wrote; the workspace reaches each server by its network name. A
  run of a registered location that is not loaded (its server down or
  redeploying) is not refused but handed back to the run queue (see
  :func:`origin_violations`).

Networks and volume names may contain ``{location}``: each run gets (and may
ask for) its own location's, never another location's.

Configure it in ``dagster.yaml`` in place of ``dagster_docker.DockerRunLauncher``::

    run_launcher:
      module: instance_kit.launcher
      class: PolicyDockerRunLauncher
      config:
        env_vars: [DAGSTER_PG_HOST, ...]          # the platform's, as before
        image_template: {env: DAGSTER_RUN_IMAGE_TEMPLATE}  # "myproject-{location}:local"
        locations_file: /opt/dagster/dagster_home/workspace.yaml
        networks: ["{location}_net"]              # or [{env: ...}]
        volumes:
          - {name: {env: DAGSTER_STORAGE_VOLUME}, bind: /opt/dagster/storage, mode: rw}
          - {name: "proj_{location}_io", bind: /opt/dagster/io}  # one per location
        mem_limit: {env: DAGSTER_MAX_RUN_MEMORY}
        pids_limit: 512
        labels: {com.example.role: run}
        container_kwargs:                         # the rest of the platform's settings
          auto_remove: true
          tmpfs: {/tmp: "rw,noexec,nosuid,size=256m"}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import dagster._check as check
import yaml
from dagster._core.errors import DagsterInvalidConfigError, DagsterUserCodeUnreachableError
from dagster._core.launcher import LaunchRunContext, ResumeRunContext
from dagster._core.storage.tags import DOCKER_IMAGE_TAG, MAX_RETRIES_TAG, MAX_RUNTIME_SECONDS_TAG
from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs
from dagster._serdes.config_class import ConfigurableClassData
from dagster._utils.merger import merge_dicts
from dagster_docker import DockerRunLauncher
from dagster_docker.container_context import DockerContainerContext
from dagster_docker.utils import DOCKER_CONFIG_SCHEMA
from docker.utils import parse_bytes

if TYPE_CHECKING:
    from dagster._core.origin import RepositoryPythonOrigin
    from dagster._core.workspace.context import BaseWorkspaceRequestContext

DEFAULT_LOCATIONS_FILE = "/opt/dagster/dagster_home/workspace.yaml"
DEFAULT_USER = "10001:10001"
LOCATION_PLACEHOLDER = "{location}"

# What every run container gets, whatever it asks for.
CAP_DROP = ("ALL",)
SECURITY_OPT = ("no-new-privileges",)

# container_kwargs keys the policy itself sets: a run may state them only within the policy.
POLICY_KEYS = frozenset(
    {"user", "cap_drop", "security_opt", "read_only", "volumes", "mem_limit", "pids_limit", "labels"}
)
# The only commands the launcher itself builds (dagster_docker's launch_run / resume_run).
ALLOWED_COMMANDS = (("dagster", "api", "execute_run"), ("dagster", "api", "resume_run"))
# Env vars a run may not set: the platform's (instance config, DAGSTER_RUN_JOB_NAME, ...).
RESERVED_ENV_PREFIX = "DAGSTER_"
# Everything of a RepositoryPythonOrigin: the run worker loads and runs the code these describe.
ORIGIN_FIELDS = ("code_pointer", "executable_path", "entry_point", "container_image", "container_context")


@dataclasses.dataclass(frozen=True)
class VolumeGrant:
    """Where a granted named volume is mounted in a run container."""

    bind: str
    mode: str = "rw"


@dataclasses.dataclass(frozen=True)
class LaunchPolicy:
    """What a run container may be: pure data, checked and applied without Docker."""

    image_template: str
    mem_limit: str | int
    pids_limit: int
    locations: frozenset[str] = frozenset()
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

    def image_for(self, location: str) -> str:
        return self.image_template.replace(LOCATION_PLACEHOLDER, location)

    def networks_for(self, location: str) -> list[str]:
        return [network.replace(LOCATION_PLACEHOLDER, location) for network in self.networks]

    def volumes_for(self, location: str) -> dict[str, VolumeGrant]:
        return {name.replace(LOCATION_PLACEHOLDER, location): grant for name, grant in self.volumes.items()}

    def check_image(self, image: str | None, location: str | None) -> list[str]:
        """Violations of the image rule: a registered location, and only its own image."""
        if not location:
            return ["no code location is recorded on the run"]
        if location not in self.locations:
            registered = ", ".join(sorted(self.locations)) or "none"
            return [f"code location {location!r} is not registered (registered: {registered})"]
        allowed = self.image_for(location)
        if image is not None and image != allowed:
            return [f"image {image!r} (code location {location!r} runs only {allowed!r})"]
        return []

    def check(
        self,
        requested: DockerContainerContext,
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
        violations += self._check_env_vars(requested.env_vars)
        granted_networks = self.networks_for(location or "")
        for network in requested.networks:
            if network not in granted_networks:
                violations.append(f"network {network!r} (granted: {', '.join(granted_networks) or 'none'})")
        for key, value in requested.container_kwargs.items():
            violations += self._check_kwarg(key, value, location or "")
        return violations

    def apply(self, requested: DockerContainerContext, location: str) -> DockerContainerContext:
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

    def _check_env_vars(self, env_vars: Iterable[str]) -> list[str]:
        platform_names = {env_var.split("=", 1)[0] for env_var in self.env_vars}
        violations = []
        for env_var in env_vars:
            name, has_value, _ = env_var.partition("=")
            if name.startswith(RESERVED_ENV_PREFIX) or name in platform_names:
                violations.append(f"env var {name!r} (DAGSTER_* and the platform's env vars are set by the platform)")
            elif not has_value:
                # A bare name would copy the daemon's own value of it into the run.
                violations.append(f"env var {name!r} without a value (only NAME=value is allowed)")
        return violations

    def _check_kwarg(self, key: str, value: Any, location: str) -> list[str]:
        if key == "user":
            if str(value) != self.user:
                return [f"user={value!r} (runs run as {self.user!r})"]
        elif key == "cap_drop":
            if "ALL" not in {str(cap).upper() for cap in _as_list(value)}:
                return [f"cap_drop={value!r} (runs drop ALL capabilities)"]
        elif key == "security_opt":
            extra = [opt for opt in _as_list(value) if opt not in SECURITY_OPT]
            if extra:
                return [f"security_opt {extra!r} (allowed: {list(SECURITY_OPT)})"]
        elif key == "read_only":
            if value is not True:
                return [f"read_only={value!r} (run containers have a read-only root filesystem)"]
        elif key == "volumes":
            return self._check_volumes(value, location)
        elif key == "mem_limit":
            asked = _bytes_or_none(value)
            if asked is None or not 0 < asked <= parse_bytes(self.mem_limit):
                return [f"mem_limit={value!r} (at most {self.mem_limit!r})"]
        elif key == "pids_limit":
            if not isinstance(value, int) or not 0 < value <= self.pids_limit:
                return [f"pids_limit={value!r} (at most {self.pids_limit})"]
        elif key == "labels":
            labels = {label: "" for label in value} if isinstance(value, list) else dict(value)
            foreign = {k: v for k, v in labels.items() if self.labels.get(k) != v}
            if foreign:
                return [f"labels {foreign!r} (allowed: {dict(self.labels)!r})"]
        elif key in self.container_kwargs:
            if value != self.container_kwargs[key]:
                return [f"{key}={value!r} (the platform sets {self.container_kwargs[key]!r})"]
        elif value not in (None, False, "", [], {}, ()):
            # Everything else (privileged, cap_add, devices, mounts, network_mode, pid_mode,
            # ipc_mode, volumes_from, sysctls, ...) is refused: an allowlist, not a denylist.
            return [f"{key}={value!r} (not allowed for run containers)"]
        return []

    def _check_volumes(self, value: Any, location: str) -> list[str]:
        grants = self.volumes_for(location)
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


def read_locations(locations_file: str) -> frozenset[str]:
    """The ``location_name`` of every entry of a workspace.yaml's ``load_from``."""
    workspace = yaml.safe_load(Path(locations_file).read_text(encoding="utf-8")) or {}
    names = set()
    for entry in workspace.get("load_from") or []:
        for target in entry.values() if isinstance(entry, Mapping) else []:
            if isinstance(target, Mapping) and target.get("location_name"):
                names.add(str(target["location_name"]))
    return frozenset(names)


def run_location(run: dg.DagsterRun) -> str | None:
    """The code location a run was launched from (its remote job origin)."""
    return run.remote_job_origin.location_name if run.remote_job_origin else None


def origin_violations(workspace: BaseWorkspaceRequestContext | None, run: dg.DagsterRun) -> list[str]:
    """What the stored run claims about its code that its code location's own server does not serve.

    Raises ``DagsterUserCodeUnreachableError`` when the location is not loaded: the queued run
    coordinator daemon re-queues a run on that error (``run_queue.max_user_code_failure_retries``
    times) instead of failing it, so a run submitted while its server redeploys is verified later.
    """
    remote, code = run.remote_job_origin, run.job_code_origin
    if workspace is None:
        return ["no workspace to verify the run's code against (runs launch from the daemon or the webserver)"]
    if remote is None or code is None:
        return ["no job origin is recorded on the run"]
    location, repository_name = remote.location_name, remote.repository_origin.repository_name
    if not workspace.has_code_location(location):
        raise DagsterUserCodeUnreachableError(
            f"Code location {location!r} is not loaded, so run {run.run_id} cannot be verified against it"
        )
    code_location = workspace.get_code_location(location)
    violations = [
        f"job name {name!r} (the run's remote job origin names {remote.job_name!r})"
        for name in sorted({run.job_name, code.job_name} - {remote.job_name})
    ]
    if not code_location.has_repository(repository_name):
        served = ", ".join(code_location.get_repository_names())
        return [*violations, f"repository {repository_name!r} (code location {location!r} serves {served})"]
    repository = code_location.get_repository(repository_name)
    if not repository.has_job(remote.job_name):
        violations.append(f"job {remote.job_name!r} (not in code location {location!r})")
    genuine = repository.get_python_origin()
    for field in ORIGIN_FIELDS:
        claimed, served = getattr(code.repository_origin, field), getattr(genuine, field)
        if not _same(claimed, served):
            violations.append(f"{field} {claimed!r} (code location {location!r} serves {served!r})")
    owner = _serving_location(workspace, code.repository_origin) if violations else None
    if owner not in (None, location):
        violations.append(f"the job code origin of code location {owner!r}, not of {location!r}")
    return violations


def _same(claimed: Any, served: Any) -> bool:
    # Serialized, since code pointers compare as plain tuples: ModuleCodePointer("m", "defs")
    # == FileCodePointer("m", "defs"). serialize_value names every class and sorts dict keys.
    return dg.serialize_value(claimed) == dg.serialize_value(served)


def _serving_location(workspace: BaseWorkspaceRequestContext, origin: RepositoryPythonOrigin) -> str | None:
    """The loaded code location one of whose repositories has exactly this origin, if any."""
    for code_location in workspace.code_locations:
        for repository in code_location.get_repositories().values():
            if _same(repository.get_python_origin(), origin):
                return code_location.name
    return None


def refusal_message(location: str | None, violations: Sequence[str]) -> str:
    return (
        f"Run launch refused by {PolicyDockerRunLauncher.__name__} for code location "
        f"{location!r}: the run asks for more than the launch policy allows or its code location serves: "
        + "; ".join(violations)
        + ". No container was created."
    )


POLICY_CONFIG_SCHEMA = merge_dicts(
    DOCKER_CONFIG_SCHEMA,
    {
        "image_template": dg.Field(
            dg.StringSource,
            description="The image of a location's runs, with {location}, e.g. 'proj-{location}:local'.",
        ),
        "locations_file": dg.Field(
            dg.StringSource,
            default_value=DEFAULT_LOCATIONS_FILE,
            description="workspace.yaml whose load_from location names are the registered locations.",
        ),
        "user": dg.Field(dg.StringSource, default_value=DEFAULT_USER, description="Non-root uid:gid of runs."),
        "volumes": dg.Field(
            [{"name": dg.StringSource, "bind": str, "mode": dg.Field(str, default_value="rw")}],
            is_required=False,
            description="The named volumes every run container mounts (and may ask for); a name may contain {location}.",
        ),
        "mem_limit": dg.Field(dg.StringSource, description="Memory limit of a run, e.g. '4g'."),
        "pids_limit": dg.Field(dg.IntSource, description="Process limit of a run container."),
        "labels": dg.Field(
            dg.Map(str, dg.StringSource),
            is_required=False,
            description="Labels of every run container.",
        ),
        "max_runtime_seconds": dg.Field(
            dg.IntSource,
            default_value=0,
            description=(
                "Time limit of a run that sets no dagster/max_runtime tag of its own, enforced by run "
                "monitoring (0: none). run_monitoring.max_runtime_seconds cannot come from an env var."
            ),
        ),
    },
)


class PolicyDockerRunLauncher(DockerRunLauncher):
    """``DockerRunLauncher`` that launches a run only within a :class:`LaunchPolicy`.

    ``networks`` (and ``network``) and volume names may contain ``{location}``; ``container_kwargs``
    are the platform's other settings for every run (``auto_remove``, ``tmpfs``, ...).
    """

    def __init__(
        self,
        image_template: str,
        mem_limit: str,
        pids_limit: int,
        inst_data: ConfigurableClassData | None = None,
        locations_file: str = DEFAULT_LOCATIONS_FILE,
        user: str = DEFAULT_USER,
        volumes: Sequence[Mapping[str, str]] | None = None,
        labels: Mapping[str, str] | None = None,
        max_runtime_seconds: int = 0,
        **docker_config: Any,
    ) -> None:
        super().__init__(inst_data=inst_data, **docker_config)
        self.locations_file = locations_file
        self.max_runtime_seconds = max_runtime_seconds
        self.policy = LaunchPolicy(
            image_template=image_template,
            mem_limit=mem_limit,
            pids_limit=pids_limit,
            user=user,
            networks=tuple(self.networks),
            volumes={v["name"]: VolumeGrant(bind=v["bind"], mode=v.get("mode", "rw")) for v in volumes or []},
            labels=dict(labels or {}),
            env_vars=tuple(self.env_vars or ()),
            container_kwargs=dict(self.container_kwargs),
            registry=self.registry,
        )

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return POLICY_CONFIG_SCHEMA

    def get_container_context(self, dagster_run: dg.DagsterRun) -> DockerContainerContext:
        # dagster_docker builds the containers.create kwargs from this: the policy's, never the run's.
        try:
            requested = DockerContainerContext.create_for_run(dagster_run, None)
        except DagsterInvalidConfigError:
            requested = DockerContainerContext()  # refused at launch; terminate still works
        return self.policy.apply(requested, run_location(dagster_run) or "")

    def launch_run(self, context: LaunchRunContext) -> None:
        self._launch(context, ExecuteRunArgs)

    def resume_run(self, context: ResumeRunContext) -> None:
        self._launch(context, ResumeRunArgs)

    def _launch(
        self, context: LaunchRunContext | ResumeRunContext, args: type[ExecuteRunArgs] | type[ResumeRunArgs]
    ) -> None:
        # dagster_docker's launch_run / resume_run, passing the workspace on to the decision.
        run, job_origin = context.dagster_run, check.not_none(context.job_code_origin)
        command = args(job_origin=job_origin, run_id=run.run_id, instance_ref=self._instance.get_ref())
        self._launch_container_with_command(
            run, self._get_docker_image(job_origin), command.get_command_args(), context.workspace
        )

    def _launch_container_with_command(
        self,
        run: dg.DagsterRun,
        docker_image: str,
        command: Sequence[str],
        workspace: BaseWorkspaceRequestContext | None = None,
    ) -> None:
        # The one path of launch_run and resume_run to containers.create: decide here.
        location = run_location(run)
        violations = self.violations(run, docker_image, command, workspace)
        if violations:
            message = refusal_message(location, violations)
            self._instance.report_engine_event(message, run, cls=self.__class__)
            # A retry would be refused again (or, rebuilt from the workspace, launch what was refused).
            self._instance.add_run_tags(run.run_id, {MAX_RETRIES_TAG: "0"})
            self._instance.report_run_failed(run, message=message)
            return
        if self.max_runtime_seconds > 0 and MAX_RUNTIME_SECONDS_TAG not in run.tags:
            # Run monitoring reads the tag from storage on every check: the platform's default limit.
            self._instance.add_run_tags(run.run_id, {MAX_RUNTIME_SECONDS_TAG: str(self.max_runtime_seconds)})
        super()._launch_container_with_command(run, self.policy.image_for(location or ""), list(command))

    def violations(
        self,
        run: dg.DagsterRun,
        docker_image: str | None,
        command: Sequence[str] | None,
        workspace: BaseWorkspaceRequestContext | None,
    ) -> list[str]:
        """What the stored run asks beyond the policy or its location's code (empty: it may launch).

        Raises ``DagsterUserCodeUnreachableError`` when nothing else refuses the run but its
        registered location is not loaded (see :func:`origin_violations`).
        """
        try:
            # Read per launch, so a location added to workspace.yaml needs no daemon restart.
            policy = dataclasses.replace(self.policy, locations=read_locations(self.locations_file))
        except (OSError, yaml.YAMLError, AttributeError) as error:
            return [f"the registered code locations cannot be read from {self.locations_file}: {error}"]
        try:
            requested = DockerContainerContext.create_for_run(run, None)
        except DagsterInvalidConfigError as error:
            return [f"a container context that is not valid Docker config ({error})"]
        location = run_location(run)
        violations = policy.check(requested, docker_image, location, command)
        tagged_image = run.tags.get(DOCKER_IMAGE_TAG)
        if tagged_image and tagged_image != docker_image:
            violations += [v for v in policy.check_image(tagged_image, location) if v not in violations]
        if location in policy.locations:  # an unregistered one is refused above
            try:
                violations += origin_violations(workspace, run)
            except DagsterUserCodeUnreachableError:
                if not violations:
                    raise
                violations.append(f"code location {location!r} is not loaded, so the run's code is unverified")
        return violations
