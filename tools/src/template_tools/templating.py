"""The templates under templates/: ``{{name}}`` placeholders, filled in by the scaffolder and the generator."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


def render(template: str, variables: Mapping[str, str]) -> str:
    """``template`` with every ``{{name}}`` replaced by ``variables[name]``.

    Only ``{{lower_case}}`` is a placeholder, so ``$`` and single braces (compose
    variables, f-strings, YAML flow maps) and GitHub's ``${{ expression }}`` stay as written.
    """

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in variables:
            raise KeyError(f"template placeholder {match.group(0)} has no value")
        return variables[match.group(1)]

    return PLACEHOLDER.sub(value, template)
