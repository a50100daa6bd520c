"""Jobs of this location: everything, and one per asset group (layer).

Asset selections include the asset checks of the selected assets, so a job
that builds ``users_cleaned`` also runs its blocking checks. Only this
location's assets are selected: ``user_data_csv`` (simple_ops) is an external
asset here and is never part of a job. A group job on its own (for example
``exports_job``) reads its upstream values from the IO manager's storage,
i.e. from the last run that materialized them.
"""

import dagster as dg

from modular_assets import analytics, exports, sources, transforms

all_assets_job = dg.define_asset_job(
    name="all_assets_job",
    selection=dg.AssetSelection.all(),
    description="Fetch, clean, analyse and export: all 13 assets of this location, with their checks.",
)

sources_job = dg.define_asset_job(
    name="sources_job",
    selection=dg.AssetSelection.groups(sources.GROUP),
    description="Fetch users and posts from the source API.",
)

transforms_job = dg.define_asset_job(
    name="transforms_job",
    selection=dg.AssetSelection.groups(transforms.GROUP),
    description="Clean users and posts and join posts with their authors (with the blocking checks).",
)

analytics_job = dg.define_asset_job(
    name="analytics_job",
    selection=dg.AssetSelection.groups(analytics.GROUP),
    description="Per-user activity, top authors and dataset-wide statistics.",
)

exports_job = dg.define_asset_job(
    name="exports_job",
    selection=dg.AssetSelection.groups(exports.GROUP),
    description="Write the CSV files and export_summary.json under $EXPORTS_DIR/modular_assets/.",
)

JOBS = [all_assets_job, sources_job, transforms_job, analytics_job, exports_job]
