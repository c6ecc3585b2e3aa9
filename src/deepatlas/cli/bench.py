"""``deepatlas bench``: our implementations against reference ones, side by side (``bench tune`` is in tune.py)."""

from __future__ import annotations

import json

import typer

from ..errors import ConfigError
from .format import out, table

app = typer.Typer(help="Benchmarks against reference implementations, side by side.", no_args_is_help=True)

NOISE_NOTE = "ratio > 1: ours is faster. Spread: (max - min) / median of the rounds, a noise gauge."


@app.command("transformer")
def bench_transformer(
    n_layer: int = typer.Option(4, help="Layers."),
    n_head: int = typer.Option(4, help="Attention heads."),
    n_embd: int = typer.Option(128, help="Width."),
    block_size: int = typer.Option(64, help="Context length."),
    batch_size: int = typer.Option(12, help="Sequences per step."),
    calls: int = typer.Option(20, help="Training steps per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Training throughput of our GPT vs Hugging Face GPT-2 at the same configuration (default: nanoGPT's CPU one)."""
    import torch

    from ..bench.transformer import TransformerBench, run

    config = TransformerBench(
        n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size, batch_size=batch_size,
        calls=calls, rounds=rounds,
    )
    rows = run(config, torch.device(device))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    columns = ("precision", "ours tokens/s", "HF tokens/s", "ours / HF", "ours MFU", "HF MFU", "matmul peak GFLOP/s", "spread")
    title = f"GPT training step, {n_layer} layers x {n_embd} wide, batch {batch_size} x {block_size} tokens, {torch.get_num_threads()} threads"
    result = table(columns, right=columns[1:], title=title)
    for r in rows:
        result.add_row(
            r["precision"], f"{r['ours_tokens_per_s']:,.0f}", f"{r['hf_tokens_per_s']:,.0f}", f"{r['ratio']:.2f}x",
            f"{r['ours_mfu']:.1%}", f"{r['hf_mfu']:.1%}", f"{r['peak_gflops']:,.0f}", f"{r['spread']:.0%}",
        )
    out.print(result)
    out.print(NOISE_NOTE)


@app.command("gnn")
def bench_gnn(
    dataset: list[str] = typer.Option(["cora", "citeseer"], "--dataset", help="Planetoid graphs (repeat the option)."),
    model: list[str] = typer.Option(["gcn", "gat"], "--model", help="gcn and/or gat (repeat the option)."),
    calls: int = typer.Option(20, help="Training epochs per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Full-batch training epoch time of our GCN and GAT vs PyTorch Geometric's on Planetoid graphs."""
    for m in model:
        if m not in ("gcn", "gat"):
            raise ConfigError(f"--model: {m!r} is not benchmarked (allowed: gcn, gat).")
    import torch

    from ..bench.gnn import GNNBench, run

    rows = run(GNNBench(datasets=tuple(dataset), models=tuple(model), calls=calls, rounds=rounds), torch.device(device))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    columns = ("dataset", "model", "ours ms/epoch", "PyG ms/epoch", "PyG / ours", "spread")
    title = f"full-batch training epoch (forward, loss, backward, Adam), {torch.get_num_threads()} threads"
    result = table(columns, right=columns[2:], title=title)
    for r in rows:
        result.add_row(r["dataset"], r["model"], f"{r['ours_ms']:.1f}", f"{r['pyg_ms']:.1f}", f"{r['ratio']:.2f}x", f"{r['spread']:.0%}")
    out.print(result)
    out.print(NOISE_NOTE)


@app.command("lstm")
def bench_lstm(
    hidden_size: int = typer.Option(220, help="Input and hidden width (lstm-char's)."),
    num_layers: int = typer.Option(2, help="Layers."),
    seq_len: int = typer.Option(64, help="Steps per sequence."),
    batch_size: int = typer.Option(12, help="Sequences per batch."),
    bidirectional: bool = typer.Option(False, help="Both directions."),
    calls: int = typer.Option(10, help="Forward+backward steps per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Forward+backward time of our explicit and fused LSTM vs torch.nn.LSTM, same weights."""
    import torch

    from ..bench.lstm import LSTMBench, run

    config = LSTMBench(
        input_size=hidden_size, hidden_size=hidden_size, num_layers=num_layers, seq_len=seq_len, batch_size=batch_size,
        bidirectional=bidirectional, calls=calls, rounds=rounds,
    )
    r = run(config, torch.device(device))
    if as_json:
        out.print_json(json.dumps(r))
        return
    columns = ("path", "ms/step", "torch / ours", "spread")
    title = (f"LSTM forward+backward, {num_layers} layers x {hidden_size}{' bidirectional' if bidirectional else ''}, "
             f"batch {batch_size} x {seq_len} steps, {torch.get_num_threads()} threads")
    result = table(columns, right=columns[1:], title=title)
    result.add_row("ours, explicit", f"{r['explicit_ms']:.2f}", f"{r['explicit_ratio']:.2f}x", f"{r['spread']:.0%}")
    result.add_row("ours, fused", f"{r['fused_ms']:.2f}", f"{r['fused_ratio']:.2f}x", "")
    result.add_row("torch.nn.LSTM", f"{r['torch_ms']:.2f}", "1.00x", "")
    out.print(result)
    out.print(NOISE_NOTE)


@app.command("threads")
def bench_threads(
    recipe: list[str] = typer.Option([], "--recipe", help="Recipes to time (repeat; default: every built-in training recipe)."),
    repeats: int = typer.Option(3, help="Alternating rounds of 1, 2 and the default thread count."),
    seconds: float = typer.Option(1.5, help="Seconds of timed steps per setting and round."),
) -> None:
    """Seconds per training step at 1 and 2 threads and at the default (threads: null), alternating; ratios to the best."""
    from ..bench.threads import SEARCH_ONLY, conditions, measure, table
    from ..config import list_recipes

    names = list(recipe) or [r for r in list_recipes() if r not in SEARCH_ONLY]
    results = [measure(name, ("1", "2", "auto"), repeats=repeats, seconds=seconds, warmup=2) for name in names]
    out.print(table(results), markup=False, soft_wrap=True)
    out.print(f"conditions: {json.dumps(conditions())}", markup=False, soft_wrap=True)


@app.command("checkpoint")
def bench_checkpoint(
    model: str = typer.Option("resnet50", "--model", help="A registered model whose checkpoint is timed."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """What the checkpoint content hash costs: save and load without a hash, with sha256 and with blake2b."""
    from ..bench.checkpoint import checkpoint_hash_cost

    result = checkpoint_hash_cost(model, rounds=rounds)
    if as_json:
        out.print_json(json.dumps(result))
        return
    rows = table(("", *result["save"]), title=f"{model} checkpoint, {result['params']:,} parameters, {result['mb']:.1f} MB")
    for kind in ("save", "load"):
        rows.add_row(kind, *(f"{v['ms']:.1f} ms (x{v['ratio']:.2f})" for v in result[kind].values()))
    out.print(rows)
