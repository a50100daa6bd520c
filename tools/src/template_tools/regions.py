"""Generated regions inside files that are otherwise written by hand.

A region is the lines between a ``# >>> generated: <name> ...`` line and the
``# <<< generated: <name>`` line at the same indentation. ``make generate``
rewrites only those lines; everything else in the file stays byte for byte.
"""

from __future__ import annotations

import re

BEGIN = re.compile(r"^(?P<indent> *)# >>> generated: (?P<name>[\w.-]+)\b.*$")
END = "# <<< generated: {name}"


class RegionError(ValueError):
    """A file lacks the markers of a region it should have; the message says how to restore them."""


def replace_region(text: str, name: str, body: str, *, path: str) -> str:
    """``text`` with the lines of region ``name`` replaced by ``body`` (written at column 0, indented like the markers)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if (m := BEGIN.match(line.rstrip("\n"))) and m["name"] == name]
    if len(starts) != 1:
        raise RegionError(
            f"{path}: expected one `# >>> generated: {name}` line, found {len(starts)}; restore it from git"
        )
    start = starts[0]
    match = BEGIN.match(lines[start].rstrip("\n"))
    assert match is not None
    indent = match["indent"]
    end_marker = indent + END.format(name=name)
    ends = [i for i in range(start + 1, len(lines)) if lines[i].rstrip() == end_marker]
    if not ends:
        raise RegionError(f"{path}: no `{end_marker.strip()}` line after line {start + 1}; restore it from git")
    new = "".join(indent + line if line.strip() else line for line in body.splitlines(keepends=True))
    return "".join([*lines[: start + 1], new, *lines[ends[0] :]])


def region_names(text: str) -> list[str]:
    """The names of the regions ``text`` has, in order."""
    return [m["name"] for line in text.splitlines() if (m := BEGIN.match(line))]
