"""The offline MNIST-1D generator (seed 000) and scikit-learn's digits (seed 003) as datasets."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import DatasetRequest
from xaibench.authoring.testing import one_thread
from xaibench_datasets import mnist1d

HARNESS = load_harness()


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def _load(name: str, image_size: int | None = None, **params: object):  # type: ignore[no-untyped-def]
    return HARNESS.datasets.get(name).load(DatasetRequest(params=params, seed=0, image_size=image_size, data_root=None))


def test_mnist1d_templates_follow_the_reference() -> None:
    t = mnist1d.templates()
    assert t.shape == (10, 12) and np.allclose(t[:, 0], 0.0)
    assert np.allclose((t * 6).std(1), 1.0)  # standardised, then divided by 6


def test_mnist1d_is_balanced_stable_and_standardised() -> None:
    small = _load("mnist1d", n_train=100, n_val=20, n_test=50)
    large = _load("mnist1d", n_train=200, n_val=20, n_test=60)
    assert small.modality == "signal" and small.train.x.shape == (100, 1, 40) and small.test.masks is None
    assert small.train.y.bincount().tolist() == [10] * 10
    assert torch.equal(small.test.x, large.test.x[:50]) and small.test.ids == large.test.ids[:50]
    assert not set(small.train.ids) & set(small.test.ids)
    assert abs(float(large.train.x.std()) - 1.0) < 0.15
    with pytest.raises(TypeError, match="unknown parameter"):
        _load("mnist1d", n_tests=3)


def test_mnist1d_classes_are_learnable_but_not_trivially() -> None:
    """The paper's point: a linear model does clearly better than chance (10 %) but far from perfectly."""
    data = _load("mnist1d", n_train=2000, n_val=10, n_test=500)
    clf = LogisticRegression(max_iter=300).fit(data.train.x[:, 0].numpy(), data.train.y.numpy())
    accuracy = clf.score(data.test.x[:, 0].numpy(), data.test.y.numpy())
    assert 0.2 < accuracy < 0.8


def test_digits_are_stratified_seeded_and_upsampled() -> None:
    data = _load("digits", image_size=24)
    assert data.modality == "image" and data.test.x.shape[1:] == (1, 24, 24) and data.test.masks is None
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert float(data.train.x.min()) >= 0 and float(data.train.x.max()) <= 1
    ids = [set(s.ids) for s in (data.train, data.val, data.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    share = [np.bincount(s.y.numpy(), minlength=10) / len(s) for s in (data.train, data.test)]
    assert np.abs(share[0] - share[1]).max() < 0.02
    again = _load("digits", image_size=24)
    assert again.test.ids == data.test.ids and torch.equal(again.test.x, data.test.x)
    assert _load("digits", image_size=24, seed=1).test.ids != data.test.ids
    with pytest.raises(ValueError, match="size must be >= 8"):
        _load("digits", image_size=4)
