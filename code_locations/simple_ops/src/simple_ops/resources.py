"""The resources of this location, configured from the environment when a run starts.

``dg.EnvVar`` is resolved at run time, not at import, so the definitions load
without SOURCE_API_URL or EXPORTS_DIR set.
"""

from __future__ import annotations

import dagster as dg

from platform_kit.exports import CsvExportResource
from platform_kit.source_api import SourceApiResource

#: Folder under EXPORTS_DIR that belongs to this location.
EXPORTS_SUBDIR = "simple_ops"

RESOURCES = {
    "source_api": SourceApiResource(base_url=dg.EnvVar("SOURCE_API_URL")),
    "exports": CsvExportResource(base_dir=dg.EnvVar("EXPORTS_DIR"), subdir=EXPORTS_SUBDIR),
}
