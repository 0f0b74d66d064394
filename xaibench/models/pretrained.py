"""Published weights a model starts from (a suite model's ``weights: imagenet``), offline first.

A weights file is looked for, in order, in ``<cache home>/weights/`` and in torch's own
hub cache (``$TORCH_HOME/hub/checkpoints``, :func:`torch.hub.get_dir`); it is fetched only
with ``--download`` (from its URL, or ``--mirror``), by :func:`torch.hub.download_url_to_file`.
A file is used only when its SHA-256 starts with the prefix in its name (torchvision's
``<arch>-<prefix>.pth`` convention, the check ``torch.hub`` makes), found or fetched alike.

Fine-tuning (Yosinski et al., How transferable are features in deep neural networks?,
NeurIPS 2014; seed 001's recipe): every layer is loaded except the classification head,
which is built anew for the dataset's classes; optionally the head alone is trained first
for ``train.frozen_epochs`` epochs with the backbone frozen, then the whole network.
A one-channel dataset gets the first convolution's RGB filters summed over their input
channels (a grey image is R = G = B, so the first layer's response is unchanged).
Inputs are not ImageNet-normalised: the dataset's values are what the network sees and
fine-tunes to.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Callable
from urllib.parse import urlparse

import torch
from torch import nn

from xaibench.storage.cache import file_digest
from xaibench.data.download import mirrored
from xaibench.base.errors import SuiteError, XaibenchError
from xaibench.contract.published import PretrainedWeights
from xaibench.contract.specs import ModelSpec, Samples, TrainRecipe
from xaibench.scoring.stats import seed_from
from xaibench.models.training import train


def file_name(weights: PretrainedWeights) -> tuple[str, str]:
    """``(file name, SHA-256 prefix)`` from the weights' URL (``.../resnet18-f37072fd.pth``).

    Raises :class:`XaibenchError` when the name carries no hash prefix (nothing to verify against).
    """
    name = PurePosixPath(urlparse(weights.url).path).name
    match = torch.hub.HASH_REGEX.search(name)
    if not match or not match.group(1):
        raise XaibenchError(f"weights {weights.url}: the file name has no '-<sha256 prefix>.' to verify it against")
    return name, match.group(1)


def chosen(spec: ModelSpec, name: str | None, recipe: TrainRecipe, where: str) -> PretrainedWeights | None:
    """The spec's weights called ``name`` (None when the suite names none).

    Raises :class:`SuiteError` (``where`` is ``file:line``) for a name the model does not
    publish and for ``frozen_epochs`` without weights (nothing to freeze).
    """
    if name is None:
        if recipe.frozen_epochs:
            raise SuiteError(f"{where}: train.frozen_epochs freezes pretrained layers, but model {spec.name!r} "
                             f"names no 'weights:'")
        return None
    published = dict(spec.weights)
    if name not in published:
        offer = f"it has: {', '.join(published)}" if published else "it publishes none"
        raise SuiteError(f"{where}: model {spec.name!r} has no weights {name!r}; {offer}")
    return published[name]


def locate(weights: PretrainedWeights, home: Path, download: bool, mirror: str | None, who: str) -> Path:
    """The verified weights file: in ``home / "weights"``, in torch's hub cache, or fetched with ``download``.

    Raises :class:`XaibenchError` (one line) when the file is missing and ``download`` is
    off, when a found or fetched file fails the hash check, or when the download fails.
    """
    name, prefix = file_name(weights)
    ours = home / "weights" / name
    for path in (ours, Path(torch.hub.get_dir()) / "checkpoints" / name):
        if path.is_file():
            digest = file_digest(path)
            if not digest.startswith(prefix):
                raise XaibenchError(f"{path}: its sha256 {digest} does not start with {prefix} (the published "
                                    f"file's); remove it and pass --download to fetch it again")
            return path
    if not download:
        raise XaibenchError(f"{who}: weights file {name} is not in {ours.parent} nor in "
                            f"{Path(torch.hub.get_dir()) / 'checkpoints'}; pass --download to fetch it from "
                            f"{weights.url} (sha256-verified), or place it there")
    url = mirrored(weights.url, name, mirror)
    ours.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(ours), hash_prefix=prefix, progress=True)
    except RuntimeError as exc:  # torch.hub's hash mismatch; the partial file is deleted
        raise XaibenchError(f"{url}: {exc}; the download is corrupt or the file changed, and was deleted") from None
    except (OSError, ValueError) as exc:  # URLError is an OSError
        raise XaibenchError(f"could not download {url}: {exc}. Without network access, fetch it elsewhere and "
                            f"place it as {ours} (or pass --mirror)") from None
    return ours


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def initialise(module: nn.Module, weights: PretrainedWeights, path: Path, who: str) -> nn.Module:
    """Load the weights file at ``path`` into ``module`` in place, all but ``weights.new``.

    A first convolution of the file with 3 input channels goes into a 1-channel model summed
    over its input channels. Raises :class:`XaibenchError` for a key of the file the module
    lacks (outside ``weights.unused``), a parameter of the module the file lacks (outside
    ``weights.new``), and any other shape difference (a parameter changed the architecture).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if weights.convert is not None:
        state = weights.convert(state)
    own = module.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _under(key, weights.new) or (key not in own and _under(key, weights.unused)):
            continue
        if key not in own:
            raise XaibenchError(f"{who}: {path.name} has {key!r}, which the model lacks: a parameter changed the "
                                f"architecture; these weights fit the model with its default parameters")
        target = own[key].shape
        if value.dim() == 4 and value.shape[1] == 3 and target[1] == 1 and value.shape[2:] == target[2:] \
                and value.shape[0] == target[0]:
            value = value.sum(1, keepdim=True)
        if value.shape != target:
            raise XaibenchError(f"{who}: {key} is {tuple(target)} in the model but {tuple(value.shape)} in "
                                f"{path.name}: a parameter or the data's {target[1] if len(target) == 4 else ''} "
                                f"channels changed the architecture; these weights fit 3- or 1-channel inputs and "
                                f"the model's default parameters")
        loaded[key] = value
    missing = [k for k in own if k not in loaded and not _under(k, weights.new) and not k.endswith("num_batches_tracked")]
    if missing:
        raise XaibenchError(f"{who}: {path.name} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    module.load_state_dict(loaded, strict=False)
    return module


def fine_tune(module: nn.Module, model: nn.Module, weights: PretrainedWeights, train_set: Samples, val_set: Samples,
              recipe: TrainRecipe, seed: int, device: torch.device,
              on_epoch: Callable[[int, int, float, float], None] | None = None) -> nn.Module:
    """Train ``model`` (``module`` inside its output adapter): the head alone for ``recipe.frozen_epochs``, then all.

    The head is ``weights.new``; its stage keeps the recipe but stops after ``frozen_epochs``
    epochs (with early stopping as usual), and the full stage starts from its best weights.
    """
    if recipe.frozen_epochs:
        backbone = [p for k, p in module.named_parameters() if not _under(k, weights.new)]
        for p in backbone:
            p.requires_grad_(False)
        try:
            train(model, train_set, val_set, replace(recipe, epochs=recipe.frozen_epochs), seed_from(seed, "head"),
                  device, on_epoch)
        finally:
            for p in backbone:
                p.requires_grad_(True)
    return train(model, train_set, val_set, recipe, seed, device, on_epoch)
