"""Names shared by this location's modules (and nothing else)."""

import dagster as dg

#: Owner of every asset in this location, shown in the UI and used for alerting.
OWNERS = ["team:analytics"]

#: simple_ops' CSV export of the users (team data-extraction). Declared as a
#: dependency by key only, never imported: the two locations build and deploy
#: independently. Here the key is an external asset, so no job of this location
#: ever tries to materialize it; the workspace's lineage graph shows the edge.
UPSTREAM_USERS_EXPORT = dg.AssetKey("user_data_csv")
