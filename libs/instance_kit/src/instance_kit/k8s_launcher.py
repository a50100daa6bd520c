"""A Kubernetes run launcher that builds each run's Job only as the platform allows.

``dagster_k8s.K8sRunLauncher`` merges each run's stored container context and its
``dagster-k8s/config`` tag over the launcher's settings, as written. The stored run comes from
the shared run storage, which every code location can write, so a team could give its run pod
another location's ``dagster/code-location`` label (and pass that location's NetworkPolicy),
mount another team's claim, or ask for another image, root, a host path or the chart's
privileged service account. :class:`PolicyK8sRunLauncher` decides instead, with the same
policy as compose's ``PolicyDockerRunLauncher`` (:mod:`instance_kit.policy`,
:mod:`instance_kit.decision`):

* a run starts only from its own location's image (its grant's repository, at the tag its code
  server reported: one location ships on its own with ``helm upgrade``), and only if the
  location has a grant;
* its Job gets the launcher's settings (namespace, service account, the restricted security
  contexts, resources, the shared claims, the time limit), its location's grant (claims,
  ConfigMaps, Secrets), its env vars and its verified location's label
  (:mod:`instance_kit.k8s_policy`), whatever it asked;
* a run that asks for more is refused: an engine event names what it asked for and what the
  policy allows, the run is failed and no Job is created;
* the run is what its code location serves (:mod:`instance_kit.origin`), as under compose.

Configured in the Helm chart's values as a ``CustomRunLauncher`` (deploy/kubernetes/values.yaml):
``K8sRunLauncher``'s own config, plus ``locations``, each location's grant::

    run_launcher:
      module: instance_kit.k8s_launcher
      class: PolicyK8sRunLauncher
      config:
        job_namespace: dagster
        service_account_name: dagster-dagster-user-deployments-user-deployments
        ...                                   # the rest of K8sRunLauncher's config
        locations:
          simple_ops:
            image: registry.example.com/dagster-template/dagster-simple_ops:local
            volumes: [{name: io, persistentVolumeClaim: {claimName: dagster-io-simple-ops}}]
            volume_mounts: [{name: io, mountPath: /opt/dagster/storage/storage}]
            env_config_maps: [dagster-dagster-user-deployments-simple-ops-user-env]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster._core.launcher import LaunchRunContext, ResumeRunContext
from dagster._serdes.config_class import ConfigurableClassData
from dagster._utils.merger import merge_dicts
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext

from instance_kit.decision import decide, refuse
from instance_kit.k8s_policy import K8sLaunchPolicy, LocationGrant
from instance_kit.origin import run_location

if TYPE_CHECKING:
    from dagster._core.workspace.context import BaseWorkspaceRequestContext

LOCATION_GRANT = dg.Shape(
    {
        "image": dg.Field(dg.StringSource, description="The image of the location's code server and runs."),
        "volumes": dg.Field(dg.Array(dg.Permissive()), default_value=[], description="Its volumes (Kubernetes)."),
        "volume_mounts": dg.Field(dg.Array(dg.Permissive()), default_value=[], description="Their mounts."),
        "env_config_maps": dg.Field(dg.Array(dg.StringSource), default_value=[], description="Its ConfigMaps."),
        "env_secrets": dg.Field(dg.Array(dg.StringSource), default_value=[], description="Its Secrets."),
    }
)
POLICY_CONFIG_SCHEMA = merge_dicts(
    K8sRunLauncher.config_type(),
    {
        "locations": dg.Field(
            dg.Map(str, LOCATION_GRANT),
            description="Each registered code location's grant: what its runs get beyond every run's.",
        )
    },
)


def grant(config: Mapping[str, Any]) -> LocationGrant:
    """A location's grant from its config (Kubernetes' camelCase or dagster-k8s' snake_case keys)."""
    context = K8sContainerContext(
        volumes=config.get("volumes"),
        volume_mounts=config.get("volume_mounts"),
        env_config_maps=config.get("env_config_maps"),
        env_secrets=config.get("env_secrets"),
    )
    return LocationGrant(image=config["image"], context=context)


def run_image(run: dg.DagsterRun) -> str | None:
    """The image the run's code server reported (its DAGSTER_CURRENT_IMAGE: the release it serves)."""
    return run.job_code_origin.repository_origin.container_image if run.job_code_origin else None


class PolicyK8sRunLauncher(K8sRunLauncher):
    """``K8sRunLauncher`` that builds a run's Job only within a :class:`K8sLaunchPolicy`."""

    def __init__(
        self,
        locations: Mapping[str, Mapping[str, Any]],
        inst_data: ConfigurableClassData | None = None,
        **k8s_config: Any,
    ) -> None:
        super().__init__(inst_data=inst_data, **k8s_config)
        # The launcher's own settings as dagster-k8s merges them for every run (a run with no context of its own).
        platform = K8sContainerContext.create_for_run(dg.DagsterRun(job_name="platform"), self, include_run_tags=False)
        self.policy = K8sLaunchPolicy(
            platform=platform, grants={name: grant(config) for name, config in locations.items()}
        )

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return POLICY_CONFIG_SCHEMA

    def get_container_context_for_run(self, dagster_run: dg.DagsterRun) -> K8sContainerContext:
        # dagster-k8s builds the Job (and finds it to watch or stop it) from this: the policy's, never the run's.
        location = run_location(dagster_run)
        if location not in self.policy.registered_locations():
            return self.policy.platform
        try:
            requested = K8sContainerContext.create_for_run(dagster_run, None, include_run_tags=True)
        except Exception:  # not valid config: refused at launch; terminate and health checks still work
            requested = K8sContainerContext()
        return self.policy.apply(requested, location, run_image(dagster_run))

    def launch_run(self, context: LaunchRunContext) -> None:
        if not self._refused(context.dagster_run, context.workspace):
            super().launch_run(context)

    def resume_run(self, context: ResumeRunContext) -> None:
        if not self._refused(context.dagster_run, context.workspace):
            super().resume_run(context)

    def _refused(self, run: dg.DagsterRun, workspace: BaseWorkspaceRequestContext | None) -> bool:
        violations = self.violations(run, workspace)
        if violations:
            refuse(self._instance, run, self.__class__, run_location(run), violations, "No Kubernetes Job was created.")
        return bool(violations)

    def violations(self, run: dg.DagsterRun, workspace: BaseWorkspaceRequestContext | None) -> list[str]:
        """What the stored run asks beyond the policy or its location's code (empty: it may launch).

        Raises ``DagsterUserCodeUnreachableError`` when nothing else refuses the run but its
        registered location is not loaded (see :func:`instance_kit.decision.decide`).
        """
        try:
            requested = K8sContainerContext.create_for_run(run, None, include_run_tags=True)
        except Exception as error:  # dagster-k8s raises plain Exceptions for unknown Kubernetes fields
            return [f"a container context or dagster-k8s/config tag that is not valid Kubernetes config ({error})"]
        location = run_location(run)
        image = run_image(run)
        return decide(self.policy, run, location, self.policy.check(requested, image, location), workspace)
