"""Window forecasters: shapes, the N-BEATS doubly residual recursion, weight sharing, data-bound keys."""

from __future__ import annotations

import numpy as np
import torch

from deepatlas.models.base import DATA_BOUND_FIELDS
from deepatlas.models.forecast import BasisBlock, NBeats, fourier_basis
from deepatlas.registry import create_model


def test_shapes_with_covariates() -> None:
    x = torch.randn(5, 10, 3)
    for name in ("mlp-forecaster", "nbeats"):
        model = create_model(name, context=10, input_size=3, num_outputs=8, width=16)
        assert model(x).shape == (5, 8)


def test_nbeats_is_doubly_residual() -> None:
    torch.manual_seed(0)
    model: NBeats = create_model("nbeats", context=6, input_size=1, num_outputs=4, stacks=2, blocks=2, layers=2, width=8, theta=3)
    x = torch.randn(2, 6, 1)
    residual, total = x.flatten(1), torch.zeros(2, 4)
    for i, block in enumerate(model.blocks):  # eq. 4: x_{l+1} = x_l - xhat_l, yhat = sum_l yhat_l
        h = block.fc(residual)
        if i < 3:
            residual = residual - block.basis_b(block.theta_b(h))
        total = total + block.basis_f(block.theta_f(h))
    assert model.blocks[3].basis_b is None  # the last backcast feeds nothing
    torch.testing.assert_close(model(x), total)
    # a block sees the residual, not the input: changing the first block's backcast changes the later forecasts
    with torch.no_grad():
        model.blocks[0].basis_b.bias.add_(1.0)
    assert not torch.allclose(model(x), total)


def test_nbeats_shared_weights_within_a_stack() -> None:
    shared = create_model("nbeats", context=6, num_outputs=4, stacks=2, blocks=3, width=8, share_weights=True)
    free = create_model("nbeats", context=6, num_outputs=4, stacks=2, blocks=3, width=8)
    assert shared.blocks[0] is shared.blocks[2] and shared.blocks[0] is not shared.blocks[3]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 3 * count(shared) == count(free) + count(free.blocks[0].basis_b) + count(free.blocks[0].theta_b)


def test_window_length_is_data_bound() -> None:
    assert {"context", "input_size", "num_outputs"} <= set(DATA_BOUND_FIELDS)


def test_interpretable_trend_stack_forecasts_a_polynomial_per_level() -> None:
    torch.manual_seed(0)
    model = create_model("nbeats-interpretable", context=10, horizon=8, num_outputs=16, stacks=1, blocks=2, width=8, degree=2)
    f = model(torch.randn(3, 10, 1)).detach().double().reshape(3, 8, 2)  # (B, H, Q): the task's layout
    t = np.arange(8) / 8
    for b in range(3):
        for q in range(2):
            coef = np.polyfit(t, f[b, :, q].numpy(), 2)
            np.testing.assert_allclose(np.polyval(coef, t), f[b, :, q].numpy(), atol=1e-5)
    assert not torch.allclose(f[..., 0], f[..., 1])


def test_interpretable_seasonality_stack_is_in_the_fourier_span() -> None:
    torch.manual_seed(0)
    model = create_model("nbeats-interpretable", context=12, horizon=12, num_outputs=12, stacks=2, blocks=1, width=8)
    x = torch.randn(2, 12, 1)
    backcast, _ = model.blocks[0](x.flatten(1))
    _, season = model.blocks[1](x.flatten(1) - backcast)
    basis = fourier_basis(12, 12, 12).double().numpy()  # (1 + 2 * 5, 12)
    assert basis.shape == (11, 12)
    coef, *_ = np.linalg.lstsq(basis.T, season.detach().double().numpy().T, rcond=None)
    np.testing.assert_allclose(basis.T @ coef, season.detach().double().numpy().T, atol=1e-5)
    assert isinstance(model.blocks[1], BasisBlock) and model.blocks[1].theta_b is None  # the last block: no backcast


def test_encoder_and_transformer_forecasters_shapes_with_covariates() -> None:
    x = torch.randn(5, 10, 3)
    for name in ("lstm-forecaster", "gru-forecaster", "transformer-forecaster"):
        model = create_model(name, context=10, input_size=3, num_outputs=8)
        assert model(x).shape == (5, 8), name


def test_recurrent_forecaster_is_the_last_state_of_torch_lstm_through_a_linear_head() -> None:
    torch.manual_seed(0)
    model = create_model("lstm-forecaster", context=7, input_size=2, num_outputs=4, hidden=5, layers=2)
    ref = torch.nn.LSTM(2, 5, 2, batch_first=True)
    ref.load_state_dict({k.removeprefix("rnn."): v for k, v in model.state_dict().items() if k.startswith("rnn.")})
    x = torch.randn(3, 7, 2)
    out, _ = ref(x)
    torch.testing.assert_close(model(x), model.head(out[:, -1]), atol=1e-6, rtol=1e-5)


def test_patchtst_patches_pad_the_end_and_are_step_major() -> None:
    model = create_model("transformer-forecaster", context=5, input_size=2, num_outputs=3, patch_len=2, stride=2,
                         d_model=8, n_head=2, d_ff=16, n_layer=1)
    assert model.patches == 3  # floor((5 - 2) / 2) + 2
    x = torch.arange(10, dtype=torch.float32).reshape(1, 5, 2)  # step t: (2t, 2t + 1)
    p = model.patchify(x)
    assert p.shape == (1, 3, 4)
    torch.testing.assert_close(p[0], torch.tensor([[0.0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]]))  # the last step repeated


def test_patchtst_positions_matter_and_patch_length_is_checked() -> None:
    from deepatlas.errors import ConfigError

    torch.manual_seed(0)
    model = create_model("transformer-forecaster", context=12, num_outputs=3, patch_len=4, stride=4, d_model=8, n_head=2,
                         d_ff=16, n_layer=1, dropout=0.0).eval()
    x = torch.randn(2, 12, 1)
    swapped = torch.cat([x[:, 4:8], x[:, :4], x[:, 8:]], dim=1)  # two patches exchanged
    assert not torch.allclose(model(x), model(swapped), atol=1e-4)
    import pytest

    with pytest.raises(ConfigError, match="patch_len"):
        create_model("transformer-forecaster", context=4, patch_len=6)
