"""The auth service's settings, from the environment: each checked, a bad one named with its fix.

Standard library only: the init service imports :func:`insecure_transport` to refuse
``make ui-token`` on the same terms as the service refuses to start.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from platform_services.auth import tokens

DEFAULT_PORT = 8081
DEFAULT_SESSION_SECONDS = 12 * 3600
DEFAULT_SCOPES = "openid profile email"
#: sysexits' EX_CONFIG: the service is misconfigured, restarting it will not help.
EXIT_CONFIG = 78


class ConfigError(Exception):
    """A bad setting; the message names the variable and what to set."""


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str  # empty: a public client, PKCE only
    scopes: str
    username_claim: str
    groups_claim: str
    redirect_uri: str
    retry_seconds: float


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    health_file: Path | None
    htpasswd: Path
    tokens: Path
    identity_key_file: Path
    access_file: Path
    workspace_file: Path
    admin_user: str
    session_seconds: int
    public_url: str
    landing_path: str
    #: Why tokens and single sign-on must not be used (the gateway is published in clear), or None.
    insecure: str | None
    oidc: OidcSettings | None


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def public_url(env: Mapping[str, str]) -> str:
    """The gateway's address as browsers reach it (the identity provider redirects back there)."""
    if env.get("GATEWAY_PUBLIC_URL"):
        return env["GATEWAY_PUBLIC_URL"].rstrip("/")
    bind = env.get("GATEWAY_BIND") or "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(bind, bind)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "https" if env.get("GATEWAY_TLS_CERT") else "http"
    return f"{scheme}://{host}:{env.get('GATEWAY_PORT') or '3000'}"


def insecure_transport(env: Mapping[str, str]) -> str | None:
    """Why the gateway would carry credentials in clear over the network, or None if it does not."""
    bind = env.get("GATEWAY_BIND") or "127.0.0.1"
    if is_loopback(bind) or env.get("GATEWAY_TLS_CERT") or public_url(env).startswith("https://"):
        return None
    return (
        f"GATEWAY_BIND={bind} publishes the gateway beyond this host, and TLS is off (GATEWAY_TLS_CERT is empty): "
        "API tokens and single-sign-on sessions would cross the network in clear. Set GATEWAY_TLS_CERT (the "
        "gateway then serves HTTPS), or GATEWAY_BIND=127.0.0.1; behind your own TLS-terminating proxy, set "
        "GATEWAY_PUBLIC_URL to its https:// address"
    )


def _seconds(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    if not raw.strip().isdigit() or int(raw) < 60:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds (at least 60): set e.g. {default}")
    return int(raw)


def _oidc(env: Mapping[str, str], secrets_dir: Path, public: str) -> OidcSettings | None:
    issuer = (env.get("OIDC_ISSUER_URL") or "").strip().rstrip("/")
    if not issuer:
        return None
    if not issuer.startswith(("https://", "http://")):
        raise ConfigError(
            f"OIDC_ISSUER_URL={issuer!r} is not a URL: set the issuer, e.g. https://idp.example.com/realms/x"
        )
    client_id = (env.get("OIDC_CLIENT_ID") or "").strip()
    if not client_id:
        raise ConfigError("OIDC_ISSUER_URL is set but OIDC_CLIENT_ID is empty: set the client id registered there")
    secret_file = Path(env.get("OIDC_CLIENT_SECRET_FILE") or secrets_dir / "oidc_client_secret")
    try:
        secret = secret_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        secret = ""
    except OSError as error:
        raise ConfigError(f"the client secret {secret_file} cannot be read ({error.strerror})") from None
    scopes = " ".join((env.get("OIDC_SCOPES") or DEFAULT_SCOPES).split())
    if "openid" not in scopes.split():
        raise ConfigError(
            f"OIDC_SCOPES={scopes!r} lacks `openid`: OpenID Connect needs it (default {DEFAULT_SCOPES!r})"
        )
    return OidcSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret=secret,
        scopes=scopes,
        username_claim=env.get("OIDC_USERNAME_CLAIM") or "preferred_username",
        groups_claim=env.get("OIDC_GROUPS_CLAIM") or "groups",
        redirect_uri=f"{public}/__auth/oidc/callback",
        retry_seconds=float(env.get("OIDC_RETRY_SECONDS") or 30),
    )


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Every setting, checked (:class:`ConfigError` names the variable and the fix)."""
    env = os.environ if env is None else env
    raw_port = env.get("AUTH_PORT") or str(DEFAULT_PORT)
    if not raw_port.strip().isdigit() or not 0 < int(raw_port) < 65536:
        raise ConfigError(
            f"AUTH_PORT={raw_port!r} is not a port: set a number from 1 to 65535 (default {DEFAULT_PORT})"
        )
    secrets_dir = Path(env.get("UI_SECRETS_DIR") or "/run/ui-secrets")
    public = public_url(env)
    if not public.startswith(("http://", "https://")):
        raise ConfigError(f"GATEWAY_PUBLIC_URL={public!r} is not an http(s) URL: set e.g. https://dagster.example.com")
    prefix = (env.get("DAGSTER_WEBSERVER_PATH_PREFIX") or "").rstrip("/")
    oidc = _oidc(env, secrets_dir, public)
    return Settings(
        host=env.get("AUTH_HOST") or "0.0.0.0",
        port=int(raw_port),
        health_file=Path(env["AUTH_HEALTH_FILE"]) if env.get("AUTH_HEALTH_FILE") else None,
        htpasswd=secrets_dir / "htpasswd",
        tokens=secrets_dir / tokens.FILE_NAME,
        identity_key_file=Path(env.get("IDENTITY_KEY_FILE") or "/run/dagster-identity/key"),
        access_file=Path(env.get("ACCESS_FILE") or "/etc/dagster/access/access.yaml"),
        workspace_file=Path(env.get("WORKSPACE_FILE") or "/opt/dagster/dagster_home/workspace.yaml"),
        admin_user=env.get("DAGSTER_UI_USER") or "admin",
        session_seconds=_seconds(env, "SESSION_SECONDS", DEFAULT_SESSION_SECONDS),
        public_url=public,
        landing_path=f"{prefix}/",
        insecure=insecure_transport(env),
        oidc=oidc,
    )
