"""The raw side of the configuration, private to ``monitor.config``: YAML text to a tree,
``${VAR}`` interpolation, secret files, key paths.

Interpolation walks the parsed tree and rewrites string values only: a variable whose
value contains YAML syntax stays one string and cannot change the file's structure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import yaml

Loc: TypeAlias = tuple[str | int, ...]
"""A key path inside the configuration: ``("managers", 0, "password")``."""

Problem: TypeAlias = tuple[Loc, str]
"""One problem: where, and one sentence saying what is wrong (no key path in it)."""

# Alternatives, tried left to right at each position: the escape, a complete reference,
# then a stray "${" that opens no valid reference.
_TOKEN = re.compile(r"\$\$\{|\$\{([^{}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SECRET_FILE_BYTES = 64 * 1024


def format_loc(loc: Loc) -> str:
    """``("managers", 0, "sources", 2)`` -> ``managers[0].sources[2]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def interpolate(
    node: object, environ: Mapping[str, str], loc: Loc, problems: list[Problem]
) -> object:
    """A copy of ``node`` with every string value interpolated; problems are appended.

    A value whose interpolation fails is kept verbatim, so that validation can go on and
    report the other problems of the file.
    """
    if isinstance(node, str):
        return _substitute(node, environ, loc, problems)
    if isinstance(node, dict):
        return {
            key: interpolate(value, environ, (*loc, str(key)), problems)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [interpolate(item, environ, (*loc, i), problems) for i, item in enumerate(node)]
    return node


def _substitute(text: str, environ: Mapping[str, str], loc: Loc, problems: list[Problem]) -> str:
    if "${" not in text:
        return text
    missing: list[str] = []
    malformed = False

    def replace(match: re.Match[str]) -> str:
        nonlocal malformed
        token = match.group(0)
        if token == "$${":  # noqa: S105 - the escape, not a password
            return "${"
        reference = match.group(1)
        if reference is None:
            malformed = True
            return token
        name, colon_dash, default = reference.partition(":-")
        if not _NAME.fullmatch(name):
            malformed = True
            return token
        value = environ.get(name)
        if colon_dash and not value:  # like the shell: unset or empty takes the default
            return default
        if value is None:
            if name not in missing:
                missing.append(name)
            return token
        return value

    result = _TOKEN.sub(replace, text)
    if malformed:
        # Never quote the value: it may be a secret with a stray "${" in it.
        problems.append(
            (
                loc,
                "contains a '${' that does not start a valid ${NAME} or ${NAME:-default} "
                "reference (write '$${' for a literal '${')",
            )
        )
        return text
    if missing:
        if len(missing) == 1:
            problems.append((loc, f"environment variable {missing[0]} is not set"))
        else:
            problems.append((loc, f"environment variables {', '.join(missing)} are not set"))
        return text
    return result


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *anchor" may be overridden
                continue
            key = self.construct_object(key_node, deep=False)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str) -> object:
    """One YAML document, safely; raises ``yaml.YAMLError`` (with a line, mostly)."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_secret_file(where: object, base_dir: Path) -> str:
    """The secret in the file named by ``where`` (relative to ``base_dir``), trailing
    newlines stripped. Raises ``ValueError`` naming the file, never quoting its content."""
    if not isinstance(where, str) or not where:
        raise ValueError("must be the path of a file holding the secret")
    path = Path(where).expanduser()
    path = path if path.is_absolute() else base_dir / path
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ValueError(f"cannot read {path}: {reason}") from None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text
