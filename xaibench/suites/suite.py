"""YAML suite -> validated :class:`Suite`, with ``file:line`` on every error.

Suites are loaded with a ``yaml.SafeLoader`` subclass that remembers the line of
every mapping key and list item, so a typo deep in a suite is reported where it is.
Plugin names are *not* resolved here: the planner does that against the registries.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from xaibench.base.errors import SuiteError, XaibenchError, did_you_mean
from xaibench.suites.overrides import apply as apply_overrides
from xaibench.suites.targets import region_dict, region_target
from xaibench.contract.validate import train_options
from xaibench.contract.specs import OUTPUT_FORMS


class _Located(dict):
    """A mapping that remembers the 1-based line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class _LocatedList(list):
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Located:
    loader.flatten_mapping(node)
    out = _Located()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _LocatedList:
    out = _LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _located_mapping(line: int) -> _Located:
    out = _Located()
    out.line, out.key_lines = line, {}
    return out


def _located_list(line: int) -> _LocatedList:
    out = _LocatedList()
    out.line, out.item_lines = line, []
    return out


@dataclass(frozen=True)
class Entry:
    """One dataset, model, method or metric named in a suite."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Display name; lets one plugin appear twice with different parameters.
    label: str = ""
    line: int = 0
    #: Models only: trainer overrides and an optional user checkpoint.
    train: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    #: Datasets only: skip (with the reason) rather than fail when the data cannot be loaded.
    optional: bool = False
    #: Models only: ``package.module:function`` building the model (no plugin needed), the CAM layer by
    #: dotted name, and how to read the output (:mod:`xaibench.contract.outputs`).
    factory: str | None = None
    layer: str | None = None
    output: str = "logits"
    output_index: int | None = None
    output_key: str | None = None
    #: Methods only: accept a CAM layer whose map is smaller than 4x4 (xaibench.scoring.degenerate).
    allow_small_cam: bool = False
    #: Models only: published weights to fine-tune from (``imagenet``; :mod:`xaibench.models.pretrained`).
    weights: str | None = None
    #: Datasets only, set by a suite's ``folds: K``: this entry is fold ``fold`` (1-based) of the dataset.
    fold: int | None = None
    #: Models only: the source dataset (name, params, line; ``train``: the source stage's trainer overrides) the
    #: model is first trained on; its weights start the training on each suite dataset (:mod:`xaibench.models.transfer`).
    fine_tune_from: "Entry | None" = None

    @property
    def source(self) -> str:
        """The display name of the dataset a fold entry was cut from (the display name otherwise)."""
        return self.display.rsplit(" fold ", 1)[0] if self.fold else self.display

    @property
    def display(self) -> str:
        """The name the leaderboard shows: the ``label`` if given, else the plugin name."""
        return self.label or self.name

    def identity(self) -> str:
        """A canonical string of what determines this entry's results."""
        return json.dumps(
            {"name": self.name, "params": self.params, "train": self.train, "checkpoint": self.checkpoint,
             "factory": self.factory, "layer": self.layer, "output": self.output,
             "output_index": self.output_index, "output_key": self.output_key,
             **({"weights": self.weights} if self.weights else {}), **({"fold": self.fold} if self.fold else {}),
             **({"fine_tune_from": self.fine_tune_from.identity()} if self.fine_tune_from else {})},
            sort_keys=True,
            default=str,
        )


@dataclass(frozen=True)
class Suite:
    """A validated suite file (:func:`load_suite`): what to run and how.

    ``samples``: test samples evaluated per dataset (>= 1); ``image_size``: the side
    images are resized to (None: the dataset's own); ``target``: the explained class,
    ``predicted`` or ``label``, or for segmentation models a region target, the dict of
    :data:`xaibench.suites.targets.KEYS` with every key filled in (:func:`xaibench.suites.targets.region_target`);
    ``batch_size``: samples per forward batch (>= 1); ``seed``
    seeds training, sampling and bootstrap CIs. These defaults are the only place suite
    defaults are written: keys absent from the file take them.
    """

    name: str
    path: str
    datasets: tuple[Entry, ...]
    models: tuple[Entry, ...]
    methods: tuple[Entry, ...]
    metrics: tuple[Entry, ...]
    description: str = ""
    seed: int = 0
    samples: int = 32
    image_size: int | None = None
    target: str | Mapping[str, Any] = "predicted"
    batch_size: int = 64
    #: Seconds each plugin call of a cell may take before the cell fails (None: no limit).
    cell_timeout: float | None = None
    #: Perturbations K per MetaQuantus test (model and input, minor and disruptive: 4K re-runs of every cell;
    #: :mod:`xaibench.running.metarun`); 0 (the default) leaves noise resilience and adversary reactivity out.
    meta_evaluation: int = 0
    #: k-fold cross-validation (:mod:`xaibench.data.folds`): each dataset becomes ``folds`` entries, one per held-out fold.
    folds: int | None = None
    #: The values set on top of the file (``xaibench run --set KEY=VALUE``; :mod:`xaibench.suites.overrides`), as given.
    overrides: Mapping[str, Any] = field(default_factory=dict)
    #: Lines past the file's end that an override assigned -> ``--set KEY`` (what :meth:`at` names).
    override_lines: Mapping[int, str] = field(default_factory=dict)

    def at(self, line: int) -> str:
        """Where a suite line comes from, for an error message: ``path:line``, or ``--set KEY`` for an override's."""
        return self.override_lines.get(line) or f"{self.path}:{line}"

    def digest(self) -> str:
        """The first 16 hex digits of the SHA-256 of the suite file's bytes and of its overrides."""
        data = Path(self.path).read_bytes()
        if self.overrides:
            data += json.dumps(_plain(dict(self.overrides)), sort_keys=True, default=str).encode()
        return hashlib.sha256(data).hexdigest()[:16]


_TOP_KEYS = {
    "name": str,
    "description": str,
    "seed": int,
    "samples": int,
    "image_size": (int, type(None)),
    "target": (str, dict),
    "batch_size": int,
    "cell_timeout": (int, float, type(None)),
    "meta_evaluation": int,
    "folds": (int, type(None)),
    "datasets": list,
    "models": list,
    "methods": list,
    "metrics": list,
}
_REQUIRED = ("name", "datasets", "models", "methods", "metrics")
_ENTRY_KEYS = {"name", "params", "label"}
_MODEL_KEYS = _ENTRY_KEYS | {"train", "checkpoint", "factory", "layer", "output", "output_index", "output_key",
                             "weights", "fine_tune_from"}
_SOURCE_KEYS = ("dataset", "params", "train")
#: Model entry keys with their types (``output`` is checked against xaibench.contract.specs.OUTPUT_FORMS).
_MODEL_TYPED = {"factory": str, "layer": str, "output": str, "output_index": int, "output_key": str, "weights": str}
_DATASET_KEYS = _ENTRY_KEYS | {"optional"}
_METHOD_KEYS = _ENTRY_KEYS | {"allow_small_cam"}
_TARGETS = ("predicted", "label")
_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def load_suite(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Suite:
    """Parse and validate a suite file; raise :class:`SuiteError` naming file and line.

    ``overrides`` (dotted key -> value, :mod:`xaibench.suites.overrides`) are set on the parsed file before it is
    validated; an error on an overridden value names ``--set KEY`` instead of a line.
    """
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{where}: cannot read suite: {exc.strerror or exc}") from None
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(f"{where}{line}: malformed YAML: {problem}") from None
    if not isinstance(doc, _Located):
        raise SuiteError(f"{where}:1: a suite is a YAML mapping with keys {', '.join(_REQUIRED)}")
    labels = apply_overrides(doc, overrides or {}, text.count("\n") + 2, _located_mapping, _located_list)

    def at(line: int) -> str:
        return labels.get(line) or f"{where}:{line}"

    def err(line: int, msg: str) -> SuiteError:
        return SuiteError(f"{at(line)}: {msg}")

    for key in doc:
        if key not in _TOP_KEYS:
            raise err(doc.key_lines[key], f"unknown key {key!r}{did_you_mean(str(key), _TOP_KEYS)}")
    for key in _REQUIRED:
        if key not in doc:
            raise err(doc.line, f"missing required key {key!r}")
    for key, typ in _TOP_KEYS.items():
        if key in doc and (not isinstance(doc[key], typ) or isinstance(doc[key], bool)):
            want = typ.__name__ if isinstance(typ, type) else " or ".join(
                "null" if t is type(None) else t.__name__ for t in typ)
            raise err(doc.key_lines[key], f"{key!r} must be {want}, got {type(doc[key]).__name__}")
    if isinstance(doc.get("target"), dict):
        try:
            doc["target"] = region_dict(region_target(dict(doc["target"]), "'target'"))
        except XaibenchError as exc:
            raise err(doc.key_lines["target"], str(exc)) from None
    elif "target" in doc and doc["target"] not in _TARGETS:
        raise err(doc.key_lines["target"], f"'target' must be one of {', '.join(_TARGETS)}, or a region target "
                                           f"such as {{region: predicted, class: 1, reduce: sum}}")
    for key in ("samples", "batch_size", "image_size"):
        if isinstance(doc.get(key), int) and doc[key] < 1:
            raise err(doc.key_lines[key], f"{key!r} must be positive")
    if doc.get("meta_evaluation", 0) < 0:
        raise err(doc.key_lines["meta_evaluation"], "'meta_evaluation' is the number of perturbations per "
                  "MetaQuantus test: 0 (off) or more")
    if isinstance(doc.get("folds"), int) and doc["folds"] < 2:
        raise err(doc.key_lines["folds"], "'folds' must be at least 2 (k-fold cross-validation), or absent")
    if doc.get("cell_timeout") is not None and not doc["cell_timeout"] > 0:
        raise err(doc.key_lines["cell_timeout"], "'cell_timeout' must be a positive number of seconds")

    def entries(kind: str) -> tuple[Entry, ...]:
        items = doc[kind]
        if not items:
            raise err(doc.key_lines[kind], f"{kind!r} is empty")
        out: list[Entry] = []
        allowed = {"models": _MODEL_KEYS, "datasets": _DATASET_KEYS, "methods": _METHOD_KEYS}.get(kind, _ENTRY_KEYS)
        for item, line in zip(items, items.item_lines):
            if isinstance(item, str):
                out.append(Entry(name=item, line=line))
                continue
            if not isinstance(item, _Located):
                raise err(line, f"each of {kind!r} is a name or a mapping with 'name'")
            for key in item:
                if key not in allowed:
                    raise err(item.key_lines[key], f"unknown key {key!r} in {kind}{did_you_mean(str(key), allowed)}")
            if not isinstance(item.get("name"), str):
                raise err(item.line, f"each of {kind!r} needs a 'name'")
            for key in ("params", "train"):
                if key in item and not isinstance(item[key], dict):
                    raise err(item.key_lines[key], f"{key!r} must be a mapping")
            train_options(item.get("train", {}), getattr(item.get("train"), "key_lines", {}), item.line, at)
            for flag in ("optional", "allow_small_cam"):
                if not isinstance(item.get(flag, False), bool):
                    raise err(item.key_lines[flag], f"{flag!r} must be true or false")
            for key, typ in _MODEL_TYPED.items():
                if kind == "models" and key in item and (not isinstance(item[key], typ) or isinstance(item[key], bool)):
                    raise err(item.key_lines[key], f"{key!r} must be {typ.__name__}, got {type(item[key]).__name__}")
            if kind == "models" and item.get("output", "logits") not in OUTPUT_FORMS:
                raise err(item.key_lines["output"], f"'output' must be one of {', '.join(OUTPUT_FORMS)}"
                          f"{did_you_mean(str(item['output']), OUTPUT_FORMS)}")
            if kind == "models" and isinstance(item.get("factory"), str) and not _FACTORY.fullmatch(item["factory"]):
                raise err(item.key_lines["factory"], "'factory' is `package.module:function`, e.g. "
                          "`my_models.nets:build_cnn`")
            checkpoint = item.get("checkpoint")
            if checkpoint is not None and "weights" in item:
                raise err(item.key_lines["weights"], "'weights' (a start for training) and 'checkpoint' (trained "
                          "weights, no training) exclude each other; keep one")
            for other in ("checkpoint", "weights"):
                if "fine_tune_from" in item and other in item:
                    raise err(item.key_lines[other], f"'fine_tune_from' (a source dataset to train on first) and "
                              f"{other!r} exclude each other; keep one")
            if checkpoint is not None:
                checkpoint = str((path.parent / str(checkpoint)).resolve())
            out.append(
                Entry(
                    name=item["name"],
                    params=_plain(item.get("params", {})),
                    label=str(item.get("label", "")),
                    line=item.line,
                    train=_plain(item.get("train", {})),
                    checkpoint=checkpoint,
                    optional=item.get("optional", False),
                    allow_small_cam=item.get("allow_small_cam", False),
                    fine_tune_from=_source(item["fine_tune_from"], item.key_lines["fine_tune_from"], at)
                    if "fine_tune_from" in item else None,
                    **{k: item[k] for k in _MODEL_TYPED if k in item},
                )
            )
        seen: dict[str, int] = {}
        for e in out:
            if e.display in seen:
                raise err(e.line, f"{kind[:-1]} {e.display!r} appears twice (first on line {seen[e.display]}); give one a 'label'")
            seen[e.display] = e.line
        return tuple(out)

    settings = {k: doc[k] for k in _TOP_KEYS if k in doc and k not in _REQUIRED}  # absent: Suite's defaults
    return Suite(
        name=doc["name"],
        path=str(path.resolve()),
        **settings,
        overrides=dict(overrides or {}),
        override_lines=labels,
        datasets=_folded(entries("datasets"), doc.get("folds")),
        models=entries("models"),
        methods=entries("methods"),
        metrics=entries("metrics"),
    )


def _source(item: Any, line: int, at: Callable[[int], str]) -> Entry:
    """A model's ``fine_tune_from: {dataset: <name>, params: {...}, train: {...}}`` as a dataset :class:`Entry`."""
    def err(where: int, msg: str) -> SuiteError:
        return SuiteError(f"{at(where)}: {msg}")

    if not isinstance(item, _Located) or not isinstance(item.get("dataset"), str):
        raise err(line, "'fine_tune_from' is a mapping with 'dataset' (a dataset name), and optional 'params' and "
                  "'train' (the source stage's training options)")
    for key in item:
        if key not in _SOURCE_KEYS:
            raise err(item.key_lines[key], f"unknown key {key!r} in fine_tune_from{did_you_mean(str(key), _SOURCE_KEYS)}")
    for key in ("params", "train"):
        if key in item and not isinstance(item[key], dict):
            raise err(item.key_lines[key], f"fine_tune_from {key!r} must be a mapping")
    train_options(item.get("train", {}), getattr(item.get("train"), "key_lines", {}), item.line, at)
    return Entry(name=item["dataset"], params=_plain(item.get("params", {})), line=item.line,
                 train=_plain(item.get("train", {})))


def _folded(datasets: tuple[Entry, ...], folds: int | None) -> tuple[Entry, ...]:
    """Each dataset as ``folds`` entries labelled ``<name> fold k/K`` (unchanged without ``folds``)."""
    if not folds:
        return datasets
    return tuple(replace(e, label=f"{e.display} fold {k}/{folds}", fold=k) for e in datasets
                 for k in range(1, folds + 1))


def _plain(value: Any) -> Any:
    """Strip location bookkeeping: nested dicts and lists become plain ones."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
