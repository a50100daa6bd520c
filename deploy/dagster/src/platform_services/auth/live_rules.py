"""The access rules in force: the access file and workspace.yaml's teams, re-read when either changes.

A new version that is not valid is refused, with the message (file, line, entry, fix) in
the log, and the rules in force stay; a valid one applies from the next request on.
"""

from __future__ import annotations

from pathlib import Path

from platform_services.access.rules import AccessError, Rules, load_rules
from platform_services.auth import audit
from platform_services.auth.watched import Signature, signature


class LiveRules:
    def __init__(self, access_file: Path, workspace_file: Path, admin_user: str) -> None:
        """Load the rules; :class:`AccessError` if they are not valid (the service does not start)."""
        self.access_file = access_file
        self.workspace_file = workspace_file
        self.admin_user = admin_user
        self._seen = self._signatures()
        self.current: Rules = load_rules(access_file, workspace_file, admin_user)

    def _signatures(self) -> tuple[Signature, Signature]:
        return signature(self.access_file), signature(self.workspace_file)

    def poll(self) -> bool:
        """Re-read the files if they changed; whether new rules are now in force."""
        seen = self._signatures()
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            rules = load_rules(self.access_file, self.workspace_file, self.admin_user)
        except AccessError as error:
            audit.log("access_file_refused", message=f"{error}. The previous rules stay in force until it is fixed")
            return False
        self.current = rules
        audit.log(
            "access_file_loaded",
            message=f"{self.access_file}: {len(rules.users)} user(s), {len(rules.tokens)} token(s), "
            f"{len(rules.groups)} group(s); teams: {', '.join(sorted(rules.teams)) or 'none'}",
        )
        return True
