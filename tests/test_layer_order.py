"""Issue 42 item 2, the rest of the kind: "the last layer" and "the top" of a network by its data flow.

Relative representation stability reads the input of the layer that produces the output; the cascading
randomization (Adebayo et al. 2018) starts at the top (the output). Both used to take the last module in
definition order, which on a network defining its classifier first is a convolution. The expected values
are written out by hand from the twins' ``forward``.
"""
from __future__ import annotations

import copy

import pytest
import torch
from test_lrp_input_layer import Branching, ClassifierFirst, _inputs, _twins
from torch import nn
from xaibench_metrics.randomization import randomizable_layers
from xaibench_metrics.robustness import representations

from xaibench.contract.layers import forward_order, output_layers


def test_the_cascade_starts_at_the_classifier_on_both_twins() -> None:
    ordered, first = _twins()
    assert next(n for n, _ in first.named_children()) == "head"  # defined first
    assert randomizable_layers(ordered) == randomizable_layers(first) == ["head", "conv2", "conv1"]


def test_the_representation_is_what_the_classifier_reads_on_both_twins() -> None:
    ordered, first = _twins()
    x = _inputs()
    with torch.no_grad():  # by hand: the classifier's input in forward
        hidden = ordered.pool(ordered.relu1(ordered.conv1(x)))
        expected = ordered.flat(ordered.avg(ordered.relu2(ordered.conv2(hidden)))).double()
    for model in (ordered, first):
        assert torch.equal(representations(model, x, None, 8), expected)


class TwoHeads(nn.Module):
    """The output is the sum of two dense layers: no single layer produces it."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x.flatten(1)) + self.b(x.flatten(1))


def test_where_the_order_cannot_be_found_the_metrics_refuse_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^model-parameter randomization \(the cascade's order from the top\): torch"
                                         r"\.fx cannot trace this network \(symbolically traced variables cannot be "
                                         r"used as inputs to control flow\), so its layers cannot be found from its "
                                         r"data flow$"):
        randomizable_layers(Branching())
    with pytest.raises(ValueError, match=r"\): the output comes from several parameterised modules \(a, b\)$"):
        representations(TwoHeads(), torch.rand(2, 1, 2, 2), None, 8)


class Custom(nn.Module):
    """A layer computing with its own parameter (no child modules), called after a standard one."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight)


def test_a_custom_layer_with_its_own_parameters_is_one_layer_in_forward_order() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.top, self.bottom = Custom(), nn.Linear(5, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.top(torch.relu(self.bottom(x)))

    def own(m: nn.Module) -> bool:
        return any(True for _ in m.parameters(recurse=False))

    assert forward_order(Net(), own, "t") == ("bottom", "top")
    assert output_layers(Net(), own, "parameterised", "t") == ("top",)


def test_the_cam_layer_hint_names_the_convolution_forward_calls_last() -> None:
    import xaibench
    from xaibench.base.errors import XaibenchError
    from xaibench.contract.layers import last_convolution

    class Reversed(nn.Module):
        """``late`` is defined first and called last."""

        def __init__(self) -> None:
            super().__init__()
            self.late, self.mid, self.early = (nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1),
                                               nn.Conv2d(1, 4, 3, padding=1))
            self.head = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.late(self.mid(torch.relu(self.early(x))))).mean((2, 3)))

    model = Reversed().eval()
    assert last_convolution(model) == "late"
    assert last_convolution(Branching()) is None  # untraceable: no hint rather than a guess
    with pytest.raises(XaibenchError, match=r"pass layer='<dotted name>', such as 'late' \(8x8\)$"):
        xaibench.explain(model, torch.rand(2, 1, 8, 8), method="gradcam")


class Scaled(nn.Module):
    """A block with a parameter of its own and a child layer: traced through, not one leaf."""

    def __init__(self) -> None:
        super().__init__()
        self.scale, self.lin = nn.Parameter(torch.ones(4)), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * self.scale


def test_a_block_with_its_own_parameter_and_children_is_traced_through() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head, self.block, self.stem = nn.Linear(4, 2), Scaled(), nn.Linear(3, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.block(self.stem(x)))

    def own(m: nn.Module) -> bool:
        return any(True for _ in m.parameters(recurse=False))

    # the block's own parameter is read after its child layer runs: it comes after block.lin
    assert forward_order(Net(), own, "t") == ("stem", "block.lin", "block", "head")


class CheckedFirst(ClassifierFirst):
    """The classifier-first twin behind a data-dependent branch: torch.fx cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            x = x * 1.0
        return super().forward(x)


def test_an_untraceable_network_is_ordered_by_a_forward_pass_of_the_cells_input() -> None:
    """The cascade receives the cell's inputs: where the graph cannot be traced, the layers' order on a forward pass
    of the first one (written out from forward: conv1, conv2, head), never the definition order."""
    from xaibench_metrics.randomization import model_randomization

    model = CheckedFirst().eval()
    x = _inputs()
    assert randomizable_layers(model, x[:1]) == ["head", "conv2", "conv1"]
    seen: list[list[str]] = []

    def explain(copy: nn.Module) -> torch.Tensor:
        changed = [n for n, m in copy.named_children() if any(
            not torch.equal(p, dict(model.named_parameters())[f"{n}.{k}"]) for k, p in m.named_parameters())]
        seen.append(changed)
        return torch.rand(len(x), 12, 12, generator=torch.Generator().manual_seed(len(seen)))

    model_randomization(torch.rand(len(x), 12, 12), lambda: copy.deepcopy(model), explain, model_seed=0, steps=3,
                        inputs=x)
    assert seen == [["head"], ["head", "conv2"], ["head", "conv1", "conv2"]]


def test_the_representation_of_an_untraceable_network_is_read_at_the_last_layer_to_finish() -> None:
    ordered = _twins()[0]
    model = CheckedFirst().eval()
    model.load_state_dict(ordered.state_dict())
    x = _inputs()
    assert torch.equal(representations(model, x, None, 8), representations(ordered, x, None, 8))
