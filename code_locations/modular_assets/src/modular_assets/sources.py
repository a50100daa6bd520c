"""Sources layer: the source API's users and posts as typed tables.

Value format: each source asset validates the API's records
(``SourceApiResource`` rejects malformed, truncated, drifted, empty and
wrongly shaped answers with a ``SourceApiError``), turns them into a typed
DataFrame right here (``platform_kit.frames``) and drops the list of dicts
before returning. Nothing is cleaned yet: the values are the API's, only
tabular; cleaning is the transforms layer's job.

Why not return the records themselves: every asset value goes through the IO
manager (pickled to disk for later runs), and a list of dicts is the most
expensive thing to keep, pickle and load, so the list lives only inside the
source step and every later step handles the DataFrame
(docs/decisions.md#dataframes-between-assets).
"""

import dagster as dg

from modular_assets.constants import OWNERS, UPSTREAM_USERS_EXPORT
from platform_kit.frames import DataFrame, flatten_users, posts_frame
from platform_kit.metadata import frame_metadata
from platform_kit.source_api import SourceApiResource

GROUP = "sources"
TAGS = {"layer": GROUP}


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"api", "pandas"}, tags=TAGS, deps=[UPSTREAM_USERS_EXPORT])
def api_users_raw(source_api: SourceApiResource) -> dg.Output[DataFrame]:
    """Users of the source API (``GET /users``), one row per user, values as the API sent them.

    Nested address, geo and company fields are flattened into columns
    (``platform_kit.frames.flatten_users``); a missing nested field becomes
    null. The run fails with a ``SourceApiError`` naming the endpoint and the
    problem when the API is unreachable or its answer is unusable.

    Depends on ``user_data_csv`` (simple_ops, team data-extraction) by key
    only, for lineage: when that export is materialized,
    ``upstream_user_extract_sensor`` starts ``all_assets_job``.
    """
    records = source_api.fetch_users()
    frame = flatten_users(records)
    del records  # keep only the typed table (see the module docstring)
    return dg.Output(
        frame,
        metadata={
            **frame_metadata(frame),
            "source": dg.MetadataValue.url(f"{source_api.base_url.rstrip('/')}/users"),
        },
    )


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"api", "pandas"}, tags=TAGS)
def api_posts_raw(source_api: SourceApiResource) -> dg.Output[DataFrame]:
    """Posts of the source API (``GET /posts``): post_id, user_id, title, body, as the API sent them.

    The run fails with a ``SourceApiError`` naming the endpoint and the problem
    when the API is unreachable or its answer is unusable (for example posts
    without ``userId``).
    """
    records = source_api.fetch_posts()
    frame = posts_frame(records)
    del records  # keep only the typed table (see the module docstring)
    return dg.Output(
        frame,
        metadata={
            **frame_metadata(frame),
            "source": dg.MetadataValue.url(f"{source_api.base_url.rstrip('/')}/posts"),
        },
    )


ASSETS = [api_users_raw, api_posts_raw]
