"""Pruning: exact sparsity, masks kept while fine-tuning, channel pruning that really shrinks a ResNet."""

from __future__ import annotations

import pytest
import torch

import deepatlas
from deepatlas.compress import prune as P
from deepatlas.compress.measure import footprint, prunable_weights
from deepatlas.compress.pipeline import prune_run
from deepatlas.errors import ConfigError
from deepatlas.registry import create_model
from tests.conftest import tiny_recipe


def _resnet() -> torch.nn.Module:
    return create_model("resnet20", layers=(1, 1, 1), in_channels=1, num_classes=10, input_size=16).eval()


@pytest.mark.parametrize("method", ["global", "layer"])
def test_unstructured_sparsity_is_exactly_as_requested(method: str) -> None:
    model = _resnet()
    P.unstructured(model, 0.6, method)
    layers = prunable_weights(model)
    assert not any(hasattr(m, "weight_orig") for _, m in layers)  # permanent: the state dict keeps its keys
    total = sum(m.weight.numel() for _, m in layers)
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    if method == "global":
        assert zeros == round(0.6 * total)
    else:  # every layer loses its own 60%
        for _, m in layers:
            assert int((m.weight == 0).sum()) == round(0.6 * m.weight.numel())
    assert footprint(model).sparsity == pytest.approx(zeros / total)


def test_global_pruning_removes_the_smallest_weights_over_all_layers() -> None:
    model = _resnet()
    weights = torch.cat([m.weight.detach().abs().flatten() for _, m in prunable_weights(model)])
    threshold = weights.sort().values[round(0.5 * weights.numel()) - 1]
    P.unstructured(model, 0.5, "global")
    kept = torch.cat([m.weight.detach().abs().flatten() for _, m in prunable_weights(model)])
    assert bool((kept[kept != 0] >= threshold).all())


def test_channel_pruning_builds_a_smaller_resnet_that_matches_the_kept_channels() -> None:
    model = _resnet()
    for m in model.modules():  # non-trivial batch-norm statistics, so slicing them wrongly would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    small, widths = P.channels(model, 0.5)
    assert widths == [8, 16, 32] and small.config.inner_widths == (8, 16, 32)
    before, after = sum(p.numel() for p in model.parameters()), sum(p.numel() for p in small.parameters())
    assert after < before * 0.8
    rebuilt = create_model("resnet20", layers=(1, 1, 1), in_channels=1, num_classes=10, input_size=16, inner_widths=(8, 16, 32))
    rebuilt.load_state_dict(small.state_dict())  # the smaller model loads from its own config
    x = torch.randn(3, 1, 16, 16)
    # removing a channel = zeroing it: the same network with those channels' bn1 output forced to zero
    masked = _resnet()
    masked.load_state_dict(model.state_dict())
    for (_, big), (_, sm) in zip(
        [(n, m) for n, m in masked.named_modules() if type(m).__name__ == "BasicBlock"],
        [(n, m) for n, m in small.named_modules() if type(m).__name__ == "BasicBlock"], strict=True,
    ):
        norms = big.conv1.weight.abs().sum(dim=(1, 2, 3))
        drop = norms.argsort()[: len(norms) - sm.conv1.out_channels]
        with torch.no_grad():
            big.bn1.weight[drop] = 0.0
            big.bn1.bias[drop] = 0.0
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), masked(x), atol=1e-5, rtol=1e-4)


def test_channel_pruning_refuses_other_models() -> None:
    with pytest.raises(ConfigError, match=r"--method channels: .*MLP is not one; use --method global"):
        P.channels(create_model("mlp", width=16), 0.5)


def test_schedule_reaches_the_target_geometrically() -> None:
    assert P.schedule(0.75, 2) == pytest.approx([0.5, 0.75])


def test_bad_amount_and_method_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"--prune: 1.5 is not a fraction"):
        P.check_amount(1.5)
    with pytest.raises(ConfigError, match=r"--method: 'glob'.*Did you mean 'global'"):
        P.check_method("glob")


def test_iterative_prune_and_fine_tune_keeps_the_sparsity_and_links_each_round() -> None:
    run = deepatlas.train("quickstart", tiny_recipe(**{"train.epochs": 1}), progress=False)
    rounds = prune_run(run.id, 0.75, rounds=2, finetune_epochs=1)
    assert [r.summary["lineage"]["parent"] for r in rounds] == [run.id, rounds[0].id]
    for r, target in zip(rounds, (0.5, 0.75), strict=True):
        s = r.summary
        assert s["status"] == "completed" and s["compression"]["sparsity"] == pytest.approx(target, abs=1e-3)
        assert s["eval"]["test"]["accuracy"] > 0.1
        assert set(s["compression"]["latency_ms"]) == set(s["compression"]["parent_latency_ms"]) == {"1", "64"}
    model = deepatlas.load(rounds[-1].id).model  # the fine-tuned weights kept their zeros
    assert footprint(model).sparsity == pytest.approx(0.75, abs=1e-3)
    from deepatlas.compress.lineage import chain

    assert [r.id for r in chain(rounds[-1])] == [run.id, rounds[0].id, rounds[1].id]
    result = deepatlas.api.compare_runs([rounds[-1].id], lineage=True)
    assert result["runs"] == [run.id, rounds[0].id, rounds[1].id]
    assert result["metrics"]["derived from"] == [None, run.id, rounds[0].id]
    m = result["metrics"]  # what each round cost and saved, beside the original (which has no compression record)
    assert m["sparsity"][1:] == [pytest.approx(0.5, abs=1e-3), pytest.approx(0.75, abs=1e-3)] and m["sparsity"][0] is None
    assert m["sparse_flops"][2] < m["sparse_flops"][1] < m["flops"][1]
    assert all(v > 0 for v in m["latency_ms_b64"][1:] + m["parent_latency_ms_b64"][1:])
