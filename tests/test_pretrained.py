"""``weights: imagenet``: published weights found offline, fetched only with --download, hash-checked, fine-tuned.

Weights files are made here from randomly initialised torchvision models (in the
published files' key format) and named ``<arch>-<sha256 prefix>.pth`` as torchvision's
are; they are served from ``file://`` URLs, never the network.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
import torch
import torchvision
from xaibench_models import weights, zoo
from xaibench_models.small_cnn import build_small_cnn

from xaibench.api import cli

from xaibench.models import pretrained
from xaibench.base.errors import SuiteError, XaibenchError
from xaibench.contract.published import PretrainedWeights
from xaibench.contract.specs import ModelSpec, TrainRecipe
from tests.conftest import tiny_samples


def published(folder: Path, arch: str, **kwargs: object) -> tuple[Path, dict[str, torch.Tensor]]:
    """A torchvision ``arch`` with random ImageNet-shaped weights saved as ``folder/<arch>-<sha256[:8]>.pth``."""
    torch.manual_seed(0)
    state = getattr(torchvision.models, arch)(weights=None, **kwargs).state_dict()
    if arch.startswith("densenet"):  # the published (2017) DenseNet files: norm.1, conv.2 ..., no num_batches_tracked
        state = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v for k, v in state.items()
                 if not k.endswith("num_batches_tracked")}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{arch}.tmp"
    torch.save(state, tmp)
    path = folder / f"{arch}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(path)
    return path, state


def weights_of(family: str, path: Path) -> PretrainedWeights:
    return PretrainedWeights(url=path.as_uri(), new=weights.HEADS[family], unused=weights.UNUSED.get(family, ()),
                             convert=zoo.densenet_keys if family == "densenet" else None)


def test_resnet_loads_all_but_the_head_and_sums_rgb_filters_for_grey_input(tmp_path: Path) -> None:
    path, state = published(tmp_path, "resnet18")
    model = zoo.resnet(18)(num_classes=2, in_channels=1, modality="image")
    head = model.fc.weight.detach().clone()
    pretrained.initialise(model, weights_of("resnet", path), path, "resnet18")
    torch.testing.assert_close(model.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    torch.testing.assert_close(model.fc.weight, head)  # the new head keeps its own initialisation
    # a grey image replicated to RGB gives the published first layer's response
    x = torch.rand(2, 1, 32, 32)
    rgb = torch.nn.functional.conv2d(x.expand(-1, 3, -1, -1), state["conv1.weight"], stride=2, padding=3)
    torch.testing.assert_close(model.conv1(x), rgb, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch,family,build", [
    ("densenet121", "densenet", zoo.densenet(121)),
    ("googlenet", "googlenet", zoo.build_googlenet),
    ("mobilenet_v2", "mobilenet_v2", zoo.build_mobilenet_v2),
])
def test_published_formats_load_into_the_built_models(tmp_path: Path, arch: str, family: str, build) -> None:
    kwargs = {"aux_logits": True, "init_weights": True} if arch == "googlenet" else {}
    path, _ = published(tmp_path, arch, **kwargs)
    torch.manual_seed(0)  # the same draws as published(): the reference holds the file's values under module names
    reference = getattr(torchvision.models, arch)(weights=None, **kwargs)
    model = build(num_classes=3, in_channels=3, modality="image")
    pretrained.initialise(model, weights_of(family, path), path, arch)
    expected = reference.state_dict()
    for key, value in model.state_dict().items():
        if not any(key == h or key.startswith(h + ".") for h in weights.HEADS[family]):
            torch.testing.assert_close(value, expected[key], msg=key)


@pytest.mark.heavy
@pytest.mark.skipif(not os.environ.get("XAIBENCH_HEAVY"), reason="writes a 528 MB weights file; set XAIBENCH_HEAVY=1")
def test_vgg16_gap_head_loads_the_convolutions_only(tmp_path: Path) -> None:
    path, state = published(tmp_path, "vgg16")
    model = zoo.build_vgg16(num_classes=2, in_channels=3, modality="image", head="gap")
    pretrained.initialise(model, weights_of("vgg", path), path, "vgg16")
    torch.testing.assert_close(model.features[28].weight, state["features.28.weight"])


def test_an_architecture_change_is_refused_by_name(tmp_path: Path) -> None:
    path, _ = published(tmp_path, "resnet18")
    small = zoo.resnet(18)(num_classes=2, in_channels=1, modality="image", stem="small")
    with pytest.raises(XaibenchError, match=r"conv1.weight is \(64, 1, 3, 3\) in the model but \(64, 3, 7, 7\)"):
        pretrained.initialise(small, weights_of("resnet", path), path, "resnet18")
    five = zoo.resnet(18)(num_classes=2, in_channels=5, modality="image")
    with pytest.raises(XaibenchError, match="3- or 1-channel"):
        pretrained.initialise(five, weights_of("resnet", path), path, "resnet18")


def test_locate_is_offline_first_and_checks_the_hash_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = published(tmp_path / "src", "resnet18")
    spec = weights_of("resnet", path)
    home = tmp_path / "home"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(XaibenchError, match=f"{path.name} is not in .* pass --download to fetch it from"):
        pretrained.locate(spec, home, download=False, mirror=None, who="m")
    # torch's own cache is used as it is, without a download
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / path.name).write_bytes(path.read_bytes())
    assert pretrained.locate(spec, home, download=False, mirror=None, who="m") == hub / path.name
    (hub / path.name).write_bytes(b"not the published file")
    with pytest.raises(XaibenchError, match="does not start with"):
        pretrained.locate(spec, home, download=True, mirror=None, who="m")
    (hub / path.name).unlink()
    got = pretrained.locate(spec, home, download=True, mirror=None, who="m")
    assert got == home / "weights" / path.name and got.read_bytes() == path.read_bytes()
    # a file whose content does not match the published prefix is deleted after the download
    bad = tmp_path / "bad" / path.name
    bad.parent.mkdir()
    bad.write_bytes(b"tampered")
    (home / "weights" / path.name).unlink()
    with pytest.raises(XaibenchError, match="invalid hash value"):
        pretrained.locate(spec, home, download=True, mirror=bad.parent.as_uri(), who="m")
    assert not list((home / "weights").iterdir())


def test_file_names_without_a_hash_prefix_are_refused() -> None:
    with pytest.raises(XaibenchError, match="no '-<sha256 prefix>.'"):
        pretrained.file_name(PretrainedWeights(url="https://example.org/model.pth", new=("fc",)))


def test_unknown_weights_and_frozen_epochs_without_weights_are_suite_errors() -> None:
    spec = ModelSpec(name="m", build=build_small_cnn, modalities=frozenset({"image"}), target_layer=lambda m: m,
                     description="")
    with pytest.raises(SuiteError, match="s.yaml:3: model 'm' has no weights 'imagenet'; it publishes none"):
        pretrained.chosen(spec, "imagenet", TrainRecipe(), "s.yaml:3")
    with pytest.raises(SuiteError, match="frozen_epochs freezes pretrained layers"):
        pretrained.chosen(spec, None, TrainRecipe(frozen_epochs=2), "s.yaml:3")


def test_frozen_epochs_train_the_head_alone_first(tmp_path: Path) -> None:
    path, _ = published(tmp_path, "resnet18")
    spec = weights_of("resnet", path)
    model = zoo.resnet(18)(num_classes=2, in_channels=1, modality="image")
    pretrained.initialise(model, spec, path, "resnet18")
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    seen: list[tuple[bool, bool]] = []

    def on_epoch(epoch: int, epochs: int, loss: float, acc: float) -> None:
        params = dict(model.named_parameters())
        seen.append((all(torch.equal(params[k], v) for k, v in start.items() if not k.startswith("fc.")),
                     torch.equal(params["fc.weight"], start["fc.weight"])))

    recipe = TrainRecipe(epochs=1, batch_size=16, lr=1e-2, patience=0, min_epochs=0, frozen_epochs=2)
    pretrained.fine_tune(model, model, spec, tiny_samples(32, 1, "t"), tiny_samples(8, 2, "v"), recipe, 0,
                         torch.device("cpu"), on_epoch)
    # two frozen epochs (backbone untouched, head trained), then one epoch of the whole network
    assert seen[:2] == [(True, False), (True, False)] and seen[2][0] is False
    assert all(p.requires_grad for p in model.parameters())


def test_builtin_weights_are_torchvision_imagenet_v1() -> None:
    for name, url in weights.IMAGENET.items():
        assert url.startswith("https://download.pytorch.org/models/") and pretrained.file_name(
            PretrainedWeights(url=url, new=()))[0].startswith(f"{name}-")


SUITE = """
name: pretrained
seed: 0
samples: 4
image_size: 32
datasets:
  - name: synthetic-lesions
    params: {{n_train: 24, n_val: 8, n_test: 8}}
models:
  - name: resnet18
    weights: imagenet
    train: {{epochs: 1, batch_size: 8, patience: 0, min_epochs: 0{extra}}}
methods: [{{name: integrated-gradients, params: {{n_steps: 4}}}}]
metrics: [dic]
"""


def test_cli_run_offline_first_then_download(tmp_path: Path, write_suite, isolated_home: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = published(tmp_path / "src", "resnet18")
    monkeypatch.setitem(weights.IMAGENET, "resnet18", path.as_uri())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    suite = write_suite(SUITE.format(extra=", frozen_epochs: 1"))
    args = ["run", "--suite", str(suite), "--store", str(tmp_path / "r.db"), "--no-progress", "--no-figures",
            "--out", str(tmp_path / "out")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"weights file {path.name} is not in" in err[0] and "pass --download" in err[0]
    assert cli.main([*args, "--download"]) == 0
    assert (isolated_home / "weights" / path.name).read_bytes() == path.read_bytes()
    path.unlink()  # from now on found in the cache, no source needed
    capsys.readouterr()
    assert cli.main([*args, "--store", str(tmp_path / "r2.db")]) == 0


def test_weights_and_checkpoint_exclude_each_other(tmp_path: Path, write_suite,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(SUITE.format(extra="").replace("    weights: imagenet\n",
                                                       "    weights: imagenet\n    checkpoint: x.pt\n"))
    assert cli.main(["run", "--suite", str(suite), "--store", str(tmp_path / "r.db"), "--out", str(tmp_path)]) == 2
    assert "'weights' (a start for training) and 'checkpoint'" in capsys.readouterr().err
