"""Issue 14, cases 1 and 2: models whose output is not (N, K) logits, and models brought without a plugin."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xaibench import leaderboard
from xaibench.base.errors import SuiteError, XaibenchError
from xaibench.contract.outputs import OutputAdapter, OutputForm, conform, one_logit, probability_scale, unwrap
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
BYOM = ROOT / "examples" / "byom"
sys.path.insert(0, str(BYOM))

from usernets import BinaryCNN, TupleCNN


class Probs(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.head = nn.Linear(4, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(x.flatten(1)[:, :4])
        return torch.sigmoid(out) if out.shape[1] == 1 else torch.softmax(out, 1)


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": x.flatten(1)[:, :4], "logits": self.head(x.flatten(1)[:, :4])}


Named = namedtuple("Named", ["logits", "aux"])


class NamedOut(DictOut):
    def forward(self, x: torch.Tensor) -> Named:  # type: ignore[override]
        d = super().forward(x)
        return Named(d["logits"], d["features"])


def _conform(model: nn.Module, k: int, form: OutputForm = OutputForm()) -> nn.Module:
    return conform(model, num_classes=k, in_channels=1, spatial=(16, 16), form=form, who="model 'm'")


def test_single_logit_is_explained_as_plus_minus_z_with_sigmoid_probabilities_and_bce() -> None:
    """Class 1's logit is the user's z, class 0's is -z; the probabilities are sigmoid(z) and 1 - sigmoid(z), as
    the engine reads them and the trainer's cross-entropy sees them: BCE on z."""
    from xaibench.scoring.engine import Engine
    from xaibench.contract.specs import Samples
    from xaibench.models.training import validation_score

    torch.manual_seed(0)
    model = _conform(BinaryCNN(1), 2)
    assert isinstance(model, OutputAdapter) and one_logit(model) and probability_scale(model) == 0.5
    x, y = torch.rand(8, 1, 16, 16), torch.tensor([0, 1] * 4)
    z = unwrap(model)(x)[:, 0].detach()
    logits = model(x)
    assert logits.shape == (8, 2)
    torch.testing.assert_close(logits, torch.stack([-z, z], 1))
    engine = Engine(model)
    torch.testing.assert_close(engine.scores(x, torch.ones(8, dtype=torch.long)), torch.sigmoid(z))
    torch.testing.assert_close(engine.scores(x, torch.zeros(8, dtype=torch.long)), 1 - torch.sigmoid(z))
    torch.testing.assert_close(engine.scores(x, y, "logit"), torch.where(y == 1, z, -z))
    accuracy, minus_loss = validation_score(model, Samples(x=x, y=y, ids=tuple(map(str, range(8)))), torch.device("cpu"))
    assert minus_loss == pytest.approx(-float(F.binary_cross_entropy_with_logits(z, y.float())), rel=1e-5)
    assert accuracy == float(((z > 0).long() == y).float().mean())
    assert torch.equal(logits.argmax(1), (z > 0).long())
    plain = _conform(nn.Sequential(nn.Flatten(), nn.Linear(256, 2)), 2)
    assert not one_logit(plain) and probability_scale(plain) == 1.0


def test_probabilities_are_not_softmaxed_twice() -> None:
    torch.manual_seed(0)
    x = torch.rand(5, 1, 16, 16)
    for k in (1, 3):
        raw = Probs(k)
        model = _conform(raw, 2 if k == 1 else 3, OutputForm("probabilities"))
        p = raw(x)
        expected = torch.cat([1 - p, p], 1) if k == 1 else p
        torch.testing.assert_close(torch.softmax(model(x), 1), expected)


def test_probabilities_declared_on_logits_are_refused() -> None:
    with pytest.raises(XaibenchError, match="declared `output: probabilities`"):
        _conform(nn.Sequential(nn.Flatten(), nn.Linear(256, 3), nn.Tanh(), nn.Linear(3, 3, bias=False)), 3,
                 OutputForm("probabilities"))


def test_tuple_dict_and_named_tuple_outputs_need_the_key_named() -> None:
    with pytest.raises(XaibenchError) as exc:
        _conform(TupleCNN(3, 1), 3)
    assert str(exc.value) == ("model 'm' returns a tuple of 2 (0: (2, 3), 1: (2, 16)): add `output_index: 0` "
                              "to its suite entry")
    with pytest.raises(XaibenchError, match=r"returns a dict \(features: \(2, 4\), logits: \(2, 3\)\): add "
                                            r"`output_key: logits`"):
        _conform(DictOut(), 3)
    with pytest.raises(XaibenchError, match="named tuple Named .*add `output_key: logits`"):
        _conform(NamedOut(), 3)
    x = torch.rand(4, 1, 16, 16)
    tup = TupleCNN(3, 1)
    torch.testing.assert_close(_conform(tup, 3, OutputForm(index=0))(x), tup(x)[0])
    d = DictOut()
    torch.testing.assert_close(_conform(d, 3, OutputForm(key="logits"))(x), d(x)["logits"])
    nt = NamedOut()
    torch.testing.assert_close(_conform(nt, 3, OutputForm(key="logits"))(x), nt(x).logits)


def test_class_count_mismatch_is_refused() -> None:
    with pytest.raises(XaibenchError, match="outputs 3 class score.s. per input but the dataset has 2 classes"):
        _conform(TupleCNN(3, 1), 2, OutputForm(index=0))
    with pytest.raises(XaibenchError, match=r"returns shape \(2, 16, 14, 14\)"):  # per-pixel, not at the input's size
        _conform(nn.Conv2d(1, 16, 3), 16)


def test_plain_logits_model_is_left_as_is_and_layer_names_stay_the_users() -> None:
    plain = nn.Sequential(nn.Flatten(), nn.Linear(256, 3))
    assert _conform(plain, 3) is plain
    wrapped = _conform(BinaryCNN(1), 2)
    assert wrapped.get_submodule("features.2") is unwrap(wrapped).features[2]
    assert wrapped.features is unwrap(wrapped).features


def _suite(tmp_path: Path, models: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(f"""
name: byom-test
seed: 0
samples: 16
datasets:
  - {{name: imagefolder, params: {{path: spots, val: 0.2, test: 0.3}}}}
models:
{models}
methods: [gradcam, random]
metrics: [dic]
""")
    return path


@pytest.fixture(scope="module")
def bce_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    data = tmp_path_factory.mktemp("spots")
    ckpt = data / "binary.pt"
    subprocess.run([sys.executable, str(BYOM / "make_data.py"), str(data), str(ckpt)], check=True, cwd=BYOM)
    return data, ckpt


def _accuracy_outside(data: Path, ckpt: Path, ids: tuple[str, ...]) -> float:
    """The checkpoint's accuracy on the given test ids, computed as its author would: sigmoid(z) > 0.5."""
    import numpy as np
    from PIL import Image

    model = BinaryCNN(1)
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    model.eval()
    x = torch.tensor(np.stack([np.asarray(Image.open(data / "spots" / i), dtype=np.float32) / 65535 for i in ids]))
    y = torch.tensor([float(i.startswith("spot/")) for i in ids])
    with torch.no_grad():
        return float(((torch.sigmoid(model(x[:, None])[:, 0]) > 0.5).float() == y).float().mean())


def test_case1_bce_checkpoint_accuracy_and_dic(bce_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, ckpt = bce_data
    suite = _suite(tmp_path, f"""  - {{name: binary, factory: "usernets:binary_cnn", checkpoint: {ckpt}, layer: features.2}}""")
    store = Store(tmp_path / "r.sqlite")
    runner = Runner(load_harness(), load_suite(suite), store, RunOptions(progress=False, data_root=str(data)))
    summary = runner.run()
    assert not summary.failed
    bundle = runner.bundle(runner.datasets[0])
    expected = _accuracy_outside(data, ckpt, bundle.test.ids)
    evaluation = store.model_evaluation(runner.model_key(runner.datasets[0], runner.models[0]))
    assert evaluation["accuracy"] == pytest.approx(expected) and expected == 1.0
    dic = {r.method: r.mean for r in leaderboard.records(store, "byom-test")}
    assert 0 < dic["gradcam"] < 100 and 0 < dic["random"] < 100 and dic["gradcam"] != dic["random"]


def test_case1_and_2_trained_by_xaibench(bce_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = bce_data
    suite = _suite(tmp_path, """  - {name: binary, factory: "usernets:binary_cnn", layer: features.2, train: {epochs: 10}}
  - {name: tuple, factory: "usernets:tuple_cnn", output_index: 0, layer: features.2, train: {epochs: 10}}""")
    store = Store(tmp_path / "r.sqlite")
    runner = Runner(load_harness(), load_suite(suite), store, RunOptions(progress=False, data_root=str(data)))
    summary = runner.run()
    assert not summary.failed and summary.models_trained == 2
    recs = leaderboard.records(store, "byom-test")
    assert len(recs) == 4 and all(r.status == "ok" for r in recs)


def test_case2_tuple_without_index_is_one_line_exit_2(bce_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = bce_data
    suite = _suite(tmp_path, """  - {name: tuple, factory: "usernets:tuple_cnn", layer: features.2}""")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BYOM), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "xaibench", "run", "--suite", str(suite), "--data-root", str(data),
                          "--no-progress"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ("model 'tuple' on 'imagefolder' returns a tuple of 2 (0: (2, 2), 1: (2, 16)): add `output_index: 0` "
            "to its suite entry") in out.stderr


def test_factory_errors_name_file_and_line(tmp_path: Path) -> None:
    suite = _suite(tmp_path, """  - {name: m, factory: "usernets:binary_cn"}""")
    with pytest.raises(SuiteError, match=r"suite.yaml:8: factory 'usernets:binary_cn': usernets has no function "
                                        r"'binary_cn' \(did you mean 'binary_cnn'\?\)"):
        Runner(load_harness(), load_suite(suite), Store(tmp_path / "r.sqlite"), RunOptions(progress=False))


def test_readme_bring_your_own_model_steps(bce_data: tuple[Path, Path], tmp_path: Path) -> None:
    """The README's "Bring your own model and data" commands, run as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Bring your own model and data", 1)[1].split("\n## ", 1)[0]
    assert "python make_data.py" in section and "xaibench run --suite suite.yaml" in section
    data, ckpt = bce_data
    work = tmp_path / "byom"
    work.mkdir()
    for name in ("suite.yaml", "usernets.py"):
        (work / name).write_text((BYOM / name).read_text())
    (work / "binary.pt").write_bytes(ckpt.read_bytes())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "xaibench", "run", "--suite", "suite.yaml", "--data-root", str(data),
                          "--no-progress"], capture_output=True, text=True, env=env, cwd=work, timeout=600)
    assert out.returncode == 0, out.stderr
    board = (work / "leaderboards" / "byom.md").read_text()
    assert "## imagefolder × binary" in board and "## imagefolder × tuple" in board
    assert "accuracy 1.000" in board.split("## imagefolder × binary")[1].split("## ")[0]
