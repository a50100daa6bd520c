"""The code locations' lines of .github/CODEOWNERS: each location's folder is its team's to review."""

from __future__ import annotations

import re
from collections.abc import Sequence

from template_tools.locations import CodeLocation
from template_tools.regions import replace_region

CODEOWNERS = ".github/CODEOWNERS"
#: The GitHub organisation: that of the first owner of the hand-written default line, `* @org/team`.
DEFAULT_OWNER = re.compile(r"^\*\s+@(?P<org>[A-Za-z0-9-]+)/", re.MULTILINE)


class CodeownersError(ValueError):
    """CODEOWNERS has no default line to take the organisation from."""


def render(text: str, locations: Sequence[CodeLocation]) -> str:
    """CODEOWNERS' ``text`` with one line per location: ``/code_locations/<name>/ @<org>/<team>``."""
    match = DEFAULT_OWNER.search(text)
    if match is None:
        raise CodeownersError(
            f"{CODEOWNERS} needs a default line `* @<organisation>/<platform team>` before the generated "
            "lines: the locations' teams are taken to be in that organisation"
        )
    org = match["org"]
    body = "".join(f"/{location.folder}/  @{org}/{location.team}\n" for location in locations)
    return replace_region(text, "code-locations", body, path=CODEOWNERS)
