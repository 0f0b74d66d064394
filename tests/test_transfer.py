"""Seed 002's transfer protocol: a model trained on an annotated source dataset starts the training on a target.

The target stage of ``fine_tune_from`` with ``location_supervision: false`` must start
from the source's weights and never read the target's masks: the proof is that its
training completes with target masks that raise on any read, while the same model
trained with location supervision trips on them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml
from conftest import tiny_samples
from xaibench_supervised.model import SupervisedSaliencyCNN

from xaibench import hookimpl

from xaibench.api import cli

from xaibench.models import transfer
from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import DataBundle, DatasetRequest, DatasetSpec, Samples
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

FAST = {"epochs": 2, "min_epochs": 0, "patience": 0, "batch_size": 16, "lr": 1e-2}


def load_squares(request: DatasetRequest) -> DataBundle:
    """conftest's left/right squares, ids ``s<seed>-...``; params: ``seed`` (offset), ``channels``, ``masks``."""
    p = {"seed": 0, "channels": 1, "masks": True, **dict(request.params)}
    splits = [tiny_samples(n, p["seed"] + k, split, p["masks"]) for k, (n, split) in
              enumerate(((48, "train"), (16, "val"), (16, "test")))]
    splits = [Samples(s.x.repeat(1, p["channels"], 1, 1), s.y, tuple(f"s{p['seed']}-{i}" for i in s.ids), s.masks)
              for s in splits]
    return DataBundle(*splits, class_names=("left", "right"), modality="image")


class Poisoned(torch.Tensor):
    """Masks that raise on any use: indexing, copying, arithmetic."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        raise AssertionError(f"the target's masks were read ({getattr(func, '__name__', func)})")


class Squares:
    @hookimpl
    def xaibench_register_datasets(self, register: Callable[[DatasetSpec], None]) -> None:
        register(DatasetSpec(name="squares", load=load_squares, modality="image", has_masks=True,
                             description="left/right squares with masks"))


def model(label: str, source: dict[str, Any] | None, **train: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "supervised-saliency-cnn", "label": label, "params": {"width": 4, "depth": 2},
                             "train": {**FAST, **train}}
    if source is not None:
        entry["fine_tune_from"] = {"dataset": "squares", "params": source, "train": FAST}
    return entry


def suite_file(tmp_path: Path, target: dict[str, Any], models: list[dict[str, Any]], name: str = "s") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "samples": 8, "datasets": [{"name": "squares", "params": target}],
                                    "models": models, "methods": ["supervised-saliency"], "metrics": ["hit-rate"]}))
    return path


def trained_states(tmp_path: Path, suite: Path, monkeypatch: pytest.MonkeyPatch, poison: str = "") -> list[dict]:
    """Every ``train`` call's initial and final state; training sets whose ids start with ``poison`` get
    :class:`Poisoned` masks."""
    import xaibench.models.provision

    calls: list[dict] = []
    real = xaibench.models.provision.train

    def spy(net: torch.nn.Module, train_set: Samples, *args: Any, **kwargs: Any) -> torch.nn.Module:
        before = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if poison and train_set.ids[0].startswith(poison):
            train_set = Samples(train_set.x, train_set.y, train_set.ids, train_set.masks.as_subclass(Poisoned))
        out = real(net, train_set, *args, **kwargs)
        calls.append({"before": before, "after": {k: v.detach().clone() for k, v in net.state_dict().items()}})
        return out

    monkeypatch.setattr(xaibench.models.provision, "train", spy)
    harness = load_harness([("squares", Squares())])
    with Store(tmp_path / f"{suite.stem}.db") as store:
        Runner(harness, load_suite(suite), store, RunOptions(progress=False)).train_models()
    return calls


def test_fine_tuning_starts_from_the_source_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = suite_file(tmp_path, {"seed": 20}, [model("transferred", {"seed": 10}, location_supervision=False)])
    calls = trained_states(tmp_path, suite, monkeypatch)
    assert len(calls) == 2  # the source stage, then the target stage
    source, target = calls
    # same number of classes: every tensor (trunk, branch and head) starts where the source training ended
    assert set(target["before"]) == set(source["after"])
    assert all(torch.equal(target["before"][k], source["after"][k]) for k in source["after"])
    assert not torch.equal(source["before"]["features.0.0.weight"], source["after"]["features.0.0.weight"])
    # labels only: cross-entropy does not reach the 1x1 branch, so the target stage keeps the source's branch
    assert torch.equal(target["after"]["saliency_head.weight"], source["after"]["saliency_head.weight"])
    assert not torch.equal(target["after"]["features.0.0.weight"], target["before"]["features.0.0.weight"])


def test_the_target_masks_are_never_read_in_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    labels_only = suite_file(tmp_path, {"seed": 20}, [model("labels only", {"seed": 10}, location_supervision=False)])
    calls = trained_states(tmp_path, labels_only, monkeypatch, poison="s20-")
    assert len(calls) == 2  # the source (its masks used), then the target with poisoned masks: never touched
    # the check can fail: the same transfer with location supervision on the target reads them
    with_masks = suite_file(tmp_path, {"seed": 20}, [model("with masks", {"seed": 10})], "m")
    with pytest.raises(AssertionError, match="the target's masks were read"):
        trained_states(tmp_path, with_masks, monkeypatch, poison="s20-")


@pytest.mark.parametrize("source, expected", [
    ({"seed": 10, "masks": False}, "fine_tune_from 'squares': SupervisedSaliencyCNN is trained with masks"),
    ({"seed": 10, "channels": 3}, "features.0.0.weight is (4, 3, 3, 3) in the source model but (4, 1, 3, 3) here"),
])
def test_wrong_sources_are_refused_with_one_line(tmp_path: Path, source: dict[str, Any], expected: str) -> None:
    suite = suite_file(tmp_path, {"seed": 20}, [model("transferred", source, location_supervision=False)])
    harness = load_harness([("squares", Squares())])
    with Store(tmp_path / "r.db") as store, pytest.raises(XaibenchError) as info:
        Runner(harness, load_suite(suite), store, RunOptions(progress=False)).train_models()
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(suite.resolve()))


@pytest.mark.parametrize("entry, expected", [
    ({"fine_tune_from": {"dataset": "synthetic-lesions"}, "weights": "imagenet"},
     "'fine_tune_from' (a source dataset to train on first) and 'weights' exclude each other"),
    ({"fine_tune_from": {"datset": "synthetic-lesions"}}, "'fine_tune_from' is a mapping with 'dataset'"),
    ({"fine_tune_from": {"dataset": "synthetic-lesions", "param": {}}}, "unknown key 'param' in fine_tune_from"),
    ({"fine_tune_from": {"dataset": "synthetic-lesions", "train": {"location_supervision": "no"}}},
     "'location_supervision' must be true or false"),
    ({"fine_tune_from": {"dataset": "synthetic-lesion"}}, "synthetic-lesions"),
    ({"params": {"branch": "decoder"}}, "params.branch must be one of conv1x1, attention, got 'decoder'"),
])
def test_wrong_suites_stop_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: dict[str, Any],
                                         expected: str) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "samples": 4, "image_size": 32,
                                     "datasets": [{"name": "synthetic-lesions",
                                                   "params": {"n_train": 6, "n_val": 3, "n_test": 3}}],
                                     "models": [{"name": "supervised-saliency-cnn", **entry}],
                                     "methods": ["supervised-saliency"], "metrics": ["hit-rate"]}))
    code = cli.main(["run", "--suite", str(suite), "--store", str(tmp_path / "r.db"), "--no-progress", "--no-figures",
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and "\n" not in err, err
    assert f"{suite.resolve()}:" in err or f"{suite}:" in err


def test_the_head_is_new_when_the_class_counts_differ_and_kept_when_they_agree() -> None:
    torch.manual_seed(0)
    source = SupervisedSaliencyCNN(3, 1, "image", width=4, depth=2, branch="attention")
    target = SupervisedSaliencyCNN(2, 1, "image", width=4, depth=2, branch="attention")
    probe = SupervisedSaliencyCNN(3, 1, "image", width=4, depth=2, branch="attention")
    head = transfer.class_dependent(target, probe)
    assert head == {"classifier.weight", "classifier.bias"}
    initial = {k: v.clone() for k, v in target.state_dict().items()}
    fresh = transfer.initialise(target, source, head, same_classes=False, who="m")
    assert fresh == ["classifier.bias", "classifier.weight"]
    for k, v in target.state_dict().items():
        assert torch.equal(v, initial[k] if k in head else source.state_dict()[k])
    twin = SupervisedSaliencyCNN(3, 1, "image", width=4, depth=2, branch="attention")
    assert transfer.initialise(twin, source, head, same_classes=True, who="m") == []
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in twin.state_dict().items())
    with pytest.raises(XaibenchError, match="m: the source model's architecture differs"):
        transfer.initialise(SupervisedSaliencyCNN(3, 1, "image", width=4, depth=2), source, head, True, "m")


def test_boxes_supervise_the_branch_as_filled_rectangles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A box-annotated source (the CSV layout) trains the branch on each image's box filled on the pixel grid."""
    from tests.test_boxes import folder, write

    folder(tmp_path)
    write(tmp_path, "csv")
    seen: list[torch.Tensor] = []
    real = SupervisedSaliencyCNN.training_loss

    def spy(self: SupervisedSaliencyCNN, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        seen.append(masks.clone())
        return real(self, x, y, masks)

    monkeypatch.setattr(SupervisedSaliencyCNN, "training_loss", spy)
    entry = model("transferred", None, location_supervision=False)
    entry["fine_tune_from"] = {"dataset": "imagefolder", "params": {"path": "imgs", "boxes": "boxes.csv", "val": 0.34,
                                                                    "test": 0.34}, "train": {**FAST, "augment": []}}
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "samples": 8, "image_size": 16, "datasets": [{"name": "squares"}],
                                     "models": [entry], "methods": ["supervised-saliency"], "metrics": ["hit-rate"]}))
    harness = load_harness([("squares", Squares())])
    with Store(tmp_path / "r.db") as store:
        Runner(harness, load_suite(suite), store, RunOptions(progress=False, data_root=str(tmp_path))).train_models()
    masks = torch.cat(seen)
    assert len(seen) == FAST["epochs"] and masks.shape[1:] == (16, 16)  # the source stage only: one batch per epoch
    for m in masks:
        rows, cols = m.any(1).nonzero()[:, 0], m.any(0).nonzero()[:, 0]
        box = torch.zeros_like(m)
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert m.any() and torch.equal(m, box)
