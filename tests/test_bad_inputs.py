"""A table of bad inputs, each through ``xaibench run``: exit 2, one clear line, no traceback.

Covers the suite (malformed YAML, unknown keys, unknown names, bad values), the data
(missing or escaping paths, wrong layout, corrupt images, inconsistent bundles), the
model checkpoint (wrong architecture, missing, truncated, a pickle that would run code)
and the store. The dataset cases use the fault plugin's loaders (tests/faults.py).
"""
from __future__ import annotations

import io
import pickle
import re
import textwrap
from pathlib import Path

import faults
import numpy as np
import pytest
import torch
from PIL import Image

from xaibench.base.errors import XaibenchError
from xaibench.storage.paths import under_root

xb = faults.xb  # the fixture running ``xaibench run`` in-process

GOOD = """
name: bad
seed: 0
samples: 8
datasets: [squares]
models: [probe-cnn]
methods: [probe]
metrics: [mass]
"""


def folder(params: str) -> str:
    return GOOD.replace("datasets: [squares]", f"datasets: [{{name: png-folder, params: {params}}}]")


def checkpoint(name: str) -> str:
    return GOOD.replace("models: [probe-cnn]", f"models: [{{name: probe-cnn, checkpoint: {name}}}]")


#: (case, suite text, extra flags, expected message as a regex). ROOT is the data root of the test.
CASES = [
    ("malformed YAML", "name: s\ndatasets: [a\nmodels: []\n", (), r"suite\d\.yaml:3: malformed YAML"),
    ("unknown top-level key", GOOD.replace("metrics:", "metircs:"), (),
     r"suite\d\.yaml:7: unknown key 'metircs' \(did you mean 'metrics'\?\)"),
    ("unknown entry key", GOOD.replace("methods: [probe]", "methods: [{name: probe, parms: {power: 2}}]"), (),
     r"suite\d\.yaml:6: unknown key 'parms' in methods \(did you mean 'params'\?\)"),
    ("unknown method", GOOD.replace("[probe]", "[prbe]"), (),
     r"suite\d\.yaml:6: unknown method 'prbe' \(did you mean 'probe'\?\)"),
    ("unknown dataset", GOOD.replace("[squares]", "[sqaures]"), (),
     r"suite\d\.yaml:4: unknown dataset 'sqaures' \(did you mean 'squares'\?\)"),
    ("unknown model parameter", GOOD.replace("[probe-cnn]", "[{name: probe-cnn, params: {width: 3}}]"), (),
     r"suite\d\.yaml:5: model 'probe-cnn': .*unexpected keyword argument 'width'"),
    ("negative cell_timeout", GOOD + "cell_timeout: -1\n", (),
     r"suite\d\.yaml:8: 'cell_timeout' must be a positive number of seconds"),
    ("no data root", folder("{path: classes}"), ("--no-data-root",),
     (r"dataset 'png-folder': dataset path 'classes' is read from the data root, and none was given: "
      r"pass --data-root DIR or set XAIBENCH_DATA")),
    ("dataset path does not exist", folder("{path: nope}"), (),
     r"dataset 'png-folder': dataset path 'nope' does not exist under the data root ROOT"),
    ("dataset path escapes with ..", folder("{path: ../outside}"), (),
     r"dataset 'png-folder': dataset path '../outside' escapes the data root ROOT"),
    ("dataset path escapes by a symlink", folder("{path: link}"), (),
     r"dataset 'png-folder': dataset path 'link' escapes the data root ROOT"),
    ("absolute dataset path", folder("{path: /etc}"), (),
     r"dataset 'png-folder': dataset path '/etc' must be relative to the data root ROOT, not absolute"),
    ("wrong layout", folder("{path: flat}"), (),
     r"dataset 'png-folder': ROOT/flat: expected one folder per class \(<class>/<name>.png\), found 0"),
    ("truncated image, careful plugin", folder("{path: corrupt}"), (),
     r"dataset 'png-folder': ROOT/corrupt/a/0.png: cannot decode the image \(.+\): corrupt or truncated"),
    ("truncated image, careless plugin", folder("{path: corrupt, naive: true}"), (),
     r"dataset 'png-folder' could not be loaded: (UnidentifiedImageError|OSError|SyntaxError): .+ \(--debug shows where\)"),
    ("mask size differs from its image", GOOD.replace("[squares]", "[{name: bad-bundle, params: {defect: mask-size}}]"),
     (), (r"dataset 'bad-bundle': test masks have shape \(16, 8, 8\), but the inputs are \(16, 1, 16, 16\): "
          r"each needs one mask of its input's size \(16, 16\)")),
    ("duplicate sample ids", GOOD.replace("[squares]", "[{name: bad-bundle, params: {defect: duplicate-ids}}]"),
     (), r"dataset 'bad-bundle': test sample ids are not unique \('tiny-test-0' repeat\)"),
    ("label out of range", GOOD.replace("[squares]", "[{name: bad-bundle, params: {defect: label-range}}]"),
     (), r"dataset 'bad-bundle': test labels must be integers in 0..1 \(one per class name\), got torch.int64 in 1..2"),
    ("NaN in the inputs", GOOD.replace("[squares]", "[{name: bad-bundle, params: {defect: nan-inputs}}]"),
     (), r"dataset 'bad-bundle': test inputs contain NaN or infinite values"),
    ("splits of different sizes", GOOD.replace("[squares]", "[{name: bad-bundle, params: {defect: split-size}}]"),
     (), r"dataset 'bad-bundle': test inputs have shape \(1, 8, 8\) per sample, the train split \(1, 16, 16\)"),
    ("checkpoint of the wrong architecture", checkpoint("ckpt/wrong.pt"), (),
     r"model 'probe-cnn' on 'squares': checkpoint .*ckpt/wrong.pt does not fit this architecture: .*Missing key"),
    ("missing checkpoint", checkpoint("ckpt/nope.pt"), (),
     r"model 'probe-cnn' on 'squares': checkpoint .*ckpt/nope.pt does not exist"),
    ("truncated checkpoint", checkpoint("ckpt/truncated.pt"), (),
     r"model 'probe-cnn' on 'squares': refusing checkpoint .*ckpt/truncated.pt: it cannot be loaded as plain weights"),
    ("checkpoint with a code-running pickle", checkpoint("ckpt/evil.pt"), (),
     (r"model 'probe-cnn' on 'squares': refusing checkpoint .*ckpt/evil.pt: it cannot be loaded as plain weights "
      r"\(weights_only=True\): Weights only load failed")),
    ("store that is not a database", GOOD, ("--store-not-sqlite",), r"not a usable xaibench store"),
    ("negative --cell-timeout", GOOD, ("--cell-timeout", "-2"),
     r"--cell-timeout must be a positive number of seconds, got -2"),
]


class Payload:
    """Unpickling this calls ``open(path, "w")``: proof that a plain ``torch.load`` would run code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.path, "w"))


def png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A data root with good, flat, corrupt and escaping folders; checkpoints beside the suites."""
    root = tmp_path / "data"
    img, mask = np.full((16, 16), 40), np.zeros((16, 16))
    mask[4:8, 4:8] = 255
    for cls in ("a", "b"):
        for i in range(2):
            for base in ("classes", "corrupt", "../outside"):
                png(root / base / cls / f"{i}.png", img)
                png(root / base / cls / f"{i}_mask.png", mask)
    png(root / "flat" / "0.png", img)
    data = (root / "corrupt" / "a" / "0.png").read_bytes()
    (root / "corrupt" / "a" / "0.png").write_bytes(data[: len(data) // 2])
    (root / "link").symlink_to(tmp_path / "outside")

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save(torch.nn.Linear(3, 2).state_dict(), ckpt / "wrong.pt")
    buf = io.BytesIO()
    torch.save(torch.nn.Linear(3, 2).state_dict(), buf)
    (ckpt / "truncated.pt").write_bytes(buf.getvalue()[:100])
    torch.save({"features.0.weight": Payload(tmp_path / "pwned")}, ckpt / "evil.pt")
    (tmp_path / "notsqlite.sqlite").write_bytes(b"this is not sqlite" * 100)
    return root


@pytest.mark.parametrize("case, text, flags, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(xb, inputs: Path, monkeypatch: pytest.MonkeyPatch, case: str, text: str,  # type: ignore[no-untyped-def]
                                       flags: tuple[str, ...], message: str) -> None:
    monkeypatch.delenv("XAIBENCH_DATA", raising=False)
    args = [] if "--no-data-root" in flags else ["--data-root", str(inputs)]
    store = "notsqlite.sqlite" if "--store-not-sqlite" in flags else "r.sqlite"
    args += [f for f in flags if not f.startswith("--no-data-root") and f != "--store-not-sqlite"]
    code, out, err, _ = xb(textwrap.dedent(text).lstrip(), *args, store=store)
    assert code == 2, (case, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    expected = message.replace("ROOT", re.escape(str(inputs.resolve())))
    assert re.search(expected, lines[0]), f"{case}: {lines[0]}"
    assert not (inputs.parent / "pwned").exists(), "a checkpoint ran code while being loaded"


def test_the_code_running_checkpoint_is_real_and_weights_only_refuses_it(inputs: Path) -> None:
    evil, marker = inputs.parent / "ckpt" / "evil.pt", inputs.parent / "pwned"
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(evil, weights_only=True)
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # what an unsafe loader would do: the payload runs
    assert marker.exists()


def test_debug_shows_the_traceback_of_a_careless_dataset_plugin(xb, inputs: Path,  # type: ignore[no-untyped-def]
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from xaibench.api import cli

    path = inputs.parent / "debug.yaml"
    path.write_text(textwrap.dedent(folder("{path: corrupt, naive: true}")).lstrip())
    code = cli.main(["--debug", "run", "--suite", str(path), "--data-root", str(inputs), "--store",
                     str(inputs.parent / "d.sqlite"), "--no-figures", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" in err and 'faults.py", line' in err
    assert err.strip().splitlines()[-1].startswith("error: dataset 'png-folder' could not be loaded: ")


@pytest.mark.parametrize("relative, message", [
    ("a/b", None),
    ("a/../a/b", None),
    ("../x", "escapes the data root"),
    ("a/../../x", "escapes the data root"),
    ("/abs", "must be relative to the data root"),
    ("up", "escapes the data root"),
    ("missing", "does not exist under the data root"),
])
def test_under_root(tmp_path: Path, relative: str, message: str | None) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "up").symlink_to(tmp_path)
    if message is None:
        assert under_root(root, relative) == (root / "a" / "b").resolve()
    else:
        with pytest.raises(XaibenchError, match=message):
            under_root(root, relative)
    assert under_root(root, "later", must_exist=False) == root.resolve() / "later"
    with pytest.raises(XaibenchError, match="is not a directory"):
        under_root(root / "a" / "nope", "b")
    with pytest.raises(XaibenchError, match="none was given"):
        under_root(None, "b")
