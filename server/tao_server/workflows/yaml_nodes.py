"""A workflow file read as YAML nodes, so every error names the file, the line, the column and the key.

PyYAML's compose API (`yaml.compose`) gives the document as nodes that keep where each value
starts; this module turns them into Python values one key at a time, refusing what the file's
schema does not allow. PyYAML rather than ruamel: the daemon's dependencies already bring it,
its nodes carry marks, and composing with the safe loader constructs no object at all.
Duplicate keys, which a YAML loader silently collapses, are refused here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

import yaml

from tao_server.errors import InvalidWorkflowFile

MAX_TEXT = 1024 * 1024  # a workflow file is a page of YAML; more is a mistake, not a flow
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_NULL = "tag:yaml.org,2002:null"


@dataclass(frozen=True)
class Located:
    """A key of the file and the node that holds its value, for errors that point at it."""

    source: str
    key: str
    node: yaml.Node
    key_node: yaml.Node | None = None  # where the key is written, for a value of a mapping

    @property
    def line(self) -> int:
        """The line of the key (or of the value, where it has no key), from 1."""
        return (self.key_node or self.node).start_mark.line + 1

    def fail(self, message: str) -> NoReturn:
        raise_at(self.source, self.node.start_mark, self.key, message)

    def child(self, key: str, node: yaml.Node) -> Located:
        return Located(self.source, f"{self.key}.{key}" if self.key else key, node)


def raise_at(source: str, mark: yaml.Mark | None, key: str, message: str) -> NoReturn:
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    raise InvalidWorkflowFile(f"{where}: {key + ': ' if key else ''}{message}", field=key or None, source=source)


def load(text: str, source: str) -> Located:
    """The document's root node; YAML's own errors with their line and column."""
    if len(text) > MAX_TEXT:
        raise InvalidWorkflowFile(f"{source}: {len(text)} characters; a workflow file may hold {MAX_TEXT}", source=source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise_at(source, exc.problem_mark, "", f"not valid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        raise InvalidWorkflowFile(f"{source}: not valid YAML: {exc}", source=source) from None
    if node is None:
        raise InvalidWorkflowFile(f"{source}: the file is empty", source=source)
    return Located(source, "", node)


def mapping(at: Located, allowed: Iterable[str] | None = None) -> dict[str, Located]:
    """The mapping at `at`, in the order written: keys are strings, once each, and among `allowed` (None: any)."""
    if not isinstance(at.node, yaml.MappingNode):
        at.fail(f"must be a mapping (KEY: VALUE lines), not {_kind(at.node)}")
    entries: dict[str, Located] = {}
    known = list(allowed) if allowed is not None else None
    for key_node, value_node in at.node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
            raise_at(at.source, key_node.start_mark, at.key, f"keys must be names, not {_kind(key_node)}")
        key = key_node.value
        where = Located(at.source, f"{at.key}.{key}" if at.key else key, value_node, key_node)
        if key in entries:
            raise_at(at.source, key_node.start_mark, where.key, "given twice")
        if known is not None and key not in known:
            raise_at(at.source, key_node.start_mark, where.key, f"unknown key; allowed: {', '.join(known)}")
        entries[key] = where
    return entries


def text(at: Located) -> str:
    """A string value: quoted or plain, as YAML reads a string."""
    if not isinstance(at.node, yaml.ScalarNode) or at.node.tag != _STR:
        at.fail(f"must be a string, not {_kind(at.node)}")
    return str(at.node.value)


def word(at: Located) -> str:
    """A scalar as written (a number or a word): what a command-line argument or an environment value is."""
    if not isinstance(at.node, yaml.ScalarNode) or at.node.tag == _NULL:
        at.fail(f"must be a value, not {_kind(at.node)}")
    return str(at.node.value)


def whole_number(at: Located, minimum: int = 0, maximum: int | None = None) -> int:
    if not isinstance(at.node, yaml.ScalarNode) or at.node.tag != _INT:
        at.fail(f"must be a whole number, not {_kind(at.node)}")
    value = int(str(at.node.value).replace("_", ""), 0)
    if value < minimum or (maximum is not None and value > maximum):
        at.fail(f"{value} is out of range: {minimum} to {maximum}" if maximum is not None else f"{value} is below {minimum}")
    return value


def sequence(at: Located) -> list[Located]:
    """A list's items; a single value stands for a list of one."""
    if isinstance(at.node, yaml.ScalarNode) and at.node.tag != _NULL:
        return [at]
    if not isinstance(at.node, yaml.SequenceNode):
        at.fail(f"must be a list, not {_kind(at.node)}")
    return [Located(at.source, f"{at.key}[{index}]", item) for index, item in enumerate(at.node.value)]


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "empty"
    return f"{node.tag.rsplit(':', 1)[-1]} {node.value!r}"
