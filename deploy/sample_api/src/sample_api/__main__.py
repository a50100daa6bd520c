"""Command line entry point: ``python -m sample_api`` / ``sample-api``.

Every option can also be set with a ``SAMPLE_API_*`` environment variable
(an empty variable counts as unset); the command line wins over the
environment. A bad value exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from sample_api.config import KNOBS, SERVER_DEFAULTS, SERVER_OPTIONS, Config, SettingError, env_var
from sample_api.server import make_server, start_heartbeat


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sample-api",
        description="A JSONPlaceholder-compatible HTTP API with size and fault knobs.",
    )
    defaults = {**SERVER_DEFAULTS, **Config().to_json()}
    for name, setting in {**SERVER_OPTIONS, **KNOBS}.items():
        flag = "--" + name.replace("_", "-")
        default = ",".join(defaults[name]) if name == "fault_paths" else defaults[name]
        help_text = f"{setting.allowed} (env {env_var(name)}, default {default})"
        if name == "quiet":
            parser.add_argument(
                flag, action="store_const", const="1", help=f"do not log requests (env {env_var(name)})"
            )
        elif name == "fault_paths":
            parser.add_argument(flag, metavar="PREFIX,...", help=help_text)
        elif name == "health_file":
            parser.add_argument(
                flag, metavar="PATH", help=f"touch PATH after each answered self-check of /health (env {env_var(name)})"
            )
        else:
            parser.add_argument(flag, metavar=name.upper(), help=help_text)
    return parser


def resolve_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[dict[str, Any], Config]:
    """The server options and start-up knobs from the command line, the environment and the defaults.

    Raises SettingError naming the option or variable whose value is bad.
    """
    values: dict[str, Any] = {}
    for name, setting in {**SERVER_OPTIONS, **KNOBS}.items():
        raw = getattr(args, name)
        if raw is not None:
            values[name] = setting.from_text("--" + name.replace("_", "-"), raw)
        elif environ.get(env_var(name), "").strip():
            values[name] = setting.from_text(env_var(name), environ[env_var(name)])
    options = {name: values.pop(name, default) for name, default in SERVER_DEFAULTS.items()}
    return options, Config(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM or SIGINT; return the exit status."""
    try:
        options, config = resolve_settings(_parser().parse_args(argv), os.environ)
    except SettingError as error:
        print(f"sample-api: {error}", file=sys.stderr)
        return 2
    try:
        server = make_server(options["host"], options["port"], config, quiet=options["quiet"])
    except OSError as error:
        print(f"sample-api: cannot listen on {options['host']}:{options['port']}: {error}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it must not run on this (the main) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    if options["health_file"]:
        start_heartbeat(server, options["health_file"])
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"sample-api listening on http://{options['host']}:{server.server_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
