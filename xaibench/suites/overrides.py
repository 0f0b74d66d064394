"""Suite values from the command line: ``xaibench run --suite busi --set image_size=224``.

An override is a dotted key into the suite's YAML and a value: ``image_size``,
``models.0.train.epochs`` (a list item by its index) or ``methods.gradcam.params.layer``
(a list item by its ``label`` or ``name``). On the command line the value is typed as
YAML (``--set samples=32`` gives an int, ``--set methods=[saliency, gradcam]`` a list);
from Python (:func:`xaibench.run`'s ``overrides=``) it is the object given. Overrides
are applied to the parsed suite before it is validated, so an overridden value is
checked exactly as the file's own; an error on it names ``--set KEY`` instead of a file
line. Every error is one :class:`~xaibench.base.errors.SuiteError` line.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import yaml

from xaibench.base.errors import SuiteError


def parse_assignments(texts: Sequence[str]) -> dict[str, Any]:
    """``["image_size=224", "target=label"]`` -> ``{"image_size": 224, "target": "label"}``.

    Each text is ``KEY=VALUE``; the value is parsed as YAML (an empty value is YAML's null).
    A later assignment of the same key wins, as on most command lines.

    Raises:
        SuiteError: a text without ``=``, an empty key, or a value that is not YAML.
    """
    out: dict[str, Any] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SuiteError(f"--set {text}: give KEY=VALUE, e.g. --set image_size=224 or "
                             f"--set models.0.train.epochs=3")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SuiteError(f"--set {key}: the value {value!r} is not YAML ({problem})") from None
    return out


def apply(doc: Any, overrides: Mapping[str, Any], first_line: int,
          mapping: Callable[[int], Any], sequence: Callable[[int], Any]) -> dict[int, str]:
    """Set each dotted key of ``overrides`` in the parsed suite ``doc`` (in place).

    Args:
        doc: the suite as the YAML loader built it: mappings with ``key_lines``, lists with ``item_lines``.
        overrides: dotted key -> value.
        first_line: the first line number past the file's end; override ``i`` gets line ``first_line + i``, so
            an error the validation raises on that line can be told apart from the file's own lines.
        mapping, sequence: build an empty located mapping / list with a given line (the loader's types).

    Returns:
        line -> ``--set KEY``, for the error messages of every line this call assigned.

    Raises:
        SuiteError: a key that walks through a value that is neither a mapping nor a list, a list index out
            of range, or a list item name that no entry has (naming the entries there are).
    """
    labels: dict[int, str] = {}
    for i, (key, value) in enumerate(overrides.items()):
        line = first_line + i
        labels[line] = f"--set {key}"
        parts = str(key).split(".")
        if not all(parts):
            raise SuiteError(f"--set {key}: a dotted key has no empty parts, e.g. models.0.train.epochs")
        node = doc
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth]) or "the suite"
            if isinstance(node, list):
                index = _item(node, part, key, where)
                if last:
                    node[index] = _located(value, line, mapping, sequence)
                    node.item_lines[index] = line
                    break
                if isinstance(node[index], str):  # a bare name becomes {name: ...} to take keys
                    entry = mapping(node.item_lines[index])
                    entry["name"] = node[index]
                    entry.key_lines["name"] = node.item_lines[index]
                    node[index] = entry
                node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[part] = _located(value, line, mapping, sequence)
                    node.key_lines[part] = line
                    break
                if part not in node or node[part] is None:
                    node[part] = mapping(line)
                    node.key_lines[part] = line
                node = node[part]
            else:
                raise SuiteError(f"--set {key}: {where} is {type(node).__name__} {node!r}, which has no key {part!r}")
    return labels


def _item(items: list, part: str, key: str, where: str) -> int:
    """The index of the list item ``part`` names: a position, or an entry's ``label`` or ``name``."""
    if part.lstrip("-").isdigit():
        index = int(part)
        if not 0 <= index < len(items):
            raise SuiteError(f"--set {key}: {where} has {len(items)} item{'s' * (len(items) != 1)} "
                              f"(0 to {len(items) - 1}), not {index}")
        return index
    names = [item if isinstance(item, str) else (item.get("label") or item.get("name"))
             if isinstance(item, dict) else None for item in items]
    if part not in names:
        known = ", ".join(str(n) for n in names if n is not None) or "none"
        raise SuiteError(f"--set {key}: {where} has no entry {part!r} (entries: {known}; or give an index)")
    return names.index(part)


def _located(value: Any, line: int, mapping: Callable[[int], Any], sequence: Callable[[int], Any]) -> Any:
    """``value`` with every mapping and list rebuilt as the loader's located types, all on ``line``."""
    if isinstance(value, Mapping):
        out = mapping(line)
        for k, v in value.items():
            out[k] = _located(v, line, mapping, sequence)
            out.key_lines[k] = line
        return out
    if isinstance(value, (list, tuple)):
        out = sequence(line)
        out.extend(_located(v, line, mapping, sequence) for v in value)
        out.item_lines = [line] * len(out)
        return out
    return value
