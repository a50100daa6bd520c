"""Create the stack's local settings and secrets; standard library only.

    python tools/src/template_tools/init_env.py              # .env and .secrets/htpasswd, if missing
    python tools/src/template_tools/init_env.py add-user NAME [--password P]   # add or change a UI user
    python tools/src/template_tools/init_env.py access       # where the UI is and how to log in

Standard library only: `make up` runs it before any virtualenv exists.

`.env` is copied from `.env.example` with a random Postgres password, a random
UI password and the Docker socket's group id filled in. An existing `.env` is
never overwritten. The gateway gets only SHA-512-crypt hashes of UI passwords,
in `.secrets/htpasswd` (one `user:hash` line per user).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ENV_FILE = ROOT / ".env"
EXAMPLE_FILE = ROOT / ".env.example"
SECRETS_DIR = ROOT / ".secrets"
HTPASSWD_FILE = SECRETS_DIR / "htpasswd"
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
#: Shorter passwords fall to online guessing too soon, even at the gateway's ~10 tries/s.
MIN_PASSWORD_LENGTH = 12


def sha512_crypt(password: str) -> str:
    """A `$6$` SHA-512-crypt hash (what nginx's auth_basic verifies through libc's crypt)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # deprecated, but in the standard library up to Python 3.12

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    except ImportError:
        result = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=password,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()


def docker_socket_gid(socket_path: str) -> str:
    """Group id owning the Docker socket, which the run launcher needs to reach."""
    try:
        return str(os.stat(socket_path).st_gid)
    except OSError as exc:
        sys.exit(
            f"init_env: cannot read the Docker socket {socket_path} ({exc.strerror}). "
            "Is Docker running? For rootless Docker set DOCKER_SOCKET in .env."
        )


def read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (quotes stripped; comments ignored)."""
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip("'\"")
    return values


def set_env_values(text: str, updates: dict[str, str]) -> str:
    """``text`` with ``KEY=`` lines set to the given values."""
    for key, value in updates.items():
        text, count = re.subn(rf"^{key}=.*$", f"{key}={value}", text, flags=re.MULTILINE)
        if count == 0:
            text += f"\n{key}={value}\n"
    return text


def write_private(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` atomically with permissions ``mode``."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def set_ui_user(name: str, password: str) -> None:
    """Add ``name`` to the htpasswd file, or replace its password."""
    if not USER_NAME.match(name):
        sys.exit(f"init_env: user name {name!r} may only use letters, digits and _ . @ -")
    if len(password) < MIN_PASSWORD_LENGTH:
        sys.exit(
            f"init_env: the password for {name!r} has {len(password)} characters; use at least "
            f"{MIN_PASSWORD_LENGTH}, or leave it out for a random one (make ui-user NAME={name})"
        )
    SECRETS_DIR.mkdir(mode=0o700, exist_ok=True)
    lines = HTPASSWD_FILE.read_text().splitlines() if HTPASSWD_FILE.exists() else []
    lines = [line for line in lines if line and not line.startswith(f"{name}:")]
    lines.append(f"{name}:{sha512_crypt(password)}")
    # World-readable: the gateway runs as an unprivileged user and reads it as a
    # bind-mounted Docker secret; it holds hashes only, in a 0700 folder.
    write_private(HTPASSWD_FILE, "\n".join(lines) + "\n", 0o644)


def init() -> None:
    if not ENV_FILE.exists():
        values = read_env(EXAMPLE_FILE)
        updates = {
            "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
            "DAGSTER_UI_PASSWORD": secrets.token_urlsafe(18),
            "DOCKER_GID": docker_socket_gid(values.get("DOCKER_SOCKET") or "/var/run/docker.sock"),
        }
        write_private(ENV_FILE, set_env_values(EXAMPLE_FILE.read_text(), updates), 0o600)
        print(
            f"init_env: created .env with generated secrets (UI login: "
            f"{values.get('DAGSTER_UI_USER') or 'admin'} / see DAGSTER_UI_PASSWORD in .env)"
        )
    values = read_env(ENV_FILE)
    if not HTPASSWD_FILE.exists():
        user, password = values.get("DAGSTER_UI_USER") or "admin", values.get("DAGSTER_UI_PASSWORD")
        if not password:
            sys.exit(
                "init_env: .env has no DAGSTER_UI_PASSWORD; set one (or run "
                "`make ui-user NAME=...`) to create .secrets/htpasswd"
            )
        set_ui_user(user, password)
        print(f"init_env: created .secrets/htpasswd for UI user {user!r}")


def print_access() -> None:
    """Where the UI is and how to log in (after `make up`)."""
    env = read_env(ENV_FILE) if ENV_FILE.exists() else {}
    host = env.get("GATEWAY_BIND") or "127.0.0.1"
    host = "127.0.0.1" if host == "0.0.0.0" else host
    url = f"http://{host}:{env.get('GATEWAY_PORT') or '3000'}{env.get('DAGSTER_WEBSERVER_PATH_PREFIX', '')}/"
    print(f"Dagster is up: {url}")
    print(f"  login: {env.get('DAGSTER_UI_USER') or 'admin'} / DAGSTER_UI_PASSWORD in .env")
    print("  exports: `make exports` copies them to ./exports; logs: `make logs`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    add = sub.add_parser("add-user", help="add a UI user or change its password")
    add.add_argument("name")
    add.add_argument("--password", help="default: a random one, printed once")
    sub.add_parser("access", help="print where the UI is and how to log in")
    args = parser.parse_args()
    if args.command == "access":
        print_access()
    elif args.command == "add-user":
        password = args.password or secrets.token_urlsafe(18)
        set_ui_user(args.name, password)
        shown = "" if args.password else f" with password {password}"
        print(
            f"init_env: UI user {args.name!r} set{shown}; the gateway reads it on its next start "
            "(`docker compose restart gateway`)"
        )
    else:
        init()


if __name__ == "__main__":
    main()
