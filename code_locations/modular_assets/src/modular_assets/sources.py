"""Sources layer: the source API's users and posts as typed tables.

Value format: each source asset validates the API's records
(``SourceApiResource`` rejects malformed, truncated, drifted, empty and
wrongly shaped answers with a ``SourceApiError``), turns them into a typed
DataFrame right here (``platform_kit.frames``) and drops the list of dicts
before returning. Nothing is cleaned yet: the values are the API's, only
tabular; cleaning is the transforms layer's job.

Why not return the records themselves: every asset value goes through the IO
manager (pickled to disk for later runs), and a list of dicts is the most
expensive thing to keep, pickle and load. Measured on this machine with
1,000,000 posts shaped like the sample API's:

- list of dicts: 619 MiB in memory; pickle 1.97 s to write, 2.38 s to read;
- DataFrame (after the list is dropped): the same strings, without 1M dicts
  (about 200 MiB less); pickle 0.68 s to write, 0.59 s to read.

So the list lives only inside the source step, like in a plain pandas
script, and every later step handles the DataFrame. With the IO manager of
:mod:`modular_assets.resources` (no re-reading within a run), all_assets_job
at 100k users / 1M posts used 1.33x the CPU time and 1.04x the peak memory
(1.69 GiB) of the same functions run as one plain script (bench/floor.py);
the peak of both is the JSON decoding of ``GET /posts``.
"""

import dagster as dg
from platform_kit.frames import DataFrame, flatten_users, posts_frame
from platform_kit.metadata import frame_metadata
from platform_kit.source_api import SourceApiResource

from modular_assets.constants import OWNERS, UPSTREAM_USERS_EXPORT

GROUP = "sources"
_COMMON = dict(
    group_name=GROUP,
    kinds={"api", "pandas"},
    owners=OWNERS,
    tags={"layer": GROUP},
)


@dg.asset(**_COMMON, deps=[UPSTREAM_USERS_EXPORT])
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


@dg.asset(**_COMMON)
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
