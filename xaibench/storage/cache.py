"""On-disk caches under ``XAIBENCH_HOME``: trained checkpoints and saliency maps.

Both are content-addressed by the same kind of key as the store, so a cache entry
can never be used for something it was not computed for. Files are written to a
temporary name and renamed, so a killed run never leaves a half-written entry.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.contract.outputs import unwrap
from xaibench.contract.specs import DataBundle, Samples

HOME_ENV = "XAIBENCH_HOME"


def cache_home() -> Path:
    """``$XAIBENCH_HOME``, else ``$XDG_CACHE_HOME/xaibench``, else ``~/.cache/xaibench``."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xaibench"


def content_key(*parts: Any) -> str:
    """A short stable hex digest of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def numerics(device: torch.device, autocast: bool) -> dict[str, str]:
    """What the numbers were computed with: device type, parameter dtype and autocast (part of every cache key).

    Autocast is effective on CUDA only (the engine runs bfloat16 passes there), so it reads "off" elsewhere.
    """
    return {"device": device.type, "dtype": "float32",
            "autocast": "bfloat16" if autocast and device.type == "cuda" else "off"}


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in blocks (``usedforsecurity=False``: md5 works on FIPS builds too)."""
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a str path
        np.save(f, np.ascontiguousarray(array))


def save_json(record: Any, path: Path) -> None:
    """``record`` as indented JSON, written atomically."""
    _atomic_write(path, lambda p: p.write_text(json.dumps(record, indent=1)))


def save_state(state: Any, path: Path) -> None:
    """``torch.save`` of plain tensors and containers, written atomically."""
    _atomic_write(path, lambda p: torch.save(state, p))


def save_checkpoint(model: nn.Module, path: Path) -> None:
    """Save the user's model's own state dict (inside an output adapter, :func:`xaibench.contract.outputs.unwrap`).

    Detached, on the CPU, written atomically; loadable with ``weights_only=True``.
    """
    save_state({k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}, path)


_SPLITS = ("train", "val", "test")


def bundle_state(bundle: DataBundle) -> dict[str, Any]:
    """A data bundle as tensors, strings and lists only: loadable with ``weights_only=True``."""
    state: dict[str, Any] = {
        "class_names": list(bundle.class_names), "modality": bundle.modality,
        "region_top_level": bundle.region_top_level, "notes": bundle.notes,
        "ground_truth": bundle.ground_truth, "groups": None if bundle.groups is None else dict(bundle.groups),
    }
    for name in _SPLITS:
        split: Samples = getattr(bundle, name)
        state[name] = {"x": split.x, "y": split.y, "ids": list(split.ids), "masks": split.masks,
                       "regions": split.regions}
    return state


def bundle_from_state(state: dict[str, Any]) -> DataBundle:
    """Rebuild a :class:`~xaibench.contract.specs.DataBundle` from :func:`bundle_state`'s output (its inverse)."""
    splits = {name: Samples(x=s["x"], y=s["y"], ids=tuple(s["ids"]), masks=s["masks"], regions=s["regions"])
              for name, s in ((n, state[n]) for n in _SPLITS)}
    return DataBundle(**splits, class_names=tuple(state["class_names"]), modality=state["modality"],
                      region_top_level=state["region_top_level"], notes=state["notes"],
                      ground_truth=state.get("ground_truth", "masks"), groups=state.get("groups"))


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (a format that holds tensors only: no code runs on loading)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise XaibenchError(f"checkpoint {path} is a safetensors file: pip install safetensors") from None
    if not path.exists():
        raise FileNotFoundError(path)
    return load_file(str(path), device="cpu")


def load_checkpoint(model: nn.Module, path: Path, what: str) -> nn.Module:
    """Load a state dict with ``weights_only=True`` (a ``.safetensors`` file with safetensors) into ``model``;
    clear errors on mismatch."""
    try:
        state = _safetensors(path) if path.suffix == ".safetensors" else \
            torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise XaibenchError(f"{what}: checkpoint {path} does not exist") from None
    except XaibenchError:
        raise
    except Exception as exc:  # UnpicklingError for code-carrying pickles, zip errors for corrupt files
        raise XaibenchError(
            f"{what}: refusing checkpoint {path}: it cannot be loaded as plain weights "
            f"(weights_only=True): {str(exc).splitlines()[0]}"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise XaibenchError(f"{what}: checkpoint {path} holds a {type(state).__name__}, not a state dict")
    try:
        unwrap(model).load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise XaibenchError(f"{what}: checkpoint {path} does not fit this architecture: {detail}") from None
    return model


class SaliencyCache:
    """Maps of one (model, method) pair, one ``.npy`` per sample id.

    Per-sample files mean a larger ``samples:`` or a new dataset split computes only
    the samples it has not seen.
    """

    def __init__(self, root: Path, model_key: str, method_key: str) -> None:
        self.dir = root / "saliency" / model_key / method_key

    def _path(self, sample_id: str) -> Path:
        return self.dir / (hashlib.sha256(sample_id.encode()).hexdigest()[:32] + ".npy")

    def missing(self, sample_ids: Sequence[str]) -> list[int]:
        """Positions in ``sample_ids`` whose map is not cached yet (ascending)."""
        return [i for i, s in enumerate(sample_ids) if not self._path(s).exists()]

    def put(self, sample_ids: Sequence[str], maps: np.ndarray) -> None:
        """Cache ``maps[i]`` of ``(N, *spatial)`` maps (dtype kept) under ``sample_ids[i]``, each file atomically."""
        for sid, m in zip(sample_ids, maps):
            _atomic_write(self._path(sid), lambda p, m=m: _save_npy(p, m))

    def get(self, sample_ids: Sequence[str]) -> np.ndarray:
        """The cached maps of ``sample_ids``, stacked to ``(N, *spatial)`` in that order.

        Raises ``FileNotFoundError`` for an id that :meth:`missing` would list. Read into one array, one map at
        a time (never a list of every map and its stacked copy).
        """
        first = np.load(self._path(sample_ids[0]))
        out = np.empty((len(sample_ids), *first.shape), dtype=first.dtype)
        out[0] = first
        for i, s in enumerate(sample_ids[1:], 1):
            out[i] = np.load(self._path(s))
        return out
