"""The one-shot `init` service: the deployment's secrets, generated on first start.

    python -m platform_services.init_secrets                   # create what is missing, print the login
    python -m platform_services.init_secrets add-user NAME [--password P] [--keep]
                                          # `make ui-user`: add a UI user or change a password
    python -m platform_services.init_secrets add-token NAME    # `make ui-token`: a new API token, shown once
    python -m platform_services.init_secrets revoke-token NAME # `make ui-token-revoke`
    python -m platform_services.init_secrets access            # where the UI is and how to log in

It writes two volumes, each mounted only where it is needed:

* ``$DAGSTER_SECRETS_DIR/postgres_password``: the password of Dagster's Postgres
  role, read through ``*_FILE`` by Postgres and every Dagster service;
* ``$UI_SECRETS_DIR/htpasswd``: the UI's local users, SHA-512-crypt hashes only;
  ``$UI_SECRETS_DIR/initial_login``: the generated login of the first UI user
  (mode 0600, readable by this service only), until that password is changed;
  ``$UI_SECRETS_DIR/tokens.json``: the SHA-256 of each API token (platform_services.auth.tokens);
  ``$UI_SECRETS_DIR/oidc_client_secret``: single sign-on's client secret, from OIDC_CLIENT_SECRET;
* ``$IDENTITY_KEY_FILE`` (when its folder is mounted): the key with which the auth service
  signs the identity it asserts to the webserver, which checks it.

It also gives the folders in ``DAGSTER_OWNED_DIRS`` (the exports volume) to the runs'
user, ``DAGSTER_UID``: a volume that compose creates is owned by root, and the runs,
and a restore of a backup, write there as that user.

Settings from the environment (``.env``) win: ``POSTGRES_PASSWORD`` sets the role's
password (``postgres_roles`` applies a change to an existing volume), and
``DAGSTER_UI_USER`` with ``DAGSTER_UI_PASSWORD`` sets that user's, ``OIDC_CLIENT_SECRET``
the single-sign-on client's. Without them, what is stored is kept and what is missing is
generated. Standard library only; every file is replaced atomically.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import time
import warnings
from pathlib import Path

from platform_services.auth import tokens
from platform_services.auth.settings import insecure_transport

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated, but in the standard library up to Python 3.12; the auth service checks with it

USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
#: Shorter passwords fall to online guessing too soon, even at the gateway's ~10 tries/s.
MIN_PASSWORD_LENGTH = 12
DEFAULT_USER = "admin"


class SecretsError(Exception):
    """A setting or a stored file is unusable; the message names it and the fix."""


def pg_dir() -> Path:
    return Path(os.environ.get("DAGSTER_SECRETS_DIR", "/run/dagster-secrets"))


def ui_dir() -> Path:
    return Path(os.environ.get("UI_SECRETS_DIR", "/run/ui-secrets"))


def write_atomically(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` with ``text`` (permissions ``mode``): readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_postgres_password() -> str:
    """The role's password: POSTGRES_PASSWORD if set, else the stored one, else a new one."""
    path = pg_dir() / "postgres_password"
    wanted = os.environ.get("POSTGRES_PASSWORD", "")
    stored = path.read_text().strip() if path.exists() else ""
    if wanted and wanted != stored:
        write_atomically(path, wanted, 0o644)  # Postgres and the Dagster services run as other users
        return "set from POSTGRES_PASSWORD"
    if not wanted and not stored:
        # Also after the file was lost: postgres_roles sets the role's password on every start.
        write_atomically(path, secrets.token_urlsafe(24), 0o644)
        return "generated"
    return "kept"


def ensure_oidc_client_secret() -> str | None:
    """Single sign-on's client secret, from OIDC_CLIENT_SECRET; None when that is not set."""
    wanted = os.environ.get("OIDC_CLIENT_SECRET", "").strip()
    if not wanted:
        return None
    path = ui_dir() / "oidc_client_secret"
    if path.exists() and path.read_text().strip() == wanted:
        return "kept"
    write_atomically(path, wanted, 0o644)  # the auth service runs as another user; only it mounts the volume
    return "set from OIDC_CLIENT_SECRET"


def ensure_identity_key() -> str | None:
    """The identity-signing key (hex), generated once; None when its folder is not mounted here."""
    path = Path(os.environ.get("IDENTITY_KEY_FILE", "/run/dagster-identity/key"))
    if not path.parent.is_dir():
        return None
    if path.exists() and len(path.read_text().strip()) >= 64:
        return "kept"
    # The auth service and the webserver read it, as other users than this one.
    write_atomically(path, secrets.token_hex(32), 0o644)
    return "generated"


def add_token(name: str) -> str:
    """A new API token named ``name``: its hash is stored, the token itself returned (shown once)."""
    if not tokens.NAME.match(name):
        raise SecretsError(f"token name {name!r} may only use letters, digits and _ . @ - (at most 64)")
    insecure = insecure_transport(os.environ)
    if insecure:
        raise SecretsError(f"no token was created: {insecure}")
    path = ui_dir() / tokens.FILE_NAME
    try:
        entries = tokens.read(path)
    except ValueError as error:
        raise SecretsError(f"{path}: {error}") from None
    if name in tokens.active(entries):
        raise SecretsError(
            f"a token named {name!r} exists: revoke it first (make ui-token-revoke NAME={name}), or choose another name"
        )
    token = tokens.new_token()
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entries[name] = tokens.TokenEntry(tokens.digest(token), created)
    write_atomically(path, tokens.render(entries), 0o644)  # hashes only; the auth service runs as another user
    return token


def revoke_token(name: str) -> bool:
    """Mark the token ``name`` revoked (its hash stays, so it is refused by name); False if none is active."""
    path = ui_dir() / tokens.FILE_NAME
    try:
        entries = tokens.read(path)
    except ValueError as error:
        raise SecretsError(f"{path}: {error}") from None
    if name not in tokens.active(entries):
        return False
    revoked = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entries[name] = tokens.TokenEntry(entries[name].sha256, entries[name].created, revoked)
    write_atomically(path, tokens.render(entries), 0o644)
    return True


def read_users(path: Path) -> dict[str, str]:
    """``user -> hash`` of an htpasswd file; a malformed line is an error naming it."""
    users: dict[str, str] = {}
    if not path.exists():
        return users
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        name, _, hashed = line.partition(":")
        if not USER_NAME.match(name) or not hashed.startswith("$"):
            raise SecretsError(
                f"{path}, line {number}, is not 'user:$hash'. Fix or delete that line, or set the user "
                "again with `make ui-user NAME=...`"
            )
        users[name] = hashed
    return users


def check_user(name: str, password: str) -> None:
    if not USER_NAME.match(name):
        raise SecretsError(f"user name {name!r} may only use letters, digits and _ . @ - (at most 64)")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SecretsError(
            f"the password for {name!r} has {len(password)} characters; use at least "
            f"{MIN_PASSWORD_LENGTH}, or leave it out for a random one (make ui-user NAME={name})"
        )


def set_user(name: str, password: str) -> None:
    """Add ``name`` to the UI's users, or replace its password (the auth service re-reads the file at once)."""
    check_user(name, password)
    path = ui_dir() / "htpasswd"
    users = read_users(path)
    users[name] = crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    # Hashes only, and the auth service runs as another (unprivileged) user.
    write_atomically(path, "".join(f"{user}:{hashed}\n" for user, hashed in users.items()), 0o644)
    initial = ui_dir() / "initial_login"
    if initial.exists() and initial.read_text().partition(":")[0] == name:
        initial.unlink()  # no longer the password: `access` must not show it


def ensure_ui_login() -> str:
    name = os.environ.get("DAGSTER_UI_USER") or DEFAULT_USER
    wanted = os.environ.get("DAGSTER_UI_PASSWORD", "")
    users = read_users(ui_dir() / "htpasswd")
    if wanted:
        if name in users and crypt.crypt(wanted, users[name]) == users[name]:
            return "kept"
        set_user(name, wanted)
        return f"set {name!r} from DAGSTER_UI_PASSWORD"
    if users:
        return "kept"
    password = secrets.token_urlsafe(18)
    set_user(name, password)
    write_atomically(ui_dir() / "initial_login", f"{name}:{password}", 0o600)
    return f"generated a password for {name!r}"


def access() -> str:
    """Where the UI is and how to log in, for people reading `docker compose logs init`."""
    host = os.environ.get("GATEWAY_BIND") or "127.0.0.1"
    host = "127.0.0.1" if host == "0.0.0.0" else host
    url = f"http://{host}:{os.environ.get('GATEWAY_PORT') or '3000'}{os.environ.get('DAGSTER_WEBSERVER_PATH_PREFIX', '')}/"
    initial = ui_dir() / "initial_login"
    if initial.exists():
        name, _, password = initial.read_text().partition(":")
        login = f"user {name}, password {password} (generated; change it with `make ui-user NAME={name}`)"
    elif os.environ.get("DAGSTER_UI_PASSWORD"):
        login = f"user {os.environ.get('DAGSTER_UI_USER') or DEFAULT_USER}, password DAGSTER_UI_PASSWORD in .env"
    else:
        names = ", ".join(read_users(ui_dir() / "htpasswd")) or "none"
        login = f"users {names} (passwords as set with `make ui-user`)"
    return f"Dagster UI: {url}\n  login: {login}"


def own_dirs() -> list[str]:
    """Give each folder of DAGSTER_OWNED_DIRS to DAGSTER_UID (only the folder itself); the ones changed."""
    uid = int(os.environ.get("DAGSTER_UID", "10001"))
    changed = []
    for folder in filter(None, os.environ.get("DAGSTER_OWNED_DIRS", "").split(":")):
        if os.stat(folder).st_uid != uid:
            os.chown(folder, uid, uid)
            changed.append(folder)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    add = sub.add_parser("add-user", help="add a UI user or change its password")
    add.add_argument("name")
    add.add_argument("--password", help="default: a random one, printed once")
    add.add_argument("--keep", action="store_true", help="keep an existing user's password (only a new user gets one)")
    new_token = sub.add_parser("add-token", help="create an API token, printed once")
    new_token.add_argument("name")
    revoke = sub.add_parser("revoke-token", help="revoke an API token")
    revoke.add_argument("name")
    sub.add_parser("access", help="print where the UI is and how to log in")
    args = parser.parse_args(argv)
    try:
        if args.command == "add-user":
            if args.keep and not args.password and args.name in read_users(ui_dir() / "htpasswd"):
                print(f"init: UI user {args.name!r} exists; its password is unchanged")
                return 0
            password = args.password or secrets.token_urlsafe(18)
            set_user(args.name, password)
            shown = f" with password {password}" if not args.password else ""
            print(f"init: UI user {args.name!r} set{shown}; it works from its next request")
        elif args.command == "add-token":
            token = add_token(args.name)
            print(
                f"init: API token {args.name!r} created; it is shown this once, store it now:\n{token}\n"
                f"  use it as the header `Authorization: Bearer <token>`; revoke it: make ui-token-revoke NAME={args.name}"
            )
        elif args.command == "revoke-token":
            if revoke_token(args.name):
                print(f"init: API token {args.name!r} revoked; it is refused from its next request")
            else:
                print(f"init: no active API token named {args.name!r}: nothing to revoke")
        elif args.command == "access":
            print(access())
        else:
            print(f"init: Postgres password {ensure_postgres_password()}; UI login {ensure_ui_login()}")
            for what, outcome in (
                ("identity key", ensure_identity_key()),
                ("OIDC client secret", ensure_oidc_client_secret()),
            ):
                if outcome:
                    print(f"init: {what} {outcome}")
            for folder in own_dirs():
                print(f"init: {folder} now belongs to the runs' user")
            print(access())
    except (SecretsError, OSError) as error:
        print(f"init: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
