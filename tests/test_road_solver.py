"""ROAD's batched conjugate-gradient imputation (:func:`impute`) equals the direct sparse solve (:func:`linear_impute`, scipy's ``spsolve``)."""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch

import xaibench_metrics.road as road_module
from xaibench_metrics.road import cholmod_available, default_solver, impute, linear_impute, removal_masks

#: Why a test that runs CHOLMOD skips: cvxopt is an optional extra (GPL-3), in the test extra.
NO_CVXOPT = 'cvxopt (GPL-3) is the optional extra "xaibench[cholmod]"; the test extra installs it'


@pytest.mark.parametrize("spatial", [(40,), (24, 20), (32, 32)])
def test_batched_conjugate_gradients_equal_spsolve_at_every_nested_fraction(spatial: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(len(spatial))
    images = torch.rand(3, 2, *spatial, generator=gen, dtype=torch.float64)
    maps = torch.rand(3, *spatial, generator=gen)
    fractions = (0.1, 0.5, 0.9)
    removed = removal_masks(maps, fractions, "morf")
    filled = None
    for k in range(len(fractions)):  # warm-started as ROAD runs it
        filled = impute(images, removed[:, k], start=filled)
        for i in range(images.shape[0]):
            expected = linear_impute(images[i].numpy(), removed[i, k].numpy())
            np.testing.assert_allclose(filled[i].numpy(), expected, rtol=0, atol=1e-6)
    cold = impute(images, removed[:, -1])
    np.testing.assert_allclose(cold.numpy(), filled.numpy(), rtol=0, atol=1e-6)


def test_conjugate_gradients_keep_kept_pixels_and_refuse_a_fully_removed_input() -> None:
    image = torch.rand(1, 1, 9, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    removed = torch.zeros(1, 9, 7, dtype=torch.bool)
    removed[0, 3:6, 2:5] = True
    got = impute(image, removed)
    torch.testing.assert_close(got[0, :, ~removed[0]], image[0, :, ~removed[0]], rtol=0, atol=0)
    with pytest.raises(ValueError, match="every pixel is removed"):
        impute(image, torch.ones(1, 9, 7, dtype=torch.bool))


def test_conjugate_gradients_equal_spsolve_on_black_zero_dark_and_bright_images_in_one_batch() -> None:
    """Each image's system stops on its own residual (RTOL of its own right-hand side): a black image stays black,
    pixels that are exactly 0 stay finite, and images at 1e-4 and 1e4 agree with spsolve to 1e-8 of their scale."""
    gen = torch.Generator().manual_seed(3)
    base = torch.rand(1, 2, 16, 12, generator=gen, dtype=torch.float64)
    holes = base.clone()
    holes[..., ::3, ::2] = 0.0  # exact zeros among the kept pixels
    images = torch.cat([torch.zeros_like(base), holes, 1e-4 * base, 1e4 * base])
    removed = removal_masks(torch.rand(4, 16, 12, generator=gen), (0.6,), "morf")[:, 0]
    got = impute(images, removed)
    assert torch.isfinite(got).all()
    assert (got[0] == 0).all()
    for i, scale in enumerate((1.0, 1.0, 1e-4, 1e4)):
        expected = linear_impute(images[i].numpy(), removed[i].numpy())
        np.testing.assert_allclose(got[i].numpy(), expected, rtol=0, atol=1e-8 * scale, err_msg=str(i))


def test_conjugate_gradients_impute_a_two_by_two_image() -> None:
    """One removed corner of a 2 x 2 image: its 2 direct neighbours weigh 1/6, the diagonal one 1/12, normalised
    over the existing neighbours (5/12): (2 (b + c) + d) / 5."""
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]], dtype=torch.float64)
    removed = torch.tensor([[[True, False], [False, False]]])
    got = impute(image, removed)
    assert got[0, 0, 0, 0].item() == pytest.approx((2 * (1.0 + 2.0) + 4.0) / 5, abs=1e-12)
    assert torch.equal(got[0, 0].flatten()[1:], image[0, 0].flatten()[1:])


@pytest.mark.parametrize("shape, message", [
    ((1, 1, 2, 2, 2, 2), "noisy linear imputation supports [1, 2, 3]-D inputs, got spatial shape (2, 2, 2, 2)"),
    ((1, 1, 3, 3), "cannot impute an input whose every pixel is removed"),
])
def test_conjugate_gradients_refuse_unsupported_ranks_and_a_fully_removed_input(shape, message) -> None:  # type: ignore[no-untyped-def]
    image = torch.rand(*shape, dtype=torch.float64)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        impute(image, torch.ones(shape[:1] + shape[2:], dtype=torch.bool))


def test_conjugate_gradients_say_when_they_do_not_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stopping tolerance no residual meets (negative), the iteration cap is reached: one line, RuntimeError."""
    from xaibench_metrics import road

    monkeypatch.setattr(road, "RTOL", -1.0)
    removed = torch.zeros(1, 5, 5, dtype=torch.bool)
    removed[0, 2, 2] = True
    with pytest.raises(RuntimeError, match="^noisy linear imputation: conjugate gradients did not converge$"):
        road.impute(torch.rand(1, 1, 5, 5, dtype=torch.float64), removed)


@pytest.mark.parametrize("scale", [1e-6, 1e-4, 1.0, 1e4, 1e6])
def test_conjugate_gradients_stop_relative_to_the_images_own_scale(scale: float) -> None:
    """The stopping rule is relative (residual below RTOL of the right-hand side, 2-norms): one image alone, at
    any scale, agrees with spsolve to 1e-9 of that scale, as RTOL's note states."""
    gen = torch.Generator().manual_seed(3)
    image = scale * torch.rand(1, 2, 16, 12, generator=gen, dtype=torch.float64)
    removed = removal_masks(torch.rand(1, 16, 12, generator=gen), (0.6,), "morf")[:, 0]
    expected = linear_impute(image[0].numpy(), removed[0].numpy())
    np.testing.assert_allclose(impute(image, removed)[0].numpy(), expected, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("spatial", [(40,), (24, 20), (20, 24), (32, 32), (5, 6, 7)])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_the_banded_cholesky_equals_superlu(spatial: tuple[int, ...], scale: float) -> None:
    """The band's Cholesky (the CPU default on 1D and 2D, on both orientations of a non-square image) equals
    scipy's ``spsolve`` (SuperLU) on the same system to 1e-12 of the image's scale, at nested MoRF fractions
    and at scattered random removals; kept pixels are returned exactly."""
    gen = torch.Generator().manual_seed(len(spatial))
    image = scale * torch.rand(2, *spatial, generator=gen, dtype=torch.float64).numpy()
    nested = removal_masks(torch.rand(1, *spatial, generator=gen), (0.1, 0.5, 0.9), "morf")[0].numpy()
    scattered = (torch.rand(2, *spatial, generator=gen) < torch.tensor([0.3, 0.8]).view(2, *[1] * len(spatial))).numpy()
    for removed in [*nested, *scattered]:
        banded = linear_impute(image, removed, "banded")
        np.testing.assert_allclose(banded, linear_impute(image, removed, "superlu"), rtol=0, atol=1e-12 * scale)
        np.testing.assert_array_equal(banded[:, ~removed], image[:, ~removed])


def test_the_default_solver_follows_the_measured_crossovers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Banded on signals and images up to 96^2 pixels, CHOLMOD on larger images and on volumes up to 24^3 voxels,
    multigrid above (the crossovers of benchmarks/test_road_sizes.py's size sweep), and each default is the solver
    called (with cvxopt installed)."""
    pytest.importorskip("cvxopt", reason=NO_CVXOPT)
    import cvxopt.cholmod
    import pyamg
    import scipy.linalg
    import scipy.sparse.linalg

    used: list[str] = []
    band, lu, amg = scipy.linalg.solveh_banded, scipy.sparse.linalg.spsolve, pyamg.smoothed_aggregation_solver
    cholesky = cvxopt.cholmod.numeric
    monkeypatch.setattr(scipy.linalg, "solveh_banded", lambda *a, **k: used.append("banded") or band(*a, **k))
    monkeypatch.setattr(scipy.sparse.linalg, "spsolve", lambda *a, **k: used.append("superlu") or lu(*a, **k))
    monkeypatch.setattr(cvxopt.cholmod, "numeric", lambda *a, **k: used.append("cholmod") or cholesky(*a, **k))
    monkeypatch.setattr(pyamg, "smoothed_aggregation_solver", lambda *a, **k: used.append("amg") or amg(*a, **k))
    shapes = [(5000,), (96, 96), (97, 96), (96, 97), (24, 24, 24), (25, 24, 24)]
    for spatial in shapes:
        removed = np.zeros(spatial, dtype=bool)
        removed[(1,) * len(spatial)] = True
        linear_impute(np.ones((1, *spatial)), removed)
    assert used == ["banded", "banded", "cholmod", "cholmod", "cholmod", "amg"]
    with pytest.raises(ValueError, match=r"^solver must be one of \('banded', 'superlu', 'cholmod', 'amg'\), "
                                         r"got 'lu'$"):
        linear_impute(np.ones((1, 3, 3)), removed[0, :3, :3], "lu")


#: Grids at and around the crossovers, and main's defaults there before CHOLMOD (the choices without cvxopt).
CROSSOVER_GRIDS = [(128, 128), (512, 512), (16, 16, 16), (20, 20, 20), (24, 24, 24), (32, 32, 32)]
WITHOUT_CVXOPT = ["superlu", "superlu", "superlu", "superlu", "amg", "amg"]
WITH_CVXOPT = ["cholmod", "cholmod", "cholmod", "cholmod", "cholmod", "amg"]


@pytest.mark.parametrize(("available", "expected"), [(False, WITHOUT_CVXOPT), (True, WITH_CVXOPT)])
def test_the_default_solver_is_superlu_where_cvxopt_is_missing_and_an_explicit_cholmod_says_how_to_get_it(
        monkeypatch: pytest.MonkeyPatch, available: bool, expected: list[str]) -> None:
    """cvxopt is optional (GPL-3): without it the defaults are main's before CHOLMOD (SuperLU above 96^2 pixels
    and on volumes up to 20^3 voxels, multigrid above), with it CHOLMOD above 96^2 pixels and up to 24^3 voxels;
    signals and images up to 96^2 pixels are banded either way. Asking for "cholmod" without it is a one-line
    ImportError naming the extra; the default still imputes (by SuperLU, as that solver does)."""
    monkeypatch.setattr(road_module, "cholmod_available", lambda: available)
    assert [default_solver(spatial) for spatial in CROSSOVER_GRIDS] == expected
    assert [default_solver(spatial) for spatial in [(5000,), (96, 96)]] == ["banded", "banded"]
    if available:
        return
    removed = np.zeros((97, 96), dtype=bool)
    removed[40:60, 30:50] = True
    image = np.random.default_rng(0).random((2, 97, 96))
    np.testing.assert_array_equal(linear_impute(image, removed), linear_impute(image, removed, "superlu"))
    with pytest.raises(ImportError) as error:
        linear_impute(image, removed, "cholmod")
    assert str(error.value) == ('solver "cholmod" needs cvxopt (GPL-3, not installed with xaibench): pip install '
                                '"xaibench[cholmod]", or choose another solver of (\'banded\', \'superlu\', \'amg\')')


def test_cholmod_is_available_exactly_where_cvxopt_can_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The look-up (cached per process) follows the import system: a module that cannot be imported
    (``sys.modules[name] = None``) is unavailable."""
    try:
        import cvxopt  # noqa: F401
        importable = True
    except ImportError:
        importable = False
    cholmod_available.cache_clear()
    try:
        assert cholmod_available() is importable
        monkeypatch.setitem(sys.modules, "cvxopt", None)
        cholmod_available.cache_clear()
        assert cholmod_available() is False
    finally:
        monkeypatch.undo()
        cholmod_available.cache_clear()


@pytest.mark.parametrize("spatial", [(48, 40), (24, 22, 20)])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_multigrid_equals_superlu_to_a_millionth_of_the_image_scale(spatial: tuple[int, ...], scale: float) -> None:
    """Multigrid-preconditioned conjugate gradients (to AMG_RTOL) equal SuperLU on the same system to 1e-6 of the
    image's scale (offset images too), cold and warm-started from the imputation at the previous nested fraction,
    on images and volumes, with several channels; kept pixels are returned exactly."""
    gen = torch.Generator().manual_seed(len(spatial))
    image = (scale * (torch.rand(3, *spatial, generator=gen, dtype=torch.float64) + 2.0)).numpy()
    maps = torch.rand(1, *spatial, generator=gen)
    previous = None
    for removed in removal_masks(maps, (0.2, 0.5, 0.8), "morf")[0].numpy():
        expected = linear_impute(image, removed, "superlu")
        for start in (None, previous):
            got = linear_impute(image, removed, "amg", start=start)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * scale)
            np.testing.assert_array_equal(got[:, ~removed], image[:, ~removed])
        previous = expected


def test_multigrid_says_when_it_does_not_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(road_module, "AMG_RTOL", 1e-300)
    removed = np.zeros((12, 12, 12), dtype=bool)
    removed[3:9, 3:9, 3:9] = True
    with pytest.raises(RuntimeError, match="multigrid conjugate gradients did not converge"):
        linear_impute(np.random.default_rng(0).random((1, 12, 12, 12)), removed, "amg")


@pytest.mark.parametrize("spatial", [(40,), (48, 40), (40, 48), (130, 100), (12, 10, 9)])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_cholmod_equals_superlu_to_a_millionth_of_the_image_scale(spatial: tuple[int, ...], scale: float) -> None:
    """CHOLMOD's Cholesky in the whole grid's AMD order (the default on images above 96^2 pixels and on volumes up
    to 24^3) equals SuperLU on the same system to 1e-6 of the image's scale (offset images, several channels,
    signals, both orientations of 2D, above 96^2 pixels and volumes) at nested MoRF fractions and scattered
    removals; kept pixels are returned exactly. Measured: 1e-15 to 1e-13 of the scale (a direct solve each)."""
    pytest.importorskip("cvxopt", reason=NO_CVXOPT)
    gen = torch.Generator().manual_seed(len(spatial) + spatial[0])
    image = (scale * (torch.rand(3, *spatial, generator=gen, dtype=torch.float64) + 2.0)).numpy()
    nested = removal_masks(torch.rand(1, *spatial, generator=gen), (0.1, 0.5, 0.9), "morf")[0].numpy()
    scattered = (torch.rand(2, *spatial, generator=gen) < torch.tensor([0.3, 0.8]).view(2, *[1] * len(spatial))).numpy()
    for removed in [*nested, *scattered]:
        got = linear_impute(image, removed, "cholmod")
        np.testing.assert_allclose(got, linear_impute(image, removed, "superlu"), rtol=0, atol=1e-6 * scale)
        np.testing.assert_array_equal(got[:, ~removed], image[:, ~removed])


def test_cholmod_imputes_a_two_by_two_image_by_hand_and_leaves_cvxopts_options_as_they_were() -> None:
    """One removed corner of a 2 x 2 image: (2 (b + c) + d) / 5 (its neighbours' weights 1/6, 1/6, 1/12 normalised);
    the options CHOLMOD's symbolic step is given for the call (the order alone) are put back."""
    pytest.importorskip("cvxopt", reason=NO_CVXOPT)
    from cvxopt import cholmod

    before = dict(cholmod.options)
    image = np.array([[[0.0, 1.0], [2.0, 4.0]]])
    got = linear_impute(image, np.array([[True, False], [False, False]]), "cholmod")
    assert got[0, 0, 0] == pytest.approx((2 * (1.0 + 2.0) + 4.0) / 5, abs=1e-14)
    assert cholmod.options == before
