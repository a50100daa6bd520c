"""A Docker run launcher that starts run containers only as the platform allows.

``dagster_docker.DockerRunLauncher`` merges each run's stored container context
(and image) over the instance's ``container_kwargs``. The stored run comes from
the shared Postgres storage, which every code location can write, so a
compromised location could ask the daemon for ``user=0``, ``privileged``, a bind
mount of ``/var/run/docker.sock``, another location's image or network, and get
it. :class:`PolicyDockerRunLauncher` decides in the daemon instead:

* a run starts only from its own code location's image (``image_template`` with
  ``{location}``, or the same repository at one of the location's recorded releases in
  ``releases_dir``: instance_kit.releases), and only if that location is registered in
  ``locations_file`` (the deployment's ``workspace.yaml``);
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
ask for) its own location's, never another location's. The policy and its checks are
:mod:`instance_kit.docker_policy` (with the rules it shares with the Kubernetes launcher,
:mod:`instance_kit.policy`), the decision and the refusal :mod:`instance_kit.decision`,
the origin checks :mod:`instance_kit.origin`: this module is the Docker launcher that
applies them.

Configure it in ``dagster.yaml`` in place of ``dagster_docker.DockerRunLauncher``::

    run_launcher:
      module: instance_kit.launcher
      class: PolicyDockerRunLauncher
      config:
        env_vars: [DAGSTER_PG_HOST, ...]          # the platform's, as before
        image_template: {env: DAGSTER_RUN_IMAGE_TEMPLATE}  # "myproject-{location}:local"
        locations_file: /opt/dagster/dagster_home/workspace.yaml
        releases_dir: {env: DAGSTER_RELEASES_DIR}     # optional: the releases of make deploy
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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg
import dagster._check as check
import yaml
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.launcher import LaunchRunContext, ResumeRunContext
from dagster._core.storage.tags import MAX_RUNTIME_SECONDS_TAG
from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs
from dagster._serdes.config_class import ConfigurableClassData
from dagster._utils.merger import merge_dicts
from dagster_docker import DockerRunLauncher
from dagster_docker.container_context import DockerContainerContext
from dagster_docker.utils import DOCKER_CONFIG_SCHEMA

from instance_kit.decision import decide, refuse
from instance_kit.docker_policy import DEFAULT_USER, LaunchPolicy, VolumeGrant
from instance_kit.origin import run_location
from instance_kit.releases import ReleaseError, release_tags
from instance_kit.workspace import read_locations

if TYPE_CHECKING:
    from dagster._core.workspace.context import BaseWorkspaceRequestContext

DEFAULT_LOCATIONS_FILE = "/opt/dagster/dagster_home/workspace.yaml"


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
        "releases_dir": dg.Field(
            dg.StringSource,
            is_required=False,
            description="The folder of the locations' release records (instance_kit.releases), read per launch.",
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
        releases_dir: str | None = None,
        **docker_config: Any,
    ) -> None:
        super().__init__(inst_data=inst_data, **docker_config)
        self.locations_file = locations_file
        self.releases_dir = releases_dir
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
            refuse(self._instance, run, self.__class__, location, violations, "No container was created.")
            return
        if self.max_runtime_seconds > 0 and MAX_RUNTIME_SECONDS_TAG not in run.tags:
            # Run monitoring reads the tag from storage on every check: the platform's default limit.
            self._instance.add_run_tags(run.run_id, {MAX_RUNTIME_SECONDS_TAG: str(self.max_runtime_seconds)})
        # The run's own image (a recorded release of its location, checked above), else the location's.
        image = docker_image or self.policy.image_for(location or "")
        super()._launch_container_with_command(run, image, list(command))

    def violations(
        self,
        run: dg.DagsterRun,
        docker_image: str | None,
        command: Sequence[str] | None,
        workspace: BaseWorkspaceRequestContext | None,
    ) -> list[str]:
        """What the stored run asks beyond the policy or its location's code (empty: it may launch).

        Raises ``DagsterUserCodeUnreachableError`` when nothing else refuses the run but its
        registered location is not loaded (see :func:`instance_kit.decision.decide`).
        """
        try:
            # Read per launch, so a location added to workspace.yaml, or a release deployed, needs no restart.
            locations = read_locations(self.locations_file)
        except (OSError, yaml.YAMLError, AttributeError) as error:
            return [f"the registered code locations cannot be read from {self.locations_file}: {error}"]
        try:
            tags = release_tags(self.releases_dir, locations)
        except ReleaseError as error:
            return [f"the recorded releases cannot be read: {error}"]
        policy = dataclasses.replace(self.policy, locations=locations, release_tags=tags)
        try:
            requested = DockerContainerContext.create_for_run(run, None)
        except DagsterInvalidConfigError as error:
            return [f"a container context that is not valid Docker config ({error})"]
        location = run_location(run)
        return decide(policy, run, location, policy.check(requested, docker_image, location, command), workspace)
