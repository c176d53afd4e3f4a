"""YAML with line numbers: a document's values and the line each key path starts on, for
diagnostics about a Truss config.yaml.

PyYAML's safe composer gives nodes with marks; this walks them once, building the plain
values (safe types only) and a map from key path to line, so that a diagnostic about
`docker_server.server_port` can name its line as the TOML loader does. Duplicate keys
are an error here, as they are for Truss itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

KeyPath = tuple[str | int, ...]


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

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        message = f"{context}: {problem}" if context else problem
        raise YamlError(message, mark.line + 1 if mark else None) from None
    if node is None:
        return YamlDocument({})
    document = YamlDocument(None)
    document.value = _build(node, (), document.lines, yaml)
    return document


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
