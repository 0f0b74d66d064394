"""Datasets of a run: loaded once, validated, cached when deterministic, fingerprinted.

The fingerprint (a digest of every tensor and id) is the dataset's identity in the
model and cell keys; :func:`check_bundle` refuses splits that contradict each
other before any model is trained.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from typing import Mapping

import torch

from xaibench.base import progress
from xaibench.storage.cache import bundle_from_state, bundle_state, content_key, save_state
from xaibench.base.errors import SuiteError, XaibenchError
from xaibench.data.folds import fold_bundle
from xaibench.data.inputs import conform_bundle
from xaibench.suites.options import Settings
from xaibench.suites.plan import Resolved
from xaibench.contract.specs import MODALITY_DIMS, MODALITY_SHAPES, DataBundle, DatasetRequest, DatasetSpec, Samples


def fingerprint(bundle: DataBundle) -> str:
    """sha256 over every tensor and id of the bundle: the dataset's identity in cache keys."""
    h = hashlib.sha256()
    for split in (bundle.train, bundle.val, bundle.test):
        for t in (split.x, split.y, split.masks, split.regions):
            if t is not None:
                h.update(t.contiguous().numpy().tobytes())
        h.update("\0".join(split.ids).encode())
    h.update("\0".join(bundle.class_names).encode())
    return h.hexdigest()[:24]


def check_bundle(name: str, bundle: DataBundle) -> None:
    """Refuse a dataset whose splits contradict each other, naming the dataset and what is wrong.

    Caught here, before any training, rather than as a confusing failure deep inside a
    metric: masks and region maps must match their images' spatial shape, sample ids
    must be unique within a split (caches and scores are keyed by them), labels must
    index ``class_names``, and inputs must be finite.
    """
    def bad(msg: str) -> XaibenchError:
        return XaibenchError(f"dataset {name!r}: {msg}")

    if not isinstance(bundle, DataBundle):
        raise bad(f"the loader returned {type(bundle).__name__}, not a DataBundle")
    dims = MODALITY_DIMS
    if bundle.modality not in dims:
        raise bad(f"modality {bundle.modality!r} is not one of {', '.join(dims)}")
    shape = None
    for split_name, split in (("train", bundle.train), ("val", bundle.val), ("test", bundle.test)):
        x = split.x
        if x.dim() != dims[bundle.modality]:
            raise bad(f"{split_name} inputs have shape {tuple(x.shape)}; {bundle.modality} data is "
                      f"{MODALITY_SHAPES[bundle.modality]}")
        if shape is not None and tuple(x.shape[1:]) != shape:
            raise bad(f"{split_name} inputs have shape {tuple(x.shape[1:])} per sample, the train split "
                      f"{shape}: every split must have the same channels and size")
        shape = tuple(x.shape[1:])
        n = x.shape[0]
        if len(split.ids) != n or split.y.shape != (n,):
            raise bad(f"{split_name} split has {n} inputs, {len(split.ids)} ids and labels of shape "
                      f"{tuple(split.y.shape)}: one id and one label per input")
        if len(set(split.ids)) != n:
            dup = sorted(i for i, k in Counter(split.ids).items() if k > 1)[:3]
            raise bad(f"{split_name} sample ids are not unique ({', '.join(map(repr, dup))} repeat)")
        if n and (split.y.dtype.is_floating_point or int(split.y.min()) < 0
                  or int(split.y.max()) >= bundle.num_classes):
            raise bad(f"{split_name} labels must be integers in 0..{bundle.num_classes - 1} "
                      f"(one per class name), got {split.y.dtype} in {split.y.min().item()}..{split.y.max().item()}")
        for what, t in (("masks", split.masks), ("region maps", split.regions)):
            if t is not None and tuple(t.shape) != (n, *x.shape[2:]):
                raise bad(f"{split_name} {what} have shape {tuple(t.shape)}, but the inputs are "
                          f"{tuple(x.shape)}: each needs one {what[:-1]} of its input's size "
                          f"{tuple(x.shape[2:])}")
        if not torch.isfinite(x).all():
            raise bad(f"{split_name} inputs contain NaN or infinite values")


class Bundles:
    """The datasets of one run by display name, each loaded, checked and fingerprinted once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._bundles: dict[str, DataBundle] = {}
        self._fingerprints: dict[str, str] = {}
        self._sources: dict[str, DataBundle] = {}

    def bundle(self, ds: Resolved) -> DataBundle:
        """Dataset ``ds`` loaded and validated (:func:`check_bundle`); a loader's failure is one XaibenchError line."""
        name = ds.entry.display
        if name not in self._bundles:
            suite, options = self.settings.suite, self.settings.options
            spec: DatasetSpec = ds.spec
            request = DatasetRequest(params=ds.params, seed=suite.seed, image_size=suite.image_size,
                                     data_root=options.data_root, download=options.download, mirror=options.mirror)
            source = content_key(spec.name, dict(request.params))  # the folds of one dataset load it once
            try:
                bundle = self._sources[source] if source in self._sources else self._load(spec, request)
            except XaibenchError as exc:
                raise XaibenchError(f"dataset {name!r}: {exc}") from None
            except TypeError as exc:
                raise SuiteError(f"{suite.at(ds.entry.line)}: dataset {name!r}: {exc}") from None
            except Exception as exc:  # unreadable files: corrupt or truncated images, bad archives
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise XaibenchError(f"dataset {name!r} could not be loaded: {type(exc).__name__}: {first} "
                                    "(--debug shows where)") from exc
            bundle = conform_bundle(name, bundle)  # the input contract (xaibench.data.inputs)
            if ds.entry.fold:
                self._sources[source] = bundle
                try:
                    bundle = fold_bundle(bundle, ds.entry.fold, suite.folds, suite.seed)
                except XaibenchError as exc:
                    raise XaibenchError(f"dataset {name!r}: {exc}") from None
            check_bundle(name, bundle)
            self._bundles[name] = bundle
            self._fingerprints[name] = fingerprint(bundle)
        return self._bundles[name]

    def _load(self, spec: DatasetSpec, request: DatasetRequest) -> DataBundle:
        """``spec.load(request)``, from the bundle cache for deterministic datasets.

        Generating the synthetic data was most of a cached re-run's time; a bundle is
        stored as plain tensors and strings and read back with ``weights_only=True``.
        """
        if not spec.deterministic:
            return spec.load(request)
        key = content_key("dataset", spec.name, spec.version, dict(request.params), request.seed, request.image_size)
        path = self.settings.options.home / "datasets" / f"{key}.pt"
        if path.exists():
            return bundle_from_state(torch.load(path, map_location="cpu", weights_only=True))
        progress.say(f"generating dataset {spec.name!r} ({dict(request.params)}) ...")
        bundle = spec.load(request)
        save_state(bundle_state(bundle), path)
        return bundle

    def fingerprint(self, ds: Resolved) -> str:
        """The fingerprint of dataset ``ds`` (loaded first if needed)."""
        self.bundle(ds)
        return self._fingerprints[ds.entry.display]

    def unavailable(self, ds: Resolved) -> str | None:
        """Why an ``optional: true`` dataset is skipped (its data could not be loaded), else None."""
        if not ds.entry.optional:
            return None
        try:
            self.bundle(ds)
        except XaibenchError as exc:
            return f"optional dataset {ds.entry.display!r} skipped: {str(exc).splitlines()[0]}"
        return None

    def evaluated(self, ds: Resolved) -> Samples:
        """The test samples the run scores for ``ds``: the first ``samples`` of the suite (or ``--limit``)."""
        bundle = self.bundle(ds)
        suite, limit = self.settings.suite, self.settings.options.limit
        n = min(suite.samples, limit or suite.samples, len(bundle.test))
        return bundle.test.subset(slice(0, n))

    def loaded(self, names: set[str]) -> tuple[dict[str, DataBundle], dict[str, str]]:
        """The bundles and fingerprints of the named (already loaded) datasets, to ship to workers."""
        return {n: self._bundles[n] for n in names}, {n: self._fingerprints[n] for n in names}

    def adopt(self, bundles: Mapping[str, DataBundle], fingerprints: Mapping[str, str]) -> None:
        """Use datasets loaded elsewhere (a worker receives them from the driver, not from disk)."""
        self._bundles.update(bundles)
        self._fingerprints.update(fingerprints)
