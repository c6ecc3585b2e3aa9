"""`deepatlas bench lstm` runs its three contenders side by side at a tiny size (timings are not asserted)."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from deepatlas.bench.lstm import LSTMBench, run
from deepatlas.cli import app


def test_bench_times_explicit_fused_and_torch() -> None:
    r = run(LSTMBench(input_size=8, hidden_size=8, num_layers=2, seq_len=5, batch_size=2, calls=1, rounds=2, warmup=1), torch.device("cpu"))
    for key in ("explicit_ms", "fused_ms", "torch_ms", "explicit_ratio", "fused_ratio"):
        assert r[key] > 0, key
    assert r["fused_ratio"] == r["torch_ms"] / r["fused_ms"]


def test_the_gru_and_rnn_benches_copy_torchs_weights_and_time_all_three() -> None:
    import pytest

    from deepatlas.errors import ConfigError

    for mode in ("gru", "rnn"):
        r = run(LSTMBench(mode=mode, input_size=8, hidden_size=8, num_layers=1, seq_len=4, batch_size=2, calls=1, rounds=1, warmup=1),
                torch.device("cpu"))
        assert r["explicit_ms"] > 0 and r["fused_ms"] > 0 and r["torch_ms"] > 0
    with pytest.raises(ConfigError, match="'lstn' is not a recurrent cell .allowed: rnn, lstm, gru"):
        run(LSTMBench(mode="lstn"), torch.device("cpu"))


def test_bench_gru_command_names_its_reference() -> None:
    result = CliRunner().invoke(app, ["bench", "lstm", "--mode", "gru", "--hidden-size", "8", "--seq-len", "4", "--batch-size", "2",
                                      "--calls", "1", "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert "torch.nn.GRU" in result.output and "GRU forward+backward" in result.output


def test_bench_lstm_command() -> None:
    result = CliRunner().invoke(app, ["bench", "lstm", "--hidden-size", "8", "--seq-len", "4", "--batch-size", "2", "--calls", "1", "--rounds", "1", "--bidirectional"])
    assert result.exit_code == 0, result.output
    assert "torch.nn.LSTM" in result.output and "ours, explicit" in result.output
