"""The stack's webserver: dagster-webserver with per-team access (python -m platform_services.webserver).

    python -m platform_services.webserver -h HOST -p PORT -w workspace.yaml [--path-prefix P] [--read-only]

It answers only requests that carry the gateway's signed identity (IDENTITY_KEY_FILE),
gives each the permissions of its identity's role per code location, and writes every
mutation to the audit log. The options are dagster-webserver's, for those the stack uses.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from dagster import DagsterInstance
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._utils.log import configure_loggers
from dagster_webserver.version import __version__

from platform_services.access.identity import IdentityError, read_key
from platform_services.webserver.app import TeamWebserver
from platform_services.webserver.audit import AuditLog
from platform_services.webserver.context import TeamProcessContext

DEFAULT_KEY_FILE = "/run/dagster-identity/key"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0], add_help=False)
    parser.add_argument("--help", action="help")
    parser.add_argument("-h", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=3000)
    parser.add_argument("-w", "--workspace", required=True, help="workspace.yaml")
    parser.add_argument("--path-prefix", default="")
    parser.add_argument("--read-only", action="store_true", help="nobody may change anything here")
    parser.add_argument("--db-statement-timeout", type=int, default=15000)
    parser.add_argument("--db-pool-recycle", type=int, default=3600)
    parser.add_argument("--db-pool-max-overflow", type=int, default=20)
    parser.add_argument("--log-level", default="warning", help="uvicorn's")
    args = parser.parse_args(argv)
    configure_loggers()
    logging.getLogger("dagster.audit").setLevel(logging.INFO)
    try:
        key = read_key(Path(os.environ.get("IDENTITY_KEY_FILE", DEFAULT_KEY_FILE)))
    except IdentityError as error:
        print(f"webserver: {error}", file=sys.stderr)
        return 78
    instance = DagsterInstance.get()
    instance.optimize_for_webserver(args.db_statement_timeout, args.db_pool_recycle, args.db_pool_max_overflow)
    connect = getattr(instance.run_storage, "connect", None)  # the stack's pooled Postgres storage
    audit = AuditLog(connect)
    with TeamProcessContext(
        instance,
        version=__version__,
        read_only=args.read_only,
        workspace_load_target=WorkspaceFileTarget(paths=[args.workspace]),
        workspace_file=Path(args.workspace),
    ) as process_context:
        app = TeamWebserver(process_context, key=key, audit=audit, app_path_prefix=args.path_prefix)
        logging.getLogger("dagster.webserver").info(
            "Serving the Dagster UI with per-team access on http://%s:%s%s", args.host, args.port, args.path_prefix
        )
        uvicorn.run(app.create_asgi_app(), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
