"""Edit block-style YAML as text, so the comments and layout people wrote stay as they are.

These helpers work on the YAML this repo writes by hand (docker-compose.yml,
workspace.yaml): each mapping key on its own line, children indented deeper
than their parent. They find a key's block, add a block after it or inside it,
or remove one; anything else in the file is left byte for byte.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from collections.abc import Callable, Sequence


class AnchorError(ValueError):
    """A file to edit does not have the shape the edit expects."""


def _indent(line: str) -> int:
    """Number of leading spaces of ``line``."""
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    """A line that is neither blank nor only a comment."""
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _block(lines: Sequence[str], header: int) -> tuple[int, str]:
    """(end, child indentation) of the YAML block under the key at line ``header``.

    The block holds the following lines indented deeper than the key (blank lines
    included, trailing blank lines not); ``end`` is the index after its last line.
    """
    own = _indent(lines[header])
    end = header + 1
    for i in range(header + 1, len(lines)):
        if lines[i].strip() and _indent(lines[i]) <= own:
            break
        if lines[i].strip():
            end = i + 1
    children = [line for line in lines[header + 1 : end] if _is_content(line)]
    return end, " " * _indent(children[0]) if children else ""


def yaml_find(lines: Sequence[str], keys: Sequence[str], *, path: str = "") -> int:
    """Index of the line of the nested mapping key ``keys`` (e.g. services → webserver).

    Works on block-style YAML as written in this repo: each key on its own line,
    children indented deeper than their parent.
    """
    start, end, indent = 0, len(lines), ""
    found = -1
    for depth, key in enumerate(keys):
        pattern = re.compile(rf"^{indent}{re.escape(key)}:(\s|$)")
        found = next((i for i in range(start, end) if pattern.match(lines[i])), -1)
        if found < 0:
            raise AnchorError(f"{path}: no key {'.'.join(keys[: depth + 1])}")
        end, indent = _block(lines, found)
        start = found + 1
    return found


def yaml_append(text: str, keys: Sequence[str], block: str, *, path: str = "") -> str:
    """Append ``block`` (written at column 0) as the last child of the YAML key ``keys``.

    The block is indented like the key's existing children; a blank line separates
    it from the previous child when the children are separated by blank lines.
    """
    lines = text.splitlines(keepends=True)
    header = yaml_find(lines, keys, path=path)
    end, indent = _block(lines, header)
    if not indent:
        raise AnchorError(f"{path}: {'.'.join(keys)} has no indented block of entries to add to")
    spaced = any(not line.strip() for line in lines[header + 1 : end])
    new = textwrap.indent(block.rstrip("\n") + "\n", indent)
    lines.insert(end, ("\n" if spaced else "") + new)
    return "".join(lines)


def yaml_insert_after(text: str, keys: Sequence[str], block: str, *, path: str = "") -> str:
    """Insert ``block`` (written at column 0) as a sibling right after the YAML key ``keys``.

    Used to add a service after another one; a blank line goes before the block.
    """
    lines = text.splitlines(keepends=True)
    header = yaml_find(lines, keys, path=path)
    end, _ = _block(lines, header)
    indent = " " * _indent(lines[header])
    lines.insert(end, "\n" + textwrap.indent(block.rstrip("\n") + "\n", indent))
    return "".join(lines)


def compose_services(text: str, *, merging: re.Pattern[str] | None = None) -> list[str]:
    """Names of the services of a compose file, in order.

    With ``merging``: only the services with a line matching it (e.g. ``<<: *code-location``).
    """
    lines = text.splitlines(keepends=True)
    header = yaml_find(lines, ["services"], path="docker-compose.yml")
    end, indent = _block(lines, header)
    service = re.compile(rf"^{indent}([A-Za-z0-9][A-Za-z0-9_.-]*):\s*(#.*)?$")
    names = []
    for i in range(header + 1, end):
        if match := service.match(lines[i]):
            body = lines[i + 1 : _block(lines, i)[0]]
            if merging is None or any(merging.match(line) for line in body):
                names.append(match.group(1))
    return names


def remove_block(text: str, keys: Sequence[str], *, path: str = "") -> str:
    """``text`` without the YAML key ``keys`` and its block, and the comment and blank lines just above it."""
    lines = text.splitlines(keepends=True)
    header = yaml_find(lines, keys, path=path)
    end, _ = _block(lines, header)
    start = header
    while (
        start > 0 and lines[start - 1].strip().startswith("#") and _indent(lines[start - 1]) == _indent(lines[header])
    ):
        start -= 1
    while start > 0 and not lines[start - 1].strip():
        start -= 1
    return "".join(lines[:start] + lines[end:])


def remove_list_items(text: str, keys: Sequence[str], matches: Callable[[str], bool], *, path: str = "") -> str:
    """``text`` without the items of the YAML list under ``keys`` whose text ``matches``."""
    lines = text.splitlines(keepends=True)
    header = yaml_find(lines, keys, path=path)
    end, indent = _block(lines, header)
    item = re.compile(rf"^{indent}- ")
    starts = [i for i in range(header + 1, end) if item.match(lines[i])] + [end]
    kept = lines[: header + 1]
    kept += lines[header + 1 : starts[0]]
    for first, after in itertools.pairwise(starts):
        block = "".join(lines[first:after])
        if not matches(block):
            kept += lines[first:after]
    return "".join(kept + lines[end:])
