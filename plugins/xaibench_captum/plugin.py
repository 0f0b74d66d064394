"""Registers captum's attribution methods, adapted to the xaibench method contract.

captum attributes the model's logit for the target class; input attributions
``(N, C, *s)`` are reduced over channels (``reduce``: sum, abs or max_abs) into
``(N, *s)`` maps. Gradient methods accept a ``noise_tunnel`` parameter
(captum's NoiseTunnel: SmoothGrad, SmoothGrad-squared or VarGrad), e.g.
``noise_tunnel: {type: smoothgrad, samples: 16, stdev: 0.1}``.

The methods live in :mod:`xaibench_captum.methods`, named here with :func:`xaibench.contract.lazy.lazy`
and imported at their first call; captum is imported inside them: it pulls in a large import
graph that ``xaibench`` commands not explaining anything should not pay for.
"""
from __future__ import annotations

from collections.abc import Callable

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.specs import MODALITIES, MethodSpec

#: The parameters of ``occlusion`` and ``occlusion-incremental`` (seed 003's window, stride and fill).
OCCLUSION_DEFAULTS = {"window": 8, "stride": None, "fill": "zero", "per_pixel": True}
SMOOTHGRAD = "Smilkov et al., SmoothGrad: removing noise by adding noise, arXiv 1706.03825, 2017"
#: What each noise tunnel type computes from the gradients at the noisy copies, and its source.
NOISE_TUNNELS = (
    ("smoothgrad", "smoothgrad", "mean of the gradients", SMOOTHGRAD + ", Sec. 3"),
    ("smoothgrad-sq", "smoothgrad_sq", "mean of the squared gradients",
     "Hooker et al., A Benchmark for Interpretability Methods in Deep Neural Networks, NeurIPS 2019, Sec. 4; "
     + SMOOTHGRAD),
    ("vargrad", "vargrad", "variance of the gradients",
     "Adebayo et al., Local Explanation Methods for Deep Neural Networks Lack Sensitivity to Parameter Values, "
     "ICLR Workshop 2018, Sec. 2; " + SMOOTHGRAD),
)
#: How LIME and KernelSHAP cut an image (xaibench_captum.superpixels), as the method reference states it.
SUPERPIXELS = ("Superpixels: SLICO, the zero-parameter mode of SLIC (scikit-image `slic(slic_zero=True)`), on the "
               "image min-max scaled to [0, 1] over all its channels, channels as they are (no Lab conversion), colour "
               "distance the root mean square over channels: the same superpixels for any value range and for a grey "
               "image and its RGB twin. A pixel's colour distance to a superpixel counts in units of the larger of "
               "`compactness` (default 0.1 of the image's range) and the largest colour distance inside that "
               "superpixel, so superpixels follow edges on clean images and stay compact on speckle; "
               "`compactness >= 1` is plain SLIC, close to a grid. A constant image gives the seeds' regular grid. "
               "An image cut into fewer than 2 superpixels stops the run with one line naming `n_segments`")
NOISE_TUNNEL_NOTE = "; accepts noise_tunnel: {type: smoothgrad|smoothgrad_sq|vargrad, samples, stdev}"


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Registers this plugin's captum methods with ``register`` (the ``xaibench_register_methods`` hook), importing no torch."""
    both = frozenset(MODALITIES)
    register(MethodSpec(
        name="saliency", explain=lazy("xaibench_captum.methods:saliency"), modalities=both,
        check=lazy("xaibench_captum.checks:params_check", False),
        description="vanilla gradients of the target logit, max |gradient| over channels (captum)" + NOISE_TUNNEL_NOTE,
        citation="Simonyan et al., Deep Inside Convolutional Networks, ICLR Workshop 2014; " + SMOOTHGRAD,
        defaults={"reduce": "max_abs"},
        checked_against="captum Saliency (abs=False) called as is, reduced over channels by max |g|; contract only: "
                        "tests/test_conformance.py::test_method_conforms_on_images[saliency], with a noise tunnel: "
                        "tests/test_conformance.py::test_noise_tunnel_conforms[saliency]",
    ))
    register(MethodSpec(
        name="integrated-gradients", additive=True,
        check=lazy("xaibench_captum.checks:params_check", False),
        explain=lazy("xaibench_captum.methods:integrated_gradients"),
        modalities=both,
        description="path integral of gradients from a baseline to the input (captum)" + NOISE_TUNNEL_NOTE,
        citation="Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017",
        defaults={"n_steps": 32, "baseline": "zero", "reduce": "sum"},
        checked_against="by hand: x * w on a linear model, so its completeness error is 0: "
                        "tests/test_metrics.py::test_integrated_gradients_on_a_linear_model_is_complete",
    ))
    register(MethodSpec(
        name="gradient-shap", explain=lazy("xaibench_captum.methods:gradient_shap"), modalities=both, additive=True,
        check=lazy("xaibench_captum.checks:params_check", False),
        description="expected gradients x (input - baseline) at random points of noisy paths (captum)",
        citation="Lundberg & Lee, A Unified Approach to Interpreting Model Predictions, NeurIPS 2017",
        defaults={"n_samples": 16, "stdev": 0.1, "baseline": "zero", "reduce": "sum"},
        checked_against="captum GradientShap called as is; contract only: "
                        "tests/test_conformance.py::test_method_conforms_on_images[gradient-shap]",
    ))
    register(MethodSpec(
        name="deeplift", explain=lazy("xaibench_captum.methods:deeplift"), modalities=both, additive=True,
        check=lazy("xaibench_captum.checks:params_check", False),
        description="DeepLIFT rescale rule against a baseline, on a model copy with one hook per call site (captum); "
                    "ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus and non-overlapping max pooling" + NOISE_TUNNEL_NOTE,
        citation="Shrikumar et al., Learning Important Features Through Propagating Activation Differences, ICML 2017",
        defaults={"baseline": "zero", "reduce": "sum"},
        covers=lazy("xaibench_captum.rules:deeplift_covers"),
        checked_against="by hand: attributions sum to f_c(x) - f_c(baseline) on torchvision's ResNet-18 (Shrikumar et al. "
                        "2017, summation-to-delta): tests/test_methods_cam.py::"
                        "test_deeplift_conforms_on_resnet_and_sums_to_delta_despite_reused_relus; captum DeepLift on "
                        "the twin with separated hooks, each rule and pooling order: tests/test_deeplift_rules.py",
    ))
    register(MethodSpec(
        name="guided-backprop", explain=lazy("xaibench_captum.methods:guided_backprop"), modalities=both,
        check=lazy("xaibench_captum.checks:params_check", False),
        description="gradients with negative signals zeroed at every ReLU (captum)" + NOISE_TUNNEL_NOTE,
        citation="Springenberg et al., Striving for Simplicity: The All Convolutional Net, ICLR Workshop 2015",
        defaults={"reduce": "max_abs"},
        covers=lazy("xaibench_captum.rules:guided_backprop_covers"),
        checked_against="by hand on a one-ReLU net: tests/test_methods_new.py::test_deconvolution_rectifies_the_"
                        "backward_signal; captum on the module twin of functional and reused ReLUs: tests/test_method_"
                        "rules.py::test_functional_and_reused_relus_give_the_map_of_the_module_twin",
    ))
    register(MethodSpec(
        name="deconvolution", explain=lazy("xaibench_captum.methods:deconvolution"), modalities=both,
        check=lazy("xaibench_captum.checks:params_check", False),
        description="the backward signal rectified at every ReLU, whatever the forward activation (captum); "
                    "ReLU networks only",
        citation="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014, Sec. 2.1",
        defaults={"reduce": "max_abs"},
        covers=lazy("xaibench_captum.rules:deconvolution_covers"),
        checked_against="by hand on a one-ReLU net (ReLU of the weights' backward signal): "
                        "tests/test_methods_new.py::test_deconvolution_rectifies_the_backward_signal",
    ))
    register(MethodSpec(
        name="input-x-gradient", explain=lazy("xaibench_captum.methods:input_x_gradient"), modalities=both,
        check=lazy("xaibench_captum.checks:params_check", False),
        additive=True,
        description="input times the gradient of the target logit, summed over channels (captum); additive: the "
                    "first-order Taylor term of the logit at the zero input, equal to the logit on a bias-free "
                    "ReLU network",
        citation="Shrikumar et al., Not Just a Black Box, arXiv 1605.01713, 2016, Sec. 2; Ancona et al., Towards "
                 "Better Understanding of Gradient-based Attribution Methods, ICLR 2018, Sec. 2.1",
        defaults={"reduce": "sum"},
        checked_against="sum = logit on a bias-free ReLU net, by hand: "
                        "tests/test_methods_new.py::test_input_x_gradient_sums_to_the_logit_of_a_bias_free_relu_net",
    ))
    for name, kind, statistic, citation in NOISE_TUNNELS:
        register(MethodSpec(
            name=name, explain=lazy("xaibench_captum.noise:noise_tunnel_method", kind), modalities=both,
            check=lazy("xaibench_captum.checks:params_check", False),
            description=f"{statistic} of the target logit at `samples` noisy copies of the input, noise sd "
                        "`noise_level` x the sample's range, max |.| over channels (captum NoiseTunnel(Saliency))",
            citation=citation,
            defaults={"samples": 50, "noise_level": 0.15, "reduce": "max_abs"},
            checked_against=f"captum NoiseTunnel(Saliency) nt_type={kind}, same draws: "
                            "tests/test_methods_new.py::test_noise_tunnels_equal_captum_on_the_same_draws",
        ))
    register(MethodSpec(
        name="lime", explain=lazy("xaibench_captum.superpixels:lime"), modalities=frozenset({"image"}),
        check=lazy("xaibench_captum.checks:params_check", False),
        needs_gradients=False,
        description="weights of a kernel-weighted ridge surrogate over superpixels switched to a baseline "
                    "(captum Lime, the lime package's image defaults); not additive (a local surrogate with an "
                    "intercept); images only. " + SUPERPIXELS,
        citation="Ribeiro, Singh & Guestrin, \"Why Should I Trust You?\", KDD 2016, Sec. 3.3-3.4; Achanta et al., "
                 "SLIC Superpixels, IEEE TPAMI 2012",
        defaults={"n_samples": 1000, "n_segments": 50, "compactness": 0.1, "kernel_width": 0.25,
                  "baseline": "zero", "per_pixel": False},
        version="2",
        checked_against="captum Lime called directly with the same SLIC mask and seed: "
                        "tests/test_methods_new.py::test_lime_equals_captum_lime_with_the_same_mask_and_seed",
    ))
    register(MethodSpec(
        name="kernel-shap", explain=lazy("xaibench_captum.superpixels:kernel_shap"), modalities=frozenset({"image"}),
        check=lazy("xaibench_captum.checks:params_check", True),
        needs_gradients=False, additive=True,
        description="Shapley values of superpixels switched to a baseline, by the Shapley-kernel weighted "
                    "regression (captum KernelShap); additive: the values sum to f(x) - f(baseline) (captum weights "
                    "the full and empty coalitions 1e6), spread per pixel; images only. " + SUPERPIXELS,
        citation="Lundberg & Lee, A Unified Approach to Interpreting Model Predictions, NeurIPS 2017, Sec. 4.1; "
                 "Achanta et al., SLIC Superpixels, IEEE TPAMI 2012",
        defaults={"n_samples": 0, "n_segments": 50, "compactness": 0.1, "baseline": "zero", "per_pixel": True},
        version="2",
        checked_against="additivity sum = f(x) - f(baseline) within the solver's tolerance, by hand: "
                        "tests/test_methods_new.py::test_kernel_shap_values_sum_to_the_output_change",
    ))
    register(MethodSpec(
        name="occlusion",
        check=lazy("xaibench_captum.checks:params_check", False),
        additive=True,
        explain=lazy("xaibench_captum.methods:occlusion"),
        modalities=both,
        description="output change when a sliding window is replaced by a fill: zero, mean, blur or noise (captum)",
        citation="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
        needs_gradients=False,
        defaults=OCCLUSION_DEFAULTS,
        checked_against="captum Occlusion called as is; by hand: exact patch effects of a linear model (completeness "
                        "error 0): tests/test_metrics.py::"
                        "test_exact_occlusion_effect_has_zero_completeness_error_and_perfect_sensitivity_n",
    ))
    register(MethodSpec(
        name="occlusion-incremental", explain=lazy("xaibench_captum.methods:occlusion_incremental"), modalities=both,
        check=lazy("xaibench_captum.checks:params_check", False),
        needs_gradients=False, additive=True,
        description="occlusion's maps by exact incremental inference: only the activations each patch changes are "
                    "recomputed from the cached unoccluded pass (Krypton)",
        citation="Nakandala, Kumar & Papakonstantinou, Incremental and Approximate Inference for Faster "
                 "Occlusion-based Deep CNN Explanations, SIGMOD 2019, Sec. 3; Zeiler & Fergus, ECCV 2014",
        defaults=OCCLUSION_DEFAULTS,
        checked_against="captum Occlusion, same windows, to 1e-5: tests/test_occlusion_incremental.py::"
                        "test_resnet18_equals_captum, tests/test_occlusion_incremental.py::test_vgg16_equals_captum; the "
                        "occlusion method with mean and noise fills: tests/test_occlusion_incremental.py::"
                        "test_equals_the_occlusion_method_with_mean_and_noise_fills",
    ))
    register(MethodSpec(
        name="feature-ablation", explain=lazy("xaibench_captum.methods:feature_ablation"), modalities=both,
        check=lazy("xaibench_captum.checks:params_check", False),
        needs_gradients=False, additive=True,
        description="output change when each patch of a grid is replaced by a fill (captum)",
        citation="captum FeatureAblation (Kokhlikyan et al., Captum, arXiv 2009.07896, 2020)",
        defaults={"patch": 8, "fill": "zero", "per_pixel": True},
        checked_against="captum FeatureAblation called as is; contract only: "
                        "tests/test_conformance.py::test_method_conforms_on_images[feature-ablation]",
    ))
