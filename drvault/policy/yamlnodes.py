"""Typed reading of a composed YAML node tree, naming the file and line in every error.

The YAML text is composed (not constructed), so every value keeps the line it came from.
Errors read ``drvault.yaml:14: centers.gz-prod.role: expected one of ...``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TypeVar

import yaml

from drvault.errors import ConfigError, UsageError
from drvault.policy.model import Where

T = TypeVar("T")

_MERGE_TAG = "tag:yaml.org,2002:merge"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def compose(text: str, file: str) -> yaml.Node | None:
    """The node tree of the single YAML document in ``text`` (None when it is empty)."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = _one_line(e.problem or e.context or "malformed").removeprefix("but ")
        context = ""
        if e.context and e.problem and e.context_mark is not None:
            context = f" ({_one_line(e.context)} at line {e.context_mark.line + 1})"
        raise ConfigError(f"{file}{line}: invalid YAML: {problem}{context}") from None
    except yaml.reader.ReaderError as e:
        number = text.count("\n", 0, e.position) + 1
        raise ConfigError(f"{file}:{number}: invalid YAML: {_one_line(e.reason)}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{file}: invalid YAML: {_one_line(str(e))}") from None


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return f"a {type(value).__name__}"


class Value:
    """One node of the tree with its dotted path, converted on demand.

    ``line`` overrides the node's own line: a mapping's value is placed at its key.
    """

    def __init__(self, node: yaml.Node, file: str, path: str, line: int | None = None) -> None:
        self.node = node
        self.file = file
        self.path = path
        self.line = node.start_mark.line + 1 if line is None else line

    @property
    def where(self) -> Where:
        return Where(self.file, self.line)

    def error(self, message: str) -> ConfigError:
        """A :class:`ConfigError` reading ``file:line: path: message``."""
        prefix = f"{self.path}: " if self.path else ""
        return ConfigError(f"{self.where}: {prefix}{message}")

    def _kind(self) -> str:
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        return _describe(self.scalar())

    @property
    def is_null(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode) and self.scalar() is None

    def scalar(self) -> object:
        """The scalar as the YAML safe loader resolves it: ``3`` int, ``"3"`` str, ``no`` bool."""
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error(f"expected a single value, got {self._kind()}")
        try:
            return yaml.constructor.SafeConstructor().construct_object(self.node, deep=True)
        except yaml.constructor.ConstructorError as e:
            raise self.error(_one_line(e.problem or "cannot read this value")) from None

    def text(self) -> str:
        """The scalar exactly as written (``1:30`` stays text, not the YAML 1.1 integer 90)."""
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error(f"expected a single value, got {self._kind()}")
        if self.is_null:
            raise self.error("missing value")
        return str(self.node.value)

    def as_str(self, *, choices: Iterable[str] | None = None) -> str:
        value = self.scalar()
        if not isinstance(value, str):
            raise self.error(f"expected a string, got {_describe(value)}")
        if not value.strip():
            raise self.error("expected a non-empty string")
        if choices is not None:
            allowed = tuple(choices)
            if value not in allowed:
                raise self.error(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def as_int(self, *, low: int | None = None, high: int | None = None) -> int:
        value = self.scalar()
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(f"expected an integer, got {_describe(value)}")
        self._check_range(value, low, high)
        return value

    def as_float(self, *, low: float | None = None, high: float | None = None) -> float:
        value = self.scalar()
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(f"expected a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise self.error(f"expected a finite number, got {value}")
        self._check_range(value, low, high)
        return float(value)

    def _check_range(self, value: float, low: float | None, high: float | None) -> None:
        if low is not None and high is not None and not low <= value <= high:
            raise self.error(f"{value} is out of range {low}..{high}")
        if low is not None and value < low:
            raise self.error(f"{value} is below the minimum {low}")
        if high is not None and value > high:
            raise self.error(f"{value} is above the maximum {high}")

    def as_bool(self) -> bool:
        value = self.scalar()
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {_describe(value)}")
        return value

    def items(self) -> list[Value]:
        """The entries of a list, each with its index in the path."""
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"expected a list, got {self._kind()}")
        return [Value(n, self.file, f"{self.path}[{i}]") for i, n in enumerate(self.node.value)]

    def as_str_list(
        self, *, choices: Iterable[str] | None = None, non_empty: bool = False
    ) -> tuple[str, ...]:
        allowed = None if choices is None else tuple(choices)
        values = tuple(item.as_str(choices=allowed) for item in self.items())
        if non_empty and not values:
            raise self.error("expected a non-empty list")
        return values

    def as_mapping(self, keys: Iterable[str] | None = None) -> MappingReader:
        return MappingReader(self, keys)

    def convert(self, parse: Callable[[str], T]) -> T:
        """``parse(text)``, with its :class:`UsageError` turned into a located ConfigError."""
        try:
            return parse(self.text())
        except ConfigError:
            raise
        except UsageError as e:
            raise self.error(str(e)) from None


class Entry:
    """One key of a mapping with its value: ids of centers, sets and copies come as entries."""

    def __init__(self, key: Value, value: Value) -> None:
        self.key = key
        self.value = value

    @property
    def name(self) -> str:
        return str(self.key.node.value)


class MappingReader:
    """Takes keys out of one mapping; :meth:`finish` then rejects the keys nobody took.

    With ``keys`` (the mapping's schema) unknown keys are rejected at once, before a missing
    required key can hide the misspelling that caused it.
    """

    def __init__(self, value: Value, keys: Iterable[str] | None = None) -> None:
        if not isinstance(value.node, yaml.MappingNode):
            raise value.error(f"expected a mapping, got {value._kind()}")
        self.value = value
        self._entries: dict[str, Entry] = {}
        for key_node, value_node in value.node.value:
            key = Value(key_node, value.file, value.path)
            if key_node.tag == _MERGE_TAG:
                raise key.error("merge keys (<<) are not supported")
            if not isinstance(key_node, yaml.ScalarNode):
                raise key.error(f"a key must be a single value, got {key._kind()}")
            name = str(key_node.value)
            if name in self._entries:
                first = self._entries[name].key.where.line
                raise key.error(f"duplicate key {name!r} (first at line {first})")
            child = Value(value_node, value.file, _join(value.path, name), key.line)
            self._entries[name] = Entry(key, child)
        self._known: list[str] = [] if keys is None else list(keys)
        self._taken: set[str] = set()
        if keys is not None:
            self._reject_unknown(set(self._known))

    @classmethod
    def root(cls, node: yaml.Node, file: str, keys: Iterable[str] | None = None) -> MappingReader:
        return cls(Value(node, file, ""), keys)

    @property
    def where(self) -> Where:
        return self.value.where

    @property
    def path(self) -> str:
        return self.value.path

    def error(self, message: str) -> ConfigError:
        return self.value.error(message)

    def optional(self, key: str) -> Value | None:
        """The value under ``key``; None when it is absent or null."""
        if key not in self._known:
            self._known.append(key)
        self._taken.add(key)
        entry = self._entries.get(key)
        if entry is None or entry.value.is_null:
            return None
        return entry.value

    def required(self, key: str) -> Value:
        value = self.optional(key)
        if value is None:
            if key in self._entries:
                raise self._entries[key].value.error("missing value")
            raise self.error(f"missing required key {key!r}")
        return value

    def entries(self) -> list[Entry]:
        """Every key with its value, in file order, for mappings keyed by ids."""
        self._taken.update(self._entries)
        return list(self._entries.values())

    def req_str(self, key: str, *, choices: Iterable[str] | None = None) -> str:
        return self.required(key).as_str(choices=choices)

    def opt_str(self, key: str, *, choices: Iterable[str] | None = None) -> str | None:
        value = self.optional(key)
        return None if value is None else value.as_str(choices=choices)

    def req_int(self, key: str, *, low: int | None = None, high: int | None = None) -> int:
        return self.required(key).as_int(low=low, high=high)

    def opt_int(self, key: str, *, low: int | None = None, high: int | None = None) -> int | None:
        value = self.optional(key)
        return None if value is None else value.as_int(low=low, high=high)

    def opt_float(
        self, key: str, *, low: float | None = None, high: float | None = None
    ) -> float | None:
        value = self.optional(key)
        return None if value is None else value.as_float(low=low, high=high)

    def opt_bool(self, key: str) -> bool | None:
        value = self.optional(key)
        return None if value is None else value.as_bool()

    def req_str_list(
        self, key: str, *, choices: Iterable[str] | None = None, non_empty: bool = False
    ) -> tuple[str, ...]:
        return self.required(key).as_str_list(choices=choices, non_empty=non_empty)

    def opt_str_list(
        self, key: str, *, choices: Iterable[str] | None = None
    ) -> tuple[str, ...] | None:
        value = self.optional(key)
        return None if value is None else value.as_str_list(choices=choices)

    def req_mapping(self, key: str, keys: Iterable[str] | None = None) -> MappingReader:
        return self.required(key).as_mapping(keys)

    def opt_mapping(self, key: str, keys: Iterable[str] | None = None) -> MappingReader | None:
        value = self.optional(key)
        return None if value is None else value.as_mapping(keys)

    def finish(self) -> None:
        """Reject every key that no one asked for."""
        self._reject_unknown(self._taken)

    def _reject_unknown(self, allowed: set[str]) -> None:
        for name, entry in self._entries.items():
            if name not in allowed:
                known = ", ".join(self._known) or "none"
                raise entry.key.error(f"unknown key {name!r} (known: {known})")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
