"""YAML text -> plain Python values, remembering the line of every key.

`yaml.safe_load` throws the position information away, and a message such as
"model_providers[3].base_url: not a URL" is much less useful without "line 41".
So we let PyYAML build its node tree (`compose`, which keeps marks) and turn
nodes into dicts/lists/scalars ourselves, recording `key path -> line` as we
go.  Scalars are still constructed by PyYAML's SafeLoader, so `yes`, `0x1F`,
`1e3` or `~` mean exactly what they mean to Plano's own `yaml.safe_load`.

Environment variables (`$VAR`, `${VAR}`) are expanded here, one string scalar
at a time, because only here do we still know where each string came from.
Plano expands them over the whole rendered text instead; the visible result
is the same for values, and we can name the key that uses an unset variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import KeyPath, Problem, Substitution, format_path

MAX_NODES = 200_000
"""Upper bound on expanded nodes: YAML aliases can make a tiny file enormous."""

_PLAIN_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})

_ENV_REF = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|\$)")


def expand_env(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace `$VAR` / `${VAR}` with values from `env`.

    Returns the new text and the names of referenced variables that are not
    set; those references are left as written.  `$$` is left alone (it is
    not an escape: Plano's `envsubst` and `os.path.expandvars` keep it too),
    and a `$` not followed by a name is plain text (`"costs $5"`).
    """
    expanded, missing, _ = expand_env_tracked(text, env)
    return expanded, missing


def expand_env_tracked(text: str, env: Mapping[str, str]) -> tuple[str, list[str], list[Substitution]]:
    """`expand_env`, also returning each substitution made, so error messages can hide the values."""
    missing: list[str] = []
    used: list[Substitution] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        if name is None:
            return match.group(0)
        value = env.get(name)
        if value is None:
            if name not in missing:
                missing.append(name)
            return match.group(0)
        used.append(Substitution(name, value, whole=match.group(0) == text))
        return value

    if "$" not in text:
        return text, missing, used
    return _ENV_REF.sub(replace, text), missing, used


@dataclass
class YamlDoc:
    """A parsed config file: the value tree plus what we learned on the way."""

    value: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    """1-based line of every mapping key and list item, by key path."""
    unset_env: list[tuple[KeyPath, str]] = field(default_factory=list)
    """(where, variable) for every `$VAR` that `env` does not define."""
    duplicate_keys: list[KeyPath] = field(default_factory=list)
    """Keys given twice in one mapping (PyYAML silently keeps the last one)."""
    problems: list[Problem] = field(default_factory=list)
    """Structural problems found while converting (e.g. a list used as a key)."""
    substituted: dict[KeyPath, list[Substitution]] = field(default_factory=dict)
    """The `$VAR`s expanded in each scalar, by key path."""


class _TooLarge(Exception):
    pass


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, env: Mapping[str, str], doc: YamlDoc) -> None:
        self._loader = loader
        self._env = env
        self._doc = doc
        self._budget = MAX_NODES

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise _TooLarge
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
            # safe_load refuses such tags (e.g. `!!python/object`); so do we.
            raise yaml.constructor.ConstructorError(
                None, None, f"could not determine a constructor for the tag {node.tag!r}", node.start_mark
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items: list[Any] = []
            for index, item in enumerate(node.value):
                child = (*path, index)
                self._doc.lines[child] = item.start_mark.line + 1
                items.append(self.build(item, child))
            return items
        value = self._loader.construct_object(node, deep=True)
        if isinstance(value, str):
            value, missing, used = expand_env_tracked(value, self._env)
            self._doc.unset_env.extend((path, name) for name in missing)
            if used:
                self._doc.substituted[path] = used
        return value

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        # Resolves `<<: *anchor` merge keys in place, exactly as safe_load would.
        self._loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self._doc.problems.append(
                    Problem(path=format_path(path), line=line, message="a mapping key must be a plain value")
                )
                continue
            # The key as written: YAML would turn `on:` into True and `1:` into 1,
            # but every key Plano knows is a string, so keep the user's spelling.
            key = str(key_node.value)
            child = (*path, key)
            if key in out:
                self._doc.duplicate_keys.append(child)
            self._doc.lines[child] = line
            out[key] = self.build(value_node, child)
        return out


def read_yaml(text: str, env: Mapping[str, str]) -> YamlDoc:
    """Parse one YAML document; syntax errors come back as problems, never raise."""
    loader = yaml.SafeLoader(text)
    doc = YamlDoc(value=None)
    try:
        root = loader.get_single_node()
        if root is None:
            return doc
        doc.lines[()] = root.start_mark.line + 1
        doc.value = _Builder(loader, env, doc).build(root, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
        doc.problems.append(Problem(path="", line=line, message=f"invalid YAML: {what}"))
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(path="", line=None, message=f"invalid YAML: {exc}"))
    except _TooLarge:
        doc.problems.append(
            Problem(path="", line=None, message=f"YAML expands to more than {MAX_NODES} values (alias bomb?)")
        )
    except RecursionError:
        doc.problems.append(Problem(path="", line=None, message="YAML is nested too deeply"))
    finally:
        loader.dispose()
    return doc
