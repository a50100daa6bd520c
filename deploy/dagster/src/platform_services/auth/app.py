"""The auth service put together: settings, the files it reads, the server and its background work."""

from __future__ import annotations

import threading
import time

from platform_services.access.identity import read_key
from platform_services.auth import audit, tokens
from platform_services.auth.health import start_heartbeat
from platform_services.auth.live_rules import LiveRules
from platform_services.auth.oidc import Provider
from platform_services.auth.passwords import Passwords
from platform_services.auth.server import AuthServer
from platform_services.auth.service import Service
from platform_services.auth.sessions import Sessions
from platform_services.auth.settings import ConfigError, Settings
from platform_services.auth.watched import WatchedFile

#: How often the access file and workspace.yaml are checked for changes.
POLL_SECONDS = 1.0
SWEEP_SECONDS = 60.0


def _file_error(message: str) -> None:
    audit.log("file_refused", message=message)


class App:
    """Everything the service runs; :class:`ConfigError` or ``AccessError`` when it must not start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        key = read_key(settings.identity_key_file)  # IdentityError names the file
        token_file = WatchedFile(settings.tokens, tokens.parse_index, tokens.TokenIndex({}), _file_error)
        issued = tokens.active(token_file.get().entries)
        if settings.insecure and (settings.oidc or issued):
            what = "single sign-on is configured" if settings.oidc else f"API tokens exist ({', '.join(issued)})"
            raise ConfigError(f"refusing to start: {what}, and {settings.insecure}")
        self.rules = LiveRules(settings.access_file, settings.workspace_file, settings.admin_user)
        self.provider = Provider(settings.oidc) if settings.oidc else None
        self.service = Service(
            rules=self.rules,
            passwords=Passwords(settings.htpasswd, _file_error),
            tokens=token_file.get,
            sessions=Sessions(settings.session_seconds),
            provider=self.provider,
            insecure=settings.insecure,
        )
        self.server = AuthServer((settings.host, settings.port), self.service, key, settings.landing_path)
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start_background(self) -> None:
        """Single-sign-on discovery, the file watch, session sweeps and the heartbeat."""
        if self.provider is not None:
            self.provider.start()
        threading.Thread(target=self._maintain, name="maintenance", daemon=True).start()
        if self.settings.health_file is not None:
            start_heartbeat(self.settings.host, self.port, self.settings.health_file, self._stop)

    def _maintain(self) -> None:
        swept = time.monotonic()
        while not self._stop.wait(POLL_SECONDS):
            self.rules.poll()
            if time.monotonic() - swept > SWEEP_SECONDS:
                self.service.sessions.sweep()
                swept = time.monotonic()

    def serve(self) -> None:
        self.start_background()
        rules = self.rules.current
        audit.log(
            "start",
            message=f"listening on http://{self.settings.host}:{self.port}; access file {self.settings.access_file} "
            f"({len(rules.users)} user(s), {len(rules.tokens)} token(s), {len(rules.groups)} group(s)); "
            f"single sign-on {'through ' + self.settings.oidc.issuer if self.settings.oidc else 'off'}",
        )
        try:
            self.server.serve_forever()
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self.provider is not None:
            self.provider.stop()
        self.server.server_close()
