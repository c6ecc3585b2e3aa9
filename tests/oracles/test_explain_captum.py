"""Saliency, integrated gradients and Grad-CAM against Captum on the same models and inputs."""

from __future__ import annotations

import pytest
import torch

from deepatlas.explain import gradcam, integrated_gradients, last_feature_map, saliency
from deepatlas.registry import create_model

captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture(scope="module", params=["lenet5", "resnet20"])
def model_and_input(request):
    torch.manual_seed(0)
    kw = {"in_channels": 1, "num_classes": 10}
    model = create_model(request.param, **kw).double().eval()
    x = torch.randn(3, 1, 32, 32, dtype=torch.float64)
    return model, x


def test_saliency_equals_captum(model_and_input) -> None:
    model, x = model_and_input
    target = torch.tensor([1, 4, 7])
    ours = saliency(model, x, target)
    theirs = captum_attr.Saliency(model).attribute(x, target=target, abs=True)
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=1e-7)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_equal_captum_and_are_complete(model_and_input, method) -> None:
    model, x = model_and_input
    target = torch.tensor([2, 3, 9])
    baseline = torch.full_like(x[:1], -0.5)
    ours, delta = integrated_gradients(model, x, target, baseline=baseline, steps=32, method=method, batch=7)
    theirs, their_delta = captum_attr.IntegratedGradients(model).attribute(
        x, baselines=baseline.expand_as(x), target=target, n_steps=32, method=method, return_convergence_delta=True)
    if method == "riemann_trapezoid":
        # Captum's trapezoid weights are 1/n (halved at the ends), summing to (n - 1)/n; the rule's are 1/(n - 1).
        # Its alphas are float32 (torch.linspace(...).tolist()): compare at that precision.
        torch.testing.assert_close(ours, theirs * 32 / 31, atol=1e-6, rtol=1e-5)
        return
    torch.testing.assert_close(ours, theirs, atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(delta, their_delta, atol=1e-8, rtol=1e-6)
    if method == "gausslegendre":  # completeness: sum IG = S(x) - S(x') up to the quadrature error
        gap = (model(x) - model(baseline.expand_as(x))).gather(1, target[:, None]).squeeze(1)
        assert bool((delta.abs() <= 0.05 * gap.abs() + 1e-6).all())


def test_gradcam_equals_captum_on_the_last_feature_map(model_and_input) -> None:
    model, x = model_and_input
    target = torch.tensor([0, 5, 8])
    layer = last_feature_map(model, x)
    ours = gradcam(model, x, target, layer=layer, upsample=False)
    theirs = captum_attr.LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=1e-7)
    # upsampled like Captum's LayerAttribution.interpolate (bilinear)
    up = captum_attr.LayerAttribution.interpolate(theirs, x.shape[-2:], interpolate_mode="bilinear")
    torch.testing.assert_close(gradcam(model, x, target, layer=layer), up, atol=1e-10, rtol=1e-7)
    # a different class gives a different map: the comparison can fail
    assert not torch.allclose(gradcam(model, x, torch.tensor([1, 1, 1]), layer=layer, upsample=False), ours)
