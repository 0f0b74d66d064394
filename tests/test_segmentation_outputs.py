"""The output contract for segmentation models (issue 41, item 1): ``(N, K, *spatial)`` per-pixel logits at the
input's size are a segmenter (:func:`xaibench.contract.outputs.dense`), in 2D and 3D, one logit read as ``[-z, z]``,
dict outputs through ``output_key``; shapes that are neither class scores nor per-pixel scores are refused."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from segnets import DictSegmenter, unet
from xaibench.base.errors import XaibenchError
from xaibench.contract.outputs import OutputForm, conform, dense, unwrap


def _conform(model: nn.Module, k: int, spatial: tuple[int, ...], form: OutputForm = OutputForm()) -> nn.Module:
    return conform(model, num_classes=k, in_channels=1, spatial=spatial, form=form, who="model 'm'")


@pytest.mark.parametrize("dims", [2, 3])
def test_per_pixel_logits_are_a_segmenter_in_2d_and_3d_and_one_logit_reads_as_minus_z_z(dims: int) -> None:
    net = unet(dims=dims, k=1)
    spatial = (8,) * dims
    seg = _conform(net, 2, spatial)
    assert dense(seg) and unwrap(seg) is net
    x = torch.rand(2, 1, *spatial)
    z = net(x)[:, 0]
    out = seg(x)
    assert out.shape == (2, 2, *spatial)
    torch.testing.assert_close(out[:, 1], z)
    torch.testing.assert_close(out[:, 0], -z)


def test_k_class_segmenters_are_wrapped_unchanged_and_classifiers_are_not_dense() -> None:
    net = unet(k=3)
    seg = _conform(net, 3, (8, 8))
    x = torch.rand(2, 1, 8, 8)
    assert dense(seg)
    torch.testing.assert_close(seg(x), net(x))
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    assert not dense(_conform(classifier, 3, (8, 8)))
    assert not dense(net)  # not conformed: no record


def test_dict_outputs_are_read_through_output_key_and_the_hint_names_the_key() -> None:
    model = DictSegmenter(k=3).eval()
    seg = _conform(model, 3, (8, 8), OutputForm(key="out"))
    x = torch.rand(2, 1, 8, 8)
    assert dense(seg)
    torch.testing.assert_close(seg(x), model(x)["out"])
    with pytest.raises(XaibenchError, match=r"add `output_key: out`"):
        _conform(model, 3, (8, 8))


def test_per_pixel_probabilities_are_read_as_their_logs() -> None:
    net = unet(k=3)
    probs = nn.Sequential(net, nn.Softmax(1))
    seg = _conform(probs, 3, (8, 8), OutputForm(kind="probabilities"))
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(seg(x), torch.log_softmax(net(x), 1))


@pytest.mark.parametrize(("head", "message"), [
    (nn.Upsample(size=(4, 4)), r"returns shape \(2, 1, 4, 4\) for 2 inputs; expected class scores \(2, 2\) or "
                               r"per-pixel scores at the input's size \(2, 2, 8, 8\)"),
    (nn.Flatten(0), r"returns shape \(128,\) for 2 inputs"),
])
def test_shapes_that_are_neither_are_refused_in_one_line(head: nn.Module, message: str) -> None:
    with pytest.raises(XaibenchError, match=message) as info:
        _conform(nn.Sequential(unet(k=1), head), 2, (8, 8))
    assert "\n" not in str(info.value)


def test_a_wrong_class_count_of_a_segmenter_is_refused() -> None:
    with pytest.raises(XaibenchError, match=r"outputs 3 class score\(s\) per input but the dataset has 2 classes"):
        _conform(unet(k=3), 2, (8, 8))
