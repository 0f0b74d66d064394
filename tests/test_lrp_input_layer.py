"""Issue 42 item 2: LRP's input-layer rules (flat, box) land on the layer that reads the input, found by the data flow.

zennit's ``EpsilonPlusFlat`` and ``EpsilonGammaBox`` put their first-layer rule on the first module in
definition order (zennit issues #63, #76): on a network whose ``__init__`` defines its classifier first,
the flat rule lands on the classifier. The expected maps here are zennit's own ``NameMapComposite``
written out by hand, rule by rule, by forward position, run through zennit's ``Gradient`` attributor
(not xaibench's relevance helper); ours must equal them to 1e-6 of the map's scale on both twins.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.contract.layers import input_layers
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext

HARNESS = load_harness()
BOX = {"low": 0.0, "high": 1.0}


class ForwardOrder(nn.Module):
    """conv-ReLU-maxpool-conv-ReLU-average pool-dense, defined in forward order."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu1, self.pool = nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.avg = nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2)
        self.flat, self.head = nn.Flatten(), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu1(self.conv1(x)))
        return self.head(self.flat(self.avg(self.relu2(self.conv2(x)))))


class ClassifierFirst(ForwardOrder):
    """The same forward, with the classifier defined before the convolutions (zennit issue #76's pattern)."""

    def __init__(self) -> None:
        nn.Module.__init__(self)
        self.head, self.flat = nn.Linear(32, 3), nn.Flatten()
        self.conv1, self.relu1, self.pool = nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.avg = nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2)


def _twins() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    ordered = ForwardOrder().eval()
    with torch.no_grad():
        for m in ordered.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                m.bias.normal_(0.0, 0.1)
    first = ClassifierFirst().eval()
    first.load_state_dict(ordered.state_dict())
    return ordered, first


def _inputs() -> torch.Tensor:
    return torch.rand(4, 2, 12, 12, generator=torch.Generator().manual_seed(1))


def _explain(name: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, **params: object) -> torch.Tensor:
    spec = HARNESS.methods.get(name)
    ctx = MethodContext(layer=None, batch_size=8, sample_seeds=tuple(range(len(x))))
    return spec.explain(model, x, target, ctx, **{**spec.defaults, **params}).detach()


def _by_hand(model: nn.Module, x: torch.Tensor, target: torch.Tensor, name_map: list) -> torch.Tensor:
    """zennit's NameMapComposite with the rules written out per module name, through zennit's Gradient attributor;
    the output relevance is the target logit (one-hot times the output)."""
    from zennit.attribution import Gradient
    from zennit.composites import NameMapComposite

    with Gradient(model, NameMapComposite(name_map)) as attributor:
        _, rel = attributor(x, lambda out: torch.zeros_like(out).scatter_(1, target[:, None], 1.0) * out)
    return rel.detach().sum(1)


def _flat_map() -> list:
    from zennit.rules import Epsilon, Flat, Norm, Pass, ZPlus

    return [(("conv1",), Flat(stabilizer=1e-6)), (("conv2",), ZPlus(stabilizer=1e-6)),
            (("head",), Epsilon(epsilon=1e-6)), (("relu1", "relu2"), Pass()), (("avg",), Norm(stabilizer=1e-6))]


def _box_map() -> list:
    from zennit.rules import Epsilon, Gamma, Norm, Pass, ZBox

    return [(("conv1",), ZBox(low=0.0, high=1.0, stabilizer=1e-6)), (("conv2",), Gamma(gamma=0.25, stabilizer=1e-6)),
            (("head",), Epsilon(epsilon=1e-6)), (("relu1", "relu2"), Pass()), (("avg",), Norm(stabilizer=1e-6))]


def _close(ours: torch.Tensor, expected: torch.Tensor) -> None:
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=0, atol=1e-6 * float(expected.abs().max()))


def _correlations(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return np.array([np.corrcoef(u.flatten(), v.flatten())[0, 1] for u, v in zip(a.numpy(), b.numpy())])


@pytest.mark.parametrize("method, name_map, params", [("lrp-epsilon-plus-flat", _flat_map, {}),
                                                      ("lrp-epsilon-gamma-box", _box_map, BOX)])
def test_the_input_layer_rule_lands_on_the_layer_that_reads_the_input_on_both_twins(method, name_map, params) -> None:  # type: ignore[no-untyped-def]
    ordered, first = _twins()
    x = _inputs()
    target = ordered(x).argmax(1)
    expected = _by_hand(ordered, x, target, name_map())
    assert torch.equal(ordered(x), first(x))  # one function
    _close(_explain(method, ordered, x, target, **params), expected)
    _close(_explain(method, first, x, target, **params), expected)


def test_zennits_own_composite_misplaces_the_flat_rule_on_the_classifier_first_twin() -> None:
    """The issue's example, as the fact the fix answers: zennit's EpsilonPlusFlat follows the definition order."""
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat

    ordered, first = _twins()
    x = _inputs()
    target = ordered(x).argmax(1)
    expected = _by_hand(ordered, x, target, _flat_map())
    maps = []
    for model in (ordered, first):
        with Gradient(model, EpsilonPlusFlat()) as attributor:
            _, rel = attributor(x, lambda out: torch.zeros_like(out).scatter_(1, target[:, None], 1.0) * out)
        maps.append(rel.detach().sum(1))
    _close(maps[0], expected)
    assert _correlations(maps[1], expected).min() < 0.5


class DenseInput(nn.Module):
    """A signal read by a dense layer, defined after the classifier: the box rule goes on ``fc1``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc2, self.relu, self.fc1 = nn.Linear(16, 3), nn.ReLU(), nn.Linear(24, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x.flatten(1))))


def test_a_dense_input_layer_gets_the_box_rule() -> None:
    from zennit.rules import Epsilon, Pass, ZBox

    torch.manual_seed(3)
    model = DenseInput().eval()
    x = torch.rand(3, 1, 24, generator=torch.Generator().manual_seed(2))
    target = model(x).argmax(1)
    expected = _by_hand(model, x, target, [(("fc1",), ZBox(low=0.0, high=1.0, stabilizer=1e-6)),
                                           (("fc2",), Epsilon(epsilon=1e-6)), (("relu",), Pass())])
    _close(_explain("lrp-epsilon-gamma-box", model, x, target, **BOX), expected)


class Branches(nn.Module):
    """Two convolutions read the input (concatenated branches): both are input layers."""

    def __init__(self) -> None:
        super().__init__()
        self.head, self.b, self.a = nn.Linear(8, 3), nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(2, 4, 1)
        self.relu, self.avg, self.flat = nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flat(self.avg(self.relu(torch.cat([self.a(x), self.b(x)], 1)))))


def test_parallel_input_layers_each_get_the_flat_rule() -> None:
    from zennit.rules import Epsilon, Flat, Norm, Pass

    torch.manual_seed(4)
    model = Branches().eval()
    assert input_layers(model, lambda m: isinstance(m, (nn.Conv2d, nn.Linear)), "convolution or linear", "t") == (
        "a", "b")
    x = _inputs()
    target = model(x).argmax(1)
    expected = _by_hand(model, x, target, [(("a", "b"), Flat(stabilizer=1e-6)), (("head",), Epsilon(epsilon=1e-6)),
                                           (("relu",), Pass()), (("avg",), Norm(stabilizer=1e-6))])
    _close(_explain("lrp-epsilon-plus-flat", model, x, target), expected)


class Skip(nn.Module):
    """``conv2`` reads the input directly and through ``conv1``: neither only an input layer nor only an inner one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2, self.head = nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(4, 2, 3, padding=1), nn.Linear(2, 3)
        self.relu, self.avg, self.flat = nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flat(self.avg(self.relu(self.conv2(torch.cat([self.relu(self.conv1(x)), x], 1))))))


class Branching(ForwardOrder):
    """A data-dependent branch: torch.fx cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            x = x * 1.0
        return super().forward(x)


@pytest.mark.parametrize("method", ["lrp-epsilon-plus-flat", "lrp-epsilon-gamma-box"])
def test_where_the_input_layer_cannot_be_found_the_method_refuses_in_one_line(method: str) -> None:
    spec = HARNESS.methods.get(method)
    assert spec.covers(Skip()) == ("the input layer's rule (flat, box): layer conv2 reads the network's input both "
                                   "directly and through another layer, so the input layer's rule is not defined for it")
    assert spec.covers(Branching()).startswith("torch.fx cannot trace its forward (")
    assert spec.covers(nn.Sequential(nn.Flatten())) == ("the input layer's rule (flat, box): no convolution or linear "
                                                       "layer reads this network's input")
    x = _inputs()
    with pytest.raises(XaibenchError) as raised:  # called directly, without covers: the same refusal, one line
        _explain(method, Branching(), x, torch.zeros(4, dtype=torch.long), **(BOX if "box" in method else {}))
    assert str(raised.value).startswith(f"{method}: torch.fx cannot trace this network (")
    assert "\n" not in str(raised.value)
    assert spec.covers(_twins()[1]) is None


def test_no_input_layer_is_refused() -> None:
    with pytest.raises(ValueError, match="^t: no convolution or linear layer reads this network's input$"):
        input_layers(nn.Sequential(nn.Flatten()), lambda m: isinstance(m, (nn.Conv2d, nn.Linear)),
                     "convolution or linear", "t")


def test_through_the_python_api_the_classifier_first_twin_gets_the_forward_order_map() -> None:
    """xaibench.explain takes the suite's path (covers, then the method): the same map as zennit's NameMapComposite."""
    import xaibench

    ordered, first = _twins()
    x = _inputs()
    target = ordered(x).argmax(1)
    expected = _by_hand(ordered, x, target, _flat_map())
    maps = xaibench.explain(first, x.numpy(), target.numpy(), method="lrp-epsilon-plus-flat")
    np.testing.assert_allclose(maps, expected.numpy(), rtol=0, atol=1e-6 * float(expected.abs().max()))
    with pytest.raises(XaibenchError, match="^not applicable: the input layer's rule \\(flat, box\\): layer conv2 reads"):
        xaibench.explain(Skip(), x.numpy(), target.numpy(), method="lrp-epsilon-plus-flat")
