"""YAML with line numbers: a document's values and the line each key path starts on, for
diagnostics about a Truss config.yaml.

PyYAML's safe composer gives nodes with marks; this walks them once, building the plain
values (safe types only) and a map from key path to line, so that a diagnostic about
`docker_server.server_port` can name its line as the TOML loader does. Duplicate keys
are an error here, as they are for Truss itself. A document is bounded before it is
built: its size in bytes, the values its aliases expand to (an alias bomb is refused in
milliseconds, not built to gigabytes), and how deep it nests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

KeyPath = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024  # a Truss config.yaml is a few KB
MAX_VALUES = 100_000  # values once every alias is expanded
MAX_DEPTH = 100  # nesting levels; PyYAML's composer recurses per level


class YamlError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class YamlDocument:
    value: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def find_line(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, else of its nearest enclosing key that has one."""
        for length in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:length]))
            if line:
                return line
        return None


def load_yaml(text: str) -> YamlDocument:
    """The document in `text` (an empty file is an empty mapping). Raises YamlError."""
    import yaml  # heavy; only files that are YAML pay for it

    if len(text) > MAX_BYTES:
        raise YamlError(f"the file is larger than {MAX_BYTES // 2**20} MB; a config this big is refused",
                        text.count("\n", 0, MAX_BYTES) + 1)
    try:
        too_deep = _too_deep_at(text, yaml)
        if too_deep:
            raise YamlError(f"nested too deeply (more than {MAX_DEPTH} levels)", too_deep)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise YamlError(f"nested too deeply (more than {MAX_DEPTH} levels)", None) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        message = f"{context}: {problem}" if context else problem
        raise YamlError(message, mark.line + 1 if mark else None) from None
    if node is None:
        return YamlDocument({})
    _expanded_size(node, {}, yaml)
    document = YamlDocument(None)
    document.value = _build(node, (), document.lines, yaml)
    return document


def _expanded_size(node: Any, sizes: dict[int, int], yaml: Any) -> int:
    """How many values `node` stands for once its aliases are expanded, each distinct node
    counted once (an alias is the anchor's node object again): linear in the file."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes, yaml) + _expanded_size(v, sizes, yaml) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes, yaml) for item in node.value)
    if size > MAX_VALUES:
        raise YamlError(f"the value here expands through aliases to more than {MAX_VALUES} values "
                        "(an alias bomb?); refused", node.start_mark.line + 1)
    sizes[id(node)] = size
    return size


def _too_deep_at(text: str, yaml: Any) -> int | None:
    """The line where nesting first passes MAX_DEPTH, from the tokens alone (the scanner
    does not recurse); None when it never does. Scan errors are left to compose."""
    flow = _flow_too_deep_at(text)
    if flow is not None:
        return flow
    opening = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken,
               yaml.BlockSequenceStartToken, yaml.BlockMappingStartToken)
    closing = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            depth += isinstance(token, opening) - isinstance(token, closing)
            if depth > MAX_DEPTH:
                return token.start_mark.line + 1
    except yaml.YAMLError:
        return None
    return None


_FLOW_SKIP = re.compile(r"""'[^']*'|"(?:[^"\\]|\\.)*"|#.*""")


def _flow_too_deep_at(text: str) -> int | None:
    """The line where flow brackets ([ and {) first nest past MAX_DEPTH, quoted scalars and
    comments aside; one pass over the text. PyYAML's scanner reads a run of flow openers
    ahead of its first token and takes time quadratic in its length (5000 took a second),
    so a deep run is refused before the scanner sees it."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        for char in _FLOW_SKIP.sub("", line):
            if char in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    return number
            elif char in "]}" and depth:
                depth -= 1
    return None


def _build(node: Any, path: KeyPath, lines: dict[KeyPath, int], yaml: Any) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, path, lines, yaml)
            if isinstance(key, (dict, list)):
                raise YamlError("a key must be a plain value, not a mapping or list", key_node.start_mark.line + 1)
            key = key if isinstance(key, str) else str(key)
            if key in result:
                raise YamlError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
            lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _build(value_node, path + (key,), lines, yaml)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            items.append(_build(item, path + (index,), lines, yaml))
        return items
    try:
        return yaml.SafeLoader(b"").construct_object(node, deep=True)
    except yaml.YAMLError as err:
        raise YamlError(str(getattr(err, "problem", err)), node.start_mark.line + 1) from None
