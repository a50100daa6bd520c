"""Resources of this location, configured from environment variables at run time.

``dg.EnvVar`` is resolved when a run (or a sensor tick) starts, not when the
code is imported, so the definitions load without these variables (for
example in ``dg check defs``) and a changed value needs no code change.

- ``SOURCE_API_URL``: base URL of the JSONPlaceholder-compatible source API.
- ``EXPORTS_DIR``: root folder of the exports; this location writes below
  ``$EXPORTS_DIR/modular_assets/`` so it never overwrites another team's files.

The IO manager stores asset values where Dagster's default one does (the
instance's storage folder), see :class:`RunCachedFilesystemIOManager`.
"""

from typing import Any

import dagster as dg
from pydantic import Field

from platform_kit.exports import CsvExportResource
from platform_kit.source_api import SourceApiResource

#: Folder under EXPORTS_DIR that belongs to this location.
EXPORTS_SUBDIR = "modular_assets"


class _RunCache(dg.IOManager):
    """Stores through ``files``; values stored in this run are loaded again from memory."""

    def __init__(self, files: dg.IOManager) -> None:
        self._files = files
        self._values: dict[dg.AssetKey, Any] = {}

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        self._files.handle_output(context, obj)
        if context.has_asset_key and not context.has_asset_partitions:
            self._values[context.asset_key] = obj

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_key and not context.has_asset_partitions and context.asset_key in self._values:
            return self._values[context.asset_key]
        return self._files.load_input(context)


class RunCachedFilesystemIOManager(dg.ConfigurableIOManagerFactory):
    """Dagster's filesystem IO manager (pickles in the instance's storage folder), except that a
    value produced earlier in the same run is handed to its consumers from memory.

    Every value is still written to disk, so a later run of one asset or one
    layer loads its inputs from there. Within a run (the in-process executor
    builds this IO manager once per run), a large table is then not unpickled
    again by each of its consumers (docs/decisions.md#run-cached-io-manager).
    The values stay in memory until the run ends, as they would in a plain
    pandas script. Consumers get the very object that was stored, so assets
    must not modify their inputs in place (pandas' copy-on-write, the default
    in pandas 3, guarantees that).
    """

    base_dir: str | None = Field(
        default=None,
        description="Folder of the pickles; default: the instance's storage folder, like Dagster's own.",
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.IOManager:
        return _RunCache(dg.FilesystemIOManager(base_dir=self.base_dir).create_io_manager(context))


RESOURCES = {
    "source_api": SourceApiResource(base_url=dg.EnvVar("SOURCE_API_URL")),
    "exports": CsvExportResource(base_dir=dg.EnvVar("EXPORTS_DIR"), subdir=EXPORTS_SUBDIR),
    "io_manager": RunCachedFilesystemIOManager(),
}
