"""k-fold cross-validation: folds cut by scikit-learn, one model per fold, per-fold and pooled leaderboards."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xaibench.api import cli
from xaibench.base.errors import XaibenchError
from xaibench.data.folds import fold_bundle
from xaibench.contract.specs import DataBundle, Samples
from xaibench.storage.store import Store


def bundle(n: int = 36, groups: bool = False) -> DataBundle:
    """``n`` samples, 2 classes (one third class 1); patients of 3 consecutive samples with one label each."""
    y = torch.tensor([1 if (i // 3) % 3 == 0 else 0 for i in range(n)])
    ids = tuple(f"s{i:02d}" for i in range(n))
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 4).clone()
    all_ = Samples(x=x, y=y, ids=ids)
    parts = {"train": all_.subset(slice(0, 24)), "val": all_.subset(slice(24, 30)), "test": all_.subset(slice(30, n))}
    return DataBundle(**parts, class_names=("a", "b"), modality="image",
                      groups={i: f"p{k // 3}" for k, i in enumerate(ids)} if groups else None)


@pytest.mark.parametrize("grouped", [False, True])
def test_folds_partition_every_sample_once_stratified_and_by_patient(grouped: bool) -> None:
    b = bundle(groups=grouped)
    held_out: list[str] = []
    for k in range(1, 4):
        f = fold_bundle(b, k, 3, seed=0)
        train, val, test = set(f.train.ids), set(f.val.ids), set(f.test.ids)
        assert not (train & val or train & test or val & test) and len(train | val | test) == 36
        held_out += f.test.ids
        # stratified: each held-out fold has a third of each class (12 of class 1, 24 of class 0 overall); with
        # patients (4 of class 1, 3 samples each) as close as whole patients allow: one or two per fold
        assert (int(f.test.y.sum()), len(f.test)) == (4, 12) if not grouped else int(f.test.y.sum()) in (3, 6)
        # inputs follow their ids (x holds the sample's index)
        assert [int(v) for v in f.test.x[:, 0, 0, 0]] == [int(i[1:]) for i in f.test.ids]
        if grouped:
            patients = lambda ids: {b.groups[i] for i in ids}  # noqa: E731
            assert not (patients(f.test.ids) & patients(train | val)) and not (patients(train) & patients(val))
        # the validation share of the dataset's own split: 6 / 30 of the rest
        assert len(val) == pytest.approx(24 * 6 / 30, abs=3)
    assert sorted(held_out) == sorted(b.train.ids + b.val.ids + b.test.ids)
    assert fold_bundle(b, 2, 3, seed=0).test.ids == fold_bundle(b, 2, 3, seed=0).test.ids  # seeded
    assert fold_bundle(b, 2, 3, seed=0).test.ids != fold_bundle(b, 2, 3, seed=1).test.ids


def test_too_few_samples_or_patients_for_the_folds_are_refused() -> None:
    with pytest.raises(XaibenchError, match="at least 13 samples per class; b \\(12\\)"):
        fold_bundle(bundle(), 1, 13, seed=0)
    few = bundle(groups=True)
    few = DataBundle(few.train, few.val, few.test, few.class_names, few.modality,
                     groups={f"s{i:02d}": f"p{i // 6}" for i in range(36)})  # 6 patients
    with pytest.raises(XaibenchError, match="at least 7 groups \\(patients\\), the dataset has 6"):
        fold_bundle(few, 1, 7, seed=0)


SUITE = """
name: kfold
seed: 0
samples: 100
image_size: 32
folds: 3
datasets:
  - name: synthetic-lesions
    params: {n_train: 30, n_val: 6, n_test: 12}
models:
  - name: small-cnn
    params: {width: 4, depth: 2}
    train: {epochs: 1, batch_size: 8, patience: 0, min_epochs: 0}
methods: [random, centre, saliency]
metrics: [dic, relevance-mass]
"""


def test_suite_folds_train_one_model_per_fold_and_pool_the_held_out_samples(
        tmp_path: Path, write_suite, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(SUITE)
    store_path, out = tmp_path / "r.db", tmp_path / "out"
    args = ["run", "--suite", str(suite), "--store", str(store_path), "--no-progress", "--no-figures", "--out", str(out)]
    assert cli.main(args) == 0
    assert "computed 18 cells (" in capsys.readouterr().out
    doc = json.loads((out / "kfold.json").read_text())
    names = [b["dataset"] for b in doc["blocks"]]
    assert names == [f"synthetic-lesions fold {k}/3" for k in (1, 2, 3)] + ["synthetic-lesions (pooled over 3 folds)"]
    with Store(store_path) as store:
        plan = store.plan("kfold")
        assert len({r.model_key for r in plan}) == 3  # one model per fold
        per_fold = {}
        for r in plan:
            if r.method == "random" and r.metric == "dic":
                per_fold[r.dataset] = store.scores(r.cell_key)
    pooled_scores = {i: v for s in per_fold.values() for i, v in s.items()}
    assert len(pooled_scores) == 48  # every sample held out exactly once
    pooled = next(r for r in doc["blocks"][3]["rows"] if r["method"] == "random")["cells"]["dic"]
    assert pooled["n"] == 48 and pooled["mean"] == pytest.approx(np.mean(list(pooled_scores.values())), rel=1e-5)
    fold_means = [np.mean(list(s.values())) for s in per_fold.values()]
    spread = doc["blocks"][3]["folds"]["random"]["dic"]
    assert spread["folds"] == 3 and spread["mean"] == pytest.approx(np.mean(fold_means), rel=1e-5)
    assert spread["sd"] == pytest.approx(np.std(fold_means, ddof=1), rel=1e-4)
    assert "Across the 3 folds" in (out / "kfold.md").read_text()
    # the pooled section is judged like any other: the chance check uses the masks of every fold's held-out
    # samples, and the trust table reads the pooled per-sample scores
    with Store(store_path) as store:
        fractions = store.header("kfold")["calibration"]["mask_fraction"]
    per_fold_fraction = [fractions[b["dataset"]] for b in doc["blocks"][:3]]
    assert min(per_fold_fraction) <= fractions["synthetic-lesions"] <= max(per_fold_fraction)  # a pooled mean
    checks = {c["name"]: c for c in doc["blocks"][3]["verdict"]["checks"]}
    assert not any("no masks" in r for r in doc["blocks"][3]["verdict"]["not_run"])
    assert any("chance" in name for name in checks), checks
    trust_rows = {t["metric"]: t for t in doc["blocks"][3]["meta_evaluation"]}
    assert set(trust_rows) == {"dic", "relevance-mass"}
    # resume: nothing is recomputed
    assert cli.main(args) == 0
    assert "all 18 cells of suite 'kfold' were already in" in capsys.readouterr().out


def test_image_folder_patient_ids_from_the_file_name(tmp_path: Path) -> None:
    from PIL import Image
    from xaibench_medical.imagefolder import load_imagefolder

    from xaibench.contract.specs import DatasetRequest

    for c in ("a", "b"):
        for p in range(3):
            for k in range(2):
                (tmp_path / "imgs" / c).mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((8, 8), 10 * p + k, np.uint8)).save(tmp_path / "imgs" / c / f"P{c}{p}_{k}.png")

    def load(pattern: str) -> DataBundle:
        return load_imagefolder(DatasetRequest(params={"path": "imgs", "group_pattern": pattern}, seed=0,
                                               image_size=None, data_root=str(tmp_path)))

    groups = load(r"^(P\w\d)_").groups
    assert groups["a/Pa1_0.png"] == groups["a/Pa1_1.png"] == "Pa1" and len(set(groups.values())) == 6
    with pytest.raises(TypeError, match="needs one \\(group\\)"):
        load(r"^P\w\d_")
    with pytest.raises(XaibenchError, match="finds no patient id"):
        load(r"^(Q\d)_")
