"""A fault-injecting xaibench plugin and a forking CLI driver, for the reliability tests only.

The plugin reaches the harness the way a third-party plugin does: :func:`make_distribution`
writes a throwaway ``.dist-info`` whose ``entry_points.txt`` names this module in the
``xaibench`` group, so a process with that folder (and ``tests/``) on its path loads it
through ``importlib.metadata``. Nothing of it lives in the core.

Deterministic kill points: the probe model's training passes, the probe method and the
probe metrics call :func:`tick`, which counts calls per kind in this process; when
``XAIBENCH_FAULTS_TRIP=kind:n:action`` matches the n-th call, ``kill`` SIGKILLs the
process and ``pause`` touches ``XAIBENCH_FAULTS_PAUSE`` and sleeps until interrupted.
Every tick is appended to ``XAIBENCH_FAULTS_LOG``, so a test can count exactly which
work each process redid.

Run as a script (``python faults.py plan.json``) it is the driver: it imports the harness
once, then forks one child per run of the plan, each calling ``xaibench.api.cli.main`` (what
the ``xaibench`` command runs) with its own environment, so a dozen CLI runs cost one
interpreter start. Runs in one step run at the same time; after each step the store is
copied (with its WAL) exactly as the runs left it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from conftest import TinyCNN, load_tiny
from PIL import Image

from xaibench import hookimpl
from xaibench.base.errors import XaibenchError
from xaibench.storage.paths import under_root
from xaibench.contract.specs import DataBundle, DatasetSpec, MethodSpec, MetricSpec, ModelSpec, Samples, TrainRecipe

TRIP_ENV, PAUSE_ENV, LOG_ENV = "XAIBENCH_FAULTS_TRIP", "XAIBENCH_FAULTS_PAUSE", "XAIBENCH_FAULTS_LOG"
DIST_NAME, DIST_VERSION = "xaibench-faults", "1.0"
#: Fault kinds injected into methods (``m-<kind>``) and metrics (``t-<kind>``).
FAULT_KINDS = ("raises", "nan", "inf", "shape", "dtype", "slow", "mutates", "exits")
#: Plugins the reliability tests load besides this one (the others only cost start-up time).
KEEP_PLUGINS = {"faults", "baselines", "metrics"}

_calls: Counter[str] = Counter()


def tick(kind: str) -> None:
    _calls[kind] += 1
    if os.environ.get(LOG_ENV):
        with open(os.environ[LOG_ENV], "a") as f:
            f.write(f"{os.getpid()} {kind} {_calls[kind]}\n")
    trip = os.environ.get(TRIP_ENV, "")
    if trip:
        where, n, action = trip.split(":")
        if where == kind and _calls[kind] == int(n):
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            Path(os.environ[PAUSE_ENV]).touch()
            time.sleep(120)  # the test interrupts this


def make_distribution(site: Path, entry_points: dict[str, str] | None = None) -> Path:
    """A ``.dist-info`` under ``site`` registering ``entry_points`` (default: this module as ``faults``)."""
    info = site / f"{DIST_NAME.replace('-', '_')}-{DIST_VERSION}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST_NAME}\nVersion: {DIST_VERSION}\n")
    eps = entry_points or {"faults": "faults:plugin"}
    (info / "entry_points.txt").write_text("[xaibench]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    return site


def other_plugins() -> str:
    """Every installed entry point but :data:`KEEP_PLUGINS`, for ``XAIBENCH_DISABLE_PLUGINS``."""
    from importlib import metadata

    names = {ep.name for ep in metadata.entry_points(group="xaibench")}
    return ",".join(sorted(names - KEEP_PLUGINS))


# -- datasets ----------------------------------------------------------------------------------
def load_bad(request) -> DataBundle:  # type: ignore[no-untyped-def]
    """The tiny dataset with one defect (``params.defect``) a loader could plausibly produce."""
    good = load_tiny(request)
    t = good.test
    defect = dict(request.params)["defect"]
    if defect == "mask-size":
        t = Samples(t.x, t.y, t.ids, t.masks[:, :8, :8])
    elif defect == "duplicate-ids":
        t = Samples(t.x, t.y, (t.ids[0],) + t.ids[:-1], t.masks)
    elif defect == "label-range":
        t = Samples(t.x, t.y + 1, t.ids, t.masks)
    elif defect == "nan-inputs":
        x = t.x.clone()
        x[3, 0, 2, 2] = float("nan")
        t = Samples(x, t.y, t.ids, t.masks)
    elif defect == "split-size":
        t = Samples(t.x[:, :, :8, :8], t.y, t.ids, t.masks[:, :8, :8])
    return DataBundle(good.train, good.val, t, good.class_names, good.modality)


def load_png_folder(request) -> DataBundle:  # type: ignore[no-untyped-def]
    """``<data root>/<path>/<class>/<name>.png`` with ``<name>_mask.png`` beside each image.

    ``naive: true`` lets decoding errors escape as Pillow raises them (a careless plugin);
    otherwise a corrupt file is reported by name, as a careful plugin does.
    """
    params = dict(request.params)
    folder = under_root(request.data_root, params["path"])
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise XaibenchError(f"{folder}: expected one folder per class (<class>/<name>.png), found {len(classes)}")
    xs, ys, ids, masks = [], [], [], []
    for label, cls in enumerate(classes):
        for png in sorted((folder / cls).glob("*.png")):
            if png.stem.endswith("_mask"):
                continue
            try:
                with Image.open(png) as img:
                    xs.append(np.asarray(img.convert("L"), dtype=np.float32) / 255)
                with Image.open(png.with_name(f"{png.stem}_mask.png")) as img:
                    masks.append(np.asarray(img.convert("L")) > 127)
            except (OSError, SyntaxError) as exc:
                if params.get("naive"):
                    raise
                raise XaibenchError(f"{png}: cannot decode the image ({exc}): corrupt or truncated") from None
            ys.append(label)
            ids.append(f"{cls}/{png.stem}")
    s = Samples(torch.from_numpy(np.stack(xs))[:, None], torch.tensor(ys), tuple(ids),
                torch.from_numpy(np.stack(masks)))
    return DataBundle(s, s, s, tuple(classes), "image")


# -- model -------------------------------------------------------------------------------------
class ProbeCNN(TinyCNN):
    def forward(self, x):  # type: ignore[no-untyped-def]
        if self.training:
            tick("train")
        return super().forward(x)


# -- methods -----------------------------------------------------------------------------------
def probe(model, x, target, ctx, power: float = 1.0):  # type: ignore[no-untyped-def]
    """The input's intensity (to a power): on the tiny data, the bright square is the evidence."""
    tick("explain")
    return x[:, 0].abs() ** power


def _fault_method(kind: str) -> Callable[..., object]:
    def explain(model, x, target, ctx):  # type: ignore[no-untyped-def]
        spatial = x.shape[2:]
        if kind == "raises":
            raise RuntimeError("method exploded")
        if kind == "nan":
            return torch.full((x.shape[0], *spatial), float("nan"))
        if kind == "inf":
            out = x[:, 0].clone()
            out[0, 0, 0] = float("inf")
            return out
        if kind == "shape":
            return torch.zeros(x.shape[0], 3)
        if kind == "dtype":
            return torch.zeros(x.shape[0], *spatial, dtype=torch.complex64)
        if kind == "slow":
            while True:  # a forward pass after another: interruptible between torch calls
                model(x)
        if kind == "mutates":
            next(model.parameters()).data.add_(1.0)
            model.features.register_forward_hook(lambda *a: None)
            model.train()
            return x[:, 0]
        sys.exit(3)  # "exits"

    return explain


# -- metrics -----------------------------------------------------------------------------------
def mass(maps, masks):  # type: ignore[no-untyped-def]
    """Relevance mass accuracy (Arras et al. 2022): the share of positive saliency inside the mask."""
    tick("score")
    pos = maps.clamp(min=0).flatten(1)
    total = pos.sum(1)
    inside = (pos * masks.flatten(1).float()).sum(1)
    return torch.where(total > 0, inside / total, torch.nan).cpu().numpy()


def _fault_metric(kind: str) -> Callable[..., object]:
    def score(maps, engine):  # type: ignore[no-untyped-def]
        n = maps.shape[0]
        if kind == "raises":
            raise ValueError("metric exploded")
        if kind == "nan":  # allowed: NaN marks samples where a metric is undefined
            return np.full(n, np.nan)
        if kind == "inf":
            return np.r_[np.inf, np.zeros(n - 1)]
        if kind == "shape":
            return np.zeros((n, 2))
        if kind == "dtype":
            return np.array(["high"] * n)
        if kind == "slow":
            time.sleep(120)
        if kind == "mutates":
            next(engine.model.parameters()).data.mul_(0.0)
            return np.zeros(n)
        sys.exit(4)  # "exits"

    return score


class FaultPlugin:
    @hookimpl
    def xaibench_register_datasets(self, register):  # type: ignore[no-untyped-def]
        register(DatasetSpec(name="squares", load=load_tiny, modality="image", has_masks=True,
                             description="left/right bright squares, 16x16"))
        register(DatasetSpec(name="bad-bundle", load=load_bad, modality="image", has_masks=True,
                             description="the squares with one defect"))
        register(DatasetSpec(name="png-folder", load=load_png_folder, modality="image", has_masks=True,
                             description="PNG images per class folder, masks beside them"))

    @hookimpl
    def xaibench_register_models(self, register):  # type: ignore[no-untyped-def]
        register(ModelSpec(name="probe-cnn", build=ProbeCNN, modalities=frozenset({"image"}),
                           target_layer=lambda m: m.features, description="one conv layer",
                           recipe=TrainRecipe(epochs=8, batch_size=16, lr=1e-2, patience=0)))

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(MethodSpec(name="probe", explain=probe, modalities=frozenset({"image"}), needs_gradients=False,
                            description="input intensity", defaults={"power": 1.0}))
        for kind in FAULT_KINDS:
            register(MethodSpec(name=f"m-{kind}", explain=_fault_method(kind), modalities=frozenset({"image"}),
                                description=f"fault: {kind}"))

    @hookimpl
    def xaibench_register_metrics(self, register):  # type: ignore[no-untyped-def]
        register(MetricSpec(name="mass", score=mass, needs={"maps", "masks"}, category="localization", higher_is_better=True,
                            requires_mask=True, description="share of positive saliency in the mask",
                            citation="Arras et al. 2022"))
        for kind in FAULT_KINDS:
            register(MetricSpec(name=f"t-{kind}", score=_fault_metric(kind), needs={"maps", "engine"},
                                category="complexity", higher_is_better=True, description=f"fault: {kind}"))


plugin = FaultPlugin()


@pytest.fixture
def xb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``xb(suite_text, *flags) -> (exit code, stdout, stderr, store path)`` through ``xaibench.api.cli.main``."""
    from xaibench.api import cli

    monkeypatch.syspath_prepend(str(make_distribution(tmp_path / "site")))
    monkeypatch.setenv("XAIBENCH_DISABLE_PLUGINS", other_plugins())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    count = iter(range(100))

    def run(text: str, *flags: str, store: str = "r.sqlite") -> tuple[int, str, str, Path]:
        path = tmp_path / f"suite{next(count)}.yaml"
        path.write_text(text)
        code = cli.main(["run", "--suite", str(path), "--store", str(tmp_path / store), "--out",
                         str(tmp_path / "lb"), "--no-progress", "--no-figures", *flags])
        out = capsys.readouterr()
        return code, out.out, out.err, tmp_path / store

    yield run
    torch.set_num_threads(threads)


# -- the driver --------------------------------------------------------------------------------
def _child(run: dict, out: Path) -> None:  # type: ignore[type-arg]
    from xaibench.api import cli

    os.environ.update(run.get("env", {}))
    # Ctrl-C as a terminal sends it, even when this test runs as a background job (which starts with SIGINT
    # ignored, a disposition Python keeps: the run would sleep through the test's interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd, suffix in ((1, "out"), (2, "err")):
        os.dup2(os.open(out / f"{run['name']}.{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    code = 1
    try:
        code = cli.main(run["argv"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def drive(plan: dict) -> list[dict]:  # type: ignore[type-arg]
    """Run ``plan["steps"]`` (lists of concurrent runs); return each run's exit status and output."""
    import xaibench.figures.charts  # noqa: F401  (matplotlib: drawn by every finished run)
    from xaibench.contract.plugins import load_harness

    load_harness()  # import every plugin once, before forking: children start warm
    torch.set_num_threads(1)  # the test machine is shared: one thread per run avoids oversubscription
    out = Path(plan["out"])
    results = []
    for step in plan["steps"]:
        children = {}
        for run in step:
            pause = out / f"{run['name']}.paused"
            pause.unlink(missing_ok=True)
            run.setdefault("env", {})[PAUSE_ENV] = str(pause)
            pid = os.fork()
            if pid == 0:
                _child(run, out)
            children[pid] = run
        for pid, run in children.items():
            if run.get("interrupt_when_paused"):
                pause = Path(run["env"][PAUSE_ENV])
                deadline = time.monotonic() + 60
                while not pause.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                os.kill(pid, signal.SIGINT)
            _, status = os.waitpid(pid, 0)
            results.append({"name": run["name"], "pid": pid, "returncode": os.waitstatus_to_exitcode(status),
                            "stdout": (out / f"{run['name']}.out").read_text(),
                            "stderr": (out / f"{run['name']}.err").read_text()})
        for store in {s for run in step for s in run.get("snapshot", [])}:
            name = f"{step[0]['name']}.{Path(store).stem}.snapshot.sqlite"
            for suffix in ("", "-wal"):
                if Path(store + suffix).exists():
                    shutil.copyfile(store + suffix, out / (name + suffix))
    return results


if __name__ == "__main__":
    plan = json.loads(Path(sys.argv[1]).read_text())
    Path(plan["results"]).write_text(json.dumps(drive(plan), indent=1))
