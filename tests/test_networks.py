"""timm and MONAI networks by name (plugins/xaibench_networks): builds, CAM layers, refusals, weights, extras."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SUITE
from xaibench_networks import catalogue
from xaibench_networks import plugin as networks_plugin

from xaibench.api import cli
from xaibench.base.errors import PlanError, XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

#: The tiny configurations of the issue -> the module of their last feature stage, read off timm's model code
#: (ResNet's layer4, EfficientNet's and MobileNetV3's last block group, ConvNeXt's last stage, RegNet's s4).
TIMM_TINY = {"resnet10t": "layer4", "efficientnet_b0": "blocks.6", "convnext_atto": "stages.3",
             "regnetx_002": "s4", "mobilenetv3_small_050": "blocks.5"}


@pytest.fixture(scope="module")
def specs() -> dict:  # type: ignore[type-arg]
    harness = load_harness([("networks", networks_plugin)], entry_points=False)
    return {e.spec.name: e.spec for e in harness.registry("models")}


def test_pinned_timm_weights_are_timms_own() -> None:
    import timm

    for arch, (url, head) in catalogue.TIMM_IMAGENET.items():
        cfg = timm.models.get_pretrained_cfg(arch)
        assert (cfg.url, cfg.classifier) == (url, head), arch


@pytest.mark.parametrize("arch", sorted(TIMM_TINY))
def test_timm_builds_for_the_data_and_names_its_last_stage(specs, arch: str) -> None:  # type: ignore[no-untyped-def]
    model = specs["timm"].build(num_classes=3, in_channels=1, modality="image", arch=arch).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 64, 64)).shape == (2, 3)
    assert specs["timm"].target_layer(model) is model.get_submodule(TIMM_TINY[arch])


@pytest.mark.parametrize("arch", ["vit_tiny_patch16_224", "mixer_s32_224", "swin_tiny_patch4_window7_224"])
def test_non_convolutional_timm_architectures_are_refused(specs, arch: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(XaibenchError, match="not a convolutional network .* pass a convolutional timm architecture"):
        specs["timm"].build(num_classes=2, in_channels=1, modality="image", arch=arch)


def test_timm_parameters_are_checked(specs) -> None:  # type: ignore[no-untyped-def]
    build = specs["timm"].build
    with pytest.raises(TypeError, match="params: arch is required"):
        build(num_classes=2, in_channels=1, modality="image")
    with pytest.raises(TypeError, match="pretrained is not a timm option here: .*weights: imagenet"):
        build(num_classes=2, in_channels=1, modality="image", arch="resnet10t", pretrained=True)
    for option, why in (("in_chans", "the dataset's channels"),
                        ("features_only", "the harness needs the classifier")):
        with pytest.raises(TypeError, match=f"params: {option} is not a timm option here: {why}"):
            build(num_classes=2, in_channels=1, modality="image", arch="resnet10t", **{option: 1})
    with pytest.raises(XaibenchError, match="no architecture 'convnext_ato'.*did you mean 'convnext_atto'"):
        build(num_classes=2, in_channels=1, modality="image", arch="convnext_ato")
    with pytest.raises(TypeError, match="arch is fixed by the model name timm/resnet10t"):
        specs["timm/resnet10t"].build(num_classes=2, in_channels=1, modality="image", arch="resnet18")


@pytest.mark.parametrize("name", sorted(catalogue.NETS))
def test_monai_networks_take_2d_or_3d_from_the_modality(specs, name: str) -> None:  # type: ignore[no-untyped-def]
    spec = specs[f"monai/{name}"]
    for modality, conv in (("image", torch.nn.Conv2d), ("volume", torch.nn.Conv3d)):
        model = spec.build(num_classes=3, in_channels=1, modality=modality)
        convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
        assert convs and all(type(c) is conv for c in convs) and convs[0].in_channels == 1
        assert spec.target_layer(model) is model.get_submodule(catalogue.NETS[name][2])
    with pytest.raises(XaibenchError, match="image .2D. or volume .3D. data, not signal"):
        spec.build(num_classes=3, in_channels=1, modality="signal")
    with pytest.raises(TypeError, match="spatial_dims is set by the harness"):
        spec.build(num_classes=3, in_channels=1, modality="image", spatial_dims=3)


def test_monai_densenet_forward_in_2d_and_3d(specs) -> None:  # type: ignore[no-untyped-def]
    spec = specs["monai/densenet121"]
    for modality, x in (("image", torch.rand(2, 1, 32, 32)), ("volume", torch.rand(2, 1, 32, 32, 32))):
        model = spec.build(num_classes=3, in_channels=1, modality=modality).eval()
        with torch.no_grad():
            assert model(x).shape == (2, 3)


#: Built-in images small enough for a test run (the tiny plugin is not seen by the command line).
LESIONS = "[{name: synthetic-lesions, params: {n_train: 16, n_val: 8, n_test: 8}}]"


def _suite(tmp_path: Path, models: str, datasets: str = "[tiny]", methods: str = "[random]") -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text("image_size: 32\n" + TINY_SUITE.replace("models: [tiny-cnn]", f"models: {models}").replace(
        "datasets: [tiny]", f"datasets: {datasets}").replace(
        "methods: [input-times-one, random, {name: ground-truth, label: oracle}]", f"methods: {methods}"))
    return path


@pytest.mark.parametrize("module, extra, model", [("timm", "timm", "{name: timm, params: {arch: resnet10t}}"),
                                                  ("monai.networks.nets", "monai", "monai/densenet121")])
def test_a_missing_extra_stops_the_run_before_any_work_with_the_pip_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], isolated_home: Path,
        module: str, extra: str, model: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError, as without the extra
    # tiny-cnn comes first: a run that reached training would train it before building the second model
    path = _suite(tmp_path, f"[small-cnn, {model}]", LESIONS)
    code = cli.main(["run", "--suite", str(path), "--store", str(tmp_path / "r.db"), "--no-progress",
                     "--no-figures", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"pip install 'xaibench[{extra}]'" in err[0], err
    assert not list((isolated_home / "models").glob("*.pt")) if (isolated_home / "models").exists() else True


def _runner(tmp_path: Path, path: Path, *plugins: tuple[str, object]) -> Runner:
    return Runner(load_harness(list(plugins)), load_suite(path), Store(tmp_path / "r.sqlite"),
                  RunOptions(progress=False, home=tmp_path / "home"))


def test_a_layer_that_runs_twice_per_forward_and_a_too_small_input_are_refused_at_the_plan(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    """MONAI EfficientNet's ``_swish`` runs after the stem and after the head: hooks would see both."""
    path = _suite(tmp_path, "[{name: monai/efficientnet-bn, layer: _swish}]", methods="[gradcam]")
    with pytest.raises(XaibenchError, match=r"model 'monai/efficientnet-bn' on 'tiny' cannot run on 16x16 inputs "
                                            r"with 1 channel\(s\): .*Kernel size can't be greater .*a larger image_size"):
        _runner(tmp_path, path, ("tiny", tiny_plugin)).plan()
    path = _suite(tmp_path, "[{name: monai/efficientnet-bn, layer: _swish}]", LESIONS, methods="[gradcam]")
    with pytest.raises(PlanError, match=r"layer '_swish' runs 2 times in one forward pass .* name a module that runs"):
        _runner(tmp_path, path).plan()


def test_2d_and_3d_networks_side_by_side_and_a_model_of_no_dataset_refused(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    volumes = "{name: synthetic-volumes, params: {size: 16, n_train: 2, n_val: 2, n_test: 2}}"
    cells = _runner(tmp_path, _suite(tmp_path, "[tiny-cnn, small-cnn]", f"[tiny, {volumes}]"),
                    ("tiny", tiny_plugin)).plan()
    skipped = {(c.row.dataset, c.row.model): c.row.skip_reason for c in cells}
    assert skipped[("synthetic-volumes", "tiny-cnn")] == \
        "not applicable: model 'tiny-cnn' takes image data; 'synthetic-volumes' is volume data"
    assert {k for k, v in skipped.items() if v} == {("synthetic-volumes", "tiny-cnn")}
    with pytest.raises(PlanError, match="model 'tiny-cnn' supports image data, but dataset 'synthetic-volumes' is"):
        _runner(tmp_path, _suite(tmp_path, "[tiny-cnn]", f"[{volumes}]"), ("tiny", tiny_plugin)).plan()


def test_user_checkpoints_load_as_state_dict_safetensors_and_monai_bundle(tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from xaibench_networks.monai_nets import monai_builder
    from xaibench_networks.timm_nets import build_timm

    torch.manual_seed(1)
    timm_model = build_timm(3, 1, "image", "resnet10t").eval()
    save_file(timm_model.state_dict(), str(tmp_path / "mine.safetensors"))
    monai_model = monai_builder("densenet121")(3, 1, "image").eval()
    (tmp_path / "bundle" / "models").mkdir(parents=True)
    torch.save(monai_model.state_dict(), tmp_path / "bundle" / "models" / "model.pt")
    models = (f"[{{name: timm, params: {{arch: resnet10t}}, checkpoint: {tmp_path / 'mine.safetensors'}}}, "
              f"{{name: monai/densenet121, checkpoint: {tmp_path / 'bundle' / 'models' / 'model.pt'}}}]")
    runner = _runner(tmp_path, _suite(tmp_path, models, LESIONS))
    runner.train_models()
    assert runner.trainer.trained == 0
    ds = runner.datasets[0]
    x = runner.evaluated_samples(ds).x
    for mo, mine in zip(runner.models, (timm_model, monai_model)):
        with torch.no_grad():
            torch.testing.assert_close(runner.trained_model(ds, mo)(x), mine(x))


def test_timm_published_weights_download_through_a_mirror_checksum_verified(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], isolated_home: Path,
        ) -> None:
    """A fabricated file named like timm's (``<arch>-<sha256 prefix>.pth``): ImageNet-shaped (3 channels, 1000
    classes), loaded but for the classifier; the grey data gets the RGB filters summed."""
    import timm

    torch.manual_seed(0)
    state = timm.create_model("resnet10t", pretrained=False).state_dict()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    torch.save(state, mirror / "tmp")
    name = f"resnet10t_176_c3-{hashlib.sha256((mirror / 'tmp').read_bytes()).hexdigest()[:8]}.pth"
    (mirror / "tmp").rename(mirror / name)
    monkeypatch.setitem(catalogue.TIMM_IMAGENET, "resnet10t", (f"https://example.invalid/{name}", "fc"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = _suite(tmp_path, "[{name: timm/resnet10t, weights: imagenet, train: {epochs: 1, batch_size: 8}}]",
                  LESIONS)
    args = ["run", "--suite", str(path), "--store", str(tmp_path / "r.db"), "--no-progress", "--no-figures",
            "--out", str(tmp_path / "out")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"weights file {name} is not in" in err[0] and "pass --download" in err[0]
    (mirror / "bad").mkdir()
    (mirror / "bad" / name).write_bytes(b"not the file")
    assert cli.main([*args, "--download", "--mirror", (mirror / "bad").as_uri()]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert cli.main([*args, "--download", "--mirror", mirror.as_uri()]) == 0
    assert (isolated_home / "weights" / name).read_bytes() == (mirror / name).read_bytes()


def test_the_zoo_suite_plans_2d_and_3d_networks_side_by_side_with_cam_layers_a_verdict_accepts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xaibench.contract.specs import cam_size_ok

    harness = load_harness()
    runner = Runner(harness, load_suite(harness.suites.get("zoo").path), Store(tmp_path / "r.sqlite"),
                    RunOptions(progress=False, home=tmp_path / "home"))
    cells = runner.plan()
    skipped = {(c.row.dataset, c.row.model) for c in cells if c.row.skip_reason and "takes image data" in
               c.row.skip_reason}
    assert skipped == {("synthetic-volumes", "timm/efficientnet_b0"), ("synthetic-volumes", "timm/convnext_atto")}
    layers = {(ds.entry.display, mo.entry.display): runner.cam_layers(ds, mo)["gradcam"]
              for ds in runner.datasets for mo in runner.models if runner.fits(ds, mo)}
    assert {k: v[0] for k, v in layers.items()} == {
        ("digits", "timm/efficientnet_b0"): "blocks.2", ("digits", "timm/convnext_atto"): "stages.1",
        ("digits", "monai/densenet121"): "features.denseblock1",
        ("synthetic-volumes", "monai/densenet121"): "features.denseblock1"}
    assert all(cam_size_ok(shape) for _, shape in layers.values())
    out = capsys.readouterr().out  # the run's header names each layer once, with its size
    assert out.count("digits × timm/efficientnet_b0: CAM layer blocks.2 (7x7)\n") == 1
    assert "synthetic-volumes × monai/densenet121: CAM layer features.denseblock1 (8x8x8)\n" in out


def _medmnist3d(root: Path, side: int) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for k, split in enumerate(("train", "val", "test")):
        arrays[f"{split}_images"] = rng.integers(0, 256, (4 + k, side, side, side)).astype(np.uint8)
        arrays[f"{split}_labels"] = (np.arange(4 + k) % 2).reshape(-1, 1)
    (root / "medmnist").mkdir(parents=True)
    np.savez(root / "medmnist" / f"nodulemnist3d{'_64' if side == 64 else ''}.npz", **arrays)


def _niftifolder(root: Path) -> None:
    nibabel = pytest.importorskip("nibabel")
    rng = np.random.default_rng(0)
    for c in ("healthy", "tumour"):
        (root / "vols" / c).mkdir(parents=True)
        for i in range(4):
            nibabel.save(nibabel.Nifti1Image(rng.normal(40, 300, (32, 32, 32)).astype(np.float32), np.eye(4)),
                         str(root / "vols" / c / f"p{i}.nii.gz"))


@pytest.mark.parametrize("dataset, make", [
    ("{name: niftifolder, params: {path: vols, val: 0.25, test: 0.25}}", _niftifolder),
    ("{name: medmnist3d, params: {flag: nodulemnist3d, size: 64}}", lambda root: _medmnist3d(root, 64))])
def test_monai_3d_densenet_trains_and_explains_on_nifti_and_medmnist3d(tmp_path: Path, dataset: str, make) -> None:  # type: ignore[no-untyped-def]
    make(tmp_path / "data")
    path = _suite(tmp_path, "[{name: monai/densenet121, layer: features.denseblock1, "
                            "train: {epochs: 1, batch_size: 4, patience: 0}}]", f"[{dataset}]", "[gradcam, random]")
    with Store(tmp_path / "r.sqlite") as store:
        runner = Runner(load_harness(), load_suite(path), store,
                        RunOptions(progress=False, home=tmp_path / "home", data_root=str(tmp_path / "data")))
        summary = runner.run()
    assert summary.computed > 0 and not summary.failed and runner.trainer.trained == 1


def test_medmnist3d_at_28_voxels_is_too_small_for_densenet_and_says_so(tmp_path: Path) -> None:
    _medmnist3d(tmp_path / "data", 28)
    path = _suite(tmp_path, "[monai/densenet121]", "[{name: medmnist3d, params: {flag: nodulemnist3d}}]")
    path.write_text(path.read_text().replace("image_size: 32", "image_size: 28"))
    runner = Runner(load_harness(), load_suite(path), Store(tmp_path / "r.sqlite"),
                    RunOptions(progress=False, home=tmp_path / "home", data_root=str(tmp_path / "data")))
    with pytest.raises(XaibenchError, match=r"cannot run on 28x28x28 inputs with 1 channel\(s\): .*size:"):
        runner.plan()


def test_a_section_where_no_cell_runs_is_one_line_without_a_verdict(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    from xaibench.leaderboard import markdown, verdict

    volumes = "{name: synthetic-volumes, params: {size: 16, n_train: 4, n_val: 2, n_test: 2}}"
    path = _suite(tmp_path, "[tiny-cnn, {name: small-cnn, params: {width: 4}, train: {epochs: 1}}]",
                  f"[tiny, {volumes}]")
    with Store(tmp_path / "r.sqlite") as store:
        Runner(load_harness([("tiny", tiny_plugin)]), load_suite(path), store,
               RunOptions(progress=False, home=tmp_path / "home")).run()
        text = markdown.render(store, "tiny")
        sections = [f"{v.dataset} × {v.model}" for v in verdict.verdicts(store, "tiny")]
    assert ("## synthetic-volumes × tiny-cnn\n\nNo cell ran: not applicable: model 'tiny-cnn' takes image data; "
            "'synthetic-volumes' is volume data.\n\n## ") in text
    assert sections == ["tiny × tiny-cnn", "tiny × small-cnn", "synthetic-volumes × small-cnn"]
