"""Both styles in the Jobs list: the op graph, and a job over the asset group."""

from __future__ import annotations

import dagster as dg

from simple_ops.assets import BATCH_GROUP, GROUP
from simple_ops.ops import fetch_data_from_api, generate_summary, save_to_csv, transform_data


@dg.graph
def extraction() -> None:
    raw_data = fetch_data_from_api()
    transformed = transform_data(raw_data)
    file_path = save_to_csv(transformed)
    generate_summary(transformed, file_path)


data_extraction_job = extraction.to_job(
    name="data_extraction_job",
    description=(
        "The user extraction as ops: fetch users from the source API, flatten them, "
        "write users.csv and extraction_summary.json. Same steps as user_assets_job, "
        "wired by hand."
    ),
    tags={"team": "data-extraction", "style": "ops"},
)

extraction_batch_job = dg.define_asset_job(
    name="extraction_batch_job",
    selection=dg.AssetSelection.groups(BATCH_GROUP),
    description="The users' export per named batch: add a batch (a dynamic partition), then launch it.",
    tags={"team": "data-extraction", "style": "assets"},
)


user_assets_job = dg.define_asset_job(
    name="user_assets_job",
    selection=dg.AssetSelection.groups(GROUP),
    description=(
        "The user extraction as assets: materializes the user_extraction group, "
        "with its blocking quality checks. Same steps as data_extraction_job."
    ),
    tags={"team": "data-extraction", "style": "assets"},
)


# A tuple: its element types stay precise (define_asset_job's result type is not exported by dagster).
JOBS = (data_extraction_job, extraction_batch_job, user_assets_job)
