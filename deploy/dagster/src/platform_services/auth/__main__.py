"""``python -m platform_services.auth``: the auth service (see the package's docstring)."""

from __future__ import annotations

import signal
import sys
from typing import NoReturn

from platform_services.access.identity import IdentityError
from platform_services.access.rules import AccessError
from platform_services.auth import audit
from platform_services.auth.app import App
from platform_services.auth.settings import EXIT_CONFIG, ConfigError, settings_from_env


def _stop(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def main() -> int:
    try:
        app = App(settings_from_env())
    except (ConfigError, AccessError, IdentityError) as error:
        audit.log("refused_to_start", message=str(error))
        print(f"auth: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as error:
        print(f"auth: cannot listen: {error.strerror}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _stop)  # PID 1 in its container: SIGTERM's default would be ignored
    app.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
