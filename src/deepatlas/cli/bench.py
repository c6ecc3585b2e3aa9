"""``deepatlas bench``: our implementations against reference ones, side by side (``bench tune`` is in tune.py)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from ..errors import ConfigError
from .format import out, table

app = typer.Typer(help="Benchmarks against reference implementations, side by side.", no_args_is_help=True)

def threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"


NOISE_NOTE = "ratio > 1: ours is faster. Spread: (max - min) / median of the rounds, a noise gauge."
BF16 = typer.Option(None, "--bf16/--no-bf16", help="Time the bf16 autocast rows too (default: only where bf16 is "
                    "fast: CUDA, or a CPU with AMX or AVX-512 BF16).")


def _say_if_no_bf16(rows: list[dict], device: str, as_json: bool) -> None:
    if not as_json and rows and not any(r.get("precision") == "bf16 autocast" for r in rows):
        import torch

        from ..bench.common import bf16_skipped

        out.print(bf16_skipped(torch.device(device)), markup=False, soft_wrap=True)


@app.command("transformer")
def bench_transformer(
    n_layer: int = typer.Option(4, help="Layers."),
    n_head: int = typer.Option(4, help="Attention heads."),
    n_embd: int = typer.Option(128, help="Width."),
    block_size: int = typer.Option(64, help="Context length."),
    batch_size: int = typer.Option(12, help="Sequences per step."),
    calls: int = typer.Option(20, help="Training steps per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    bf16: Optional[bool] = BF16,
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Training throughput of our GPT vs Hugging Face GPT-2 at the same configuration (default: nanoGPT's CPU one)."""
    import torch

    from ..bench.transformer import TransformerBench, run

    config = TransformerBench(
        n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size, batch_size=batch_size,
        calls=calls, rounds=rounds, bf16=bf16,
    )
    rows = run(config, torch.device(device))
    _say_if_no_bf16(rows, device, as_json)
    title = f"GPT training step, {n_layer} layers x {n_embd} wide, batch {batch_size} x {block_size} tokens, {torch.get_num_threads()} threads"
    _print_side_by_side(rows, {"ours": "ours", "hf": "HF"}, "tokens", title, as_json)


def _print_side_by_side(
    rows: list[dict], sides: dict[str, str], unit: str, title: str, as_json: bool, lead: tuple[str, ...] = ("precision",),
) -> None:
    """The rows of bench.common.compare: throughput and MFU of each side, the ratio, the peak, the spread."""
    if as_json:
        out.print_json(json.dumps(rows))
        return
    names = list(sides)
    labels = list(sides.values())
    columns = (*lead, *(f"{label} {unit}/s" for label in labels), *([f"ours / {labels[1]}"] if len(names) > 1 else []),
               *(f"{label} MFU" for label in labels), "matmul peak GFLOP/s", "spread")
    result = table(columns, right=columns[len(lead):], title=title)
    for r in rows:
        present = [n for n in names if f"{n}_mfu" in r]
        result.add_row(
            *(str(r[k]) for k in lead),
            *(f"{r[f'{n}_{unit}_per_s']:,.0f}" if n in present else "-" for n in names),
            *([f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"] if len(names) > 1 else []),
            *(f"{r[f'{n}_mfu']:.1%}" if n in present else "-" for n in names),
            f"{r['peak_gflops']:,.0f}", f"{r['spread']:.0%}",
        )
    out.print(result)
    out.print(NOISE_NOTE)


@app.command("gnn")
def bench_gnn(
    dataset: list[str] = typer.Option(["cora", "citeseer", "synthetic"], "--dataset",
                                      help="Planetoid graphs and/or synthetic, the seeded dense-feature graph (repeat the option)."),
    model: list[str] = typer.Option(["gcn", "gat", "graphsage"], "--model", help="gcn, gat and/or graphsage (repeat the option)."),
    nodes: int = typer.Option(20_000, help="Nodes of the synthetic graph.", min=16),
    degree: int = typer.Option(10, help="Average degree of the synthetic graph.", min=1),
    features: int = typer.Option(256, help="Dense features of the synthetic graph.", min=1),
    calls: int = typer.Option(20, help="Training epochs per timed round.", min=1),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported).", min=1),
    warmup: int = typer.Option(5, help="Untimed epochs of each side first.", min=0),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Full-batch training epoch time of our GCN, GAT and GraphSAGE vs PyTorch Geometric's (Planetoid, synthetic).
    The goal column says whether a row reaches its goal ratio (docs/BENCHMARKS.md: 2x PyG for GAT on the
    synthetic graph, 1x elsewhere)."""
    from ..bench.gnn import MODELS, GNNBench, run

    allowed = ("cora", "citeseer", "pubmed", "synthetic")
    for d in dataset:
        if d not in allowed:
            raise ConfigError(f"--dataset: {d!r} is not benchmarked (allowed: {', '.join(allowed)}; pubmed needs its files "
                              "in $DEEPATLAS_DATA_DIR or a download).")
    for m in model:
        if m not in MODELS:
            raise ConfigError(f"--model: {m!r} is not benchmarked (allowed: {', '.join(MODELS)}).")
    import torch

    bench = GNNBench(datasets=tuple(dataset), models=tuple(model), calls=calls, rounds=rounds, warmup=warmup,
                     nodes=nodes, degree=degree, features=features)
    rows = run(bench, torch.device(device))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    columns = ("dataset", "model", "ours ms/epoch", "PyG ms/epoch", "PyG / ours", "goal", "spread")
    title = f"full-batch training epoch (forward, loss, backward, Adam), {torch.get_num_threads()} threads"
    result = table(columns, right=columns[2:], title=title)
    for r in rows:
        goal = "met" if r["ratio"] >= r["goal"] else f"below {r['goal']:.2f}x"
        result.add_row(r["dataset"], r["model"], f"{r['ours_ms']:.1f}", f"{r['pyg_ms']:.1f}", f"{r['ratio']:.2f}x",
                       goal, f"{r['spread']:.0%}")
    out.print(result)
    for about in dict.fromkeys(r["graph"] for r in rows):
        out.print(about, markup=False, soft_wrap=True)
    out.print(NOISE_NOTE)


@app.command("lstm")
def bench_lstm(
    mode: str = typer.Option("lstm", help="lstm, gru or rnn (the reference: torch.nn.LSTM, GRU or RNN)."),
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
    """Forward+backward time of our explicit and fused LSTM (GRU, RNN) vs torch.nn.LSTM (GRU, RNN), same weights."""
    import torch

    from ..bench.lstm import LSTMBench, run

    config = LSTMBench(
        mode=mode, input_size=hidden_size, hidden_size=hidden_size, num_layers=num_layers, seq_len=seq_len, batch_size=batch_size,
        bidirectional=bidirectional, calls=calls, rounds=rounds,
    )
    r = run(config, torch.device(device))
    if as_json:
        out.print_json(json.dumps(r))
        return
    columns = ("path", "ms/step", "torch / ours", "spread")
    reference = {"lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU", "rnn": "torch.nn.RNN"}[mode]
    title = (f"{mode.upper()} forward+backward, {num_layers} layers x {hidden_size}{' bidirectional' if bidirectional else ''}, "
             f"batch {batch_size} x {seq_len} steps, {torch.get_num_threads()} threads")
    result = table(columns, right=columns[1:], title=title)
    result.add_row("ours, explicit", f"{r['explicit_ms']:.2f}", f"{r['explicit_ratio']:.2f}x", f"{r['spread']:.0%}")
    result.add_row("ours, fused", f"{r['fused_ms']:.2f}", f"{r['fused_ratio']:.2f}x", "")
    result.add_row(reference, f"{r['torch_ms']:.2f}", "1.00x", "")
    out.print(result)
    out.print(NOISE_NOTE)


@app.command("precision")
def bench_precision(
    gpt_batch: list[int] = typer.Option([3, 12, 48], "--gpt-batch", help="Sequences of 64 tokens per GPT step (repeat the option).", min=1),
    wide_gpt_batch: list[int] = typer.Option([2, 8], "--wide-gpt-batch",
                                             help="Sequences per step of the same GPT 256 wide (repeat the option).", min=1),
    resnet_batch: list[int] = typer.Option([8, 32, 128], "--resnet-batch", help="32x32 images per ResNet-20 step (repeat the option).", min=1),
    unet_batch: list[int] = typer.Option([16, 64], "--unet-batch", help="28x28 images per DDPM UNet step (repeat the option).", min=1),
    calls: int = typer.Option(3, help="Training steps per timed round.", min=1),
    rounds: int = typer.Option(3, help="Alternating rounds (the median is reported).", min=1),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Where bf16 autocast pays here: float32 against bf16 training steps by the work per step, and train.precision=auto's pick."""
    import torch

    from ..bench.precision import PrecisionBench, describe, run

    dev = torch.device(device)
    rows = run(PrecisionBench(gpt_batches=tuple(gpt_batch), wide_gpt_batches=tuple(wide_gpt_batch), resnet_batches=tuple(resnet_batch), unet_batches=tuple(unet_batch),
                               calls=calls, rounds=rounds), dev)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    columns = ("model", "batch", "GFLOP/step", "float32 /s", "bf16 /s", "bf16 speed-up", "auto picks", "right?", "spread")
    result = table(columns, right=columns[1:], title=f"float32 against bf16 autocast, {threads(torch.get_num_threads())}; {describe(dev)}")
    for r in rows:
        result.add_row(r["model"], str(r["batch"]), f"{r['gflop_per_step']:.1f}", f"{r['fp32_per_s']:,.0f} {r['unit']}",
                       f"{r['bf16_per_s']:,.0f}", f"{r['bf16_speedup']:.2f}x", r["auto"],
                       "even" if r["even"] else "yes" if r["agrees"] else "no",
                       f"{r['spread']:.0%}")
    out.print(result)
    out.print("bf16 speed-up > 1: bf16 trains faster. 'right?': auto picked the faster precision ('even': within 3%, "
              "either is as fast).")


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


@app.command("bert")
def bench_bert(
    n_layer: int = typer.Option(4, help="Layers."),
    n_head: int = typer.Option(4, help="Attention heads."),
    hidden: int = typer.Option(128, help="Width."),
    intermediate: int = typer.Option(512, help="Feed-forward width."),
    seq_len: int = typer.Option(128, help="Tokens per sequence."),
    batch_size: int = typer.Option(32, help="Sequences per step."),
    calls: int = typer.Option(5, help="Training steps per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    bf16: Optional[bool] = BF16,
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Masked-LM training throughput of our BERT vs Hugging Face's BertModel (BertForMaskedLM), same configuration."""
    import torch

    from ..bench.bert import BertBench, run

    b = BertBench(n_layer=n_layer, n_head=n_head, hidden=hidden, intermediate=intermediate, seq_len=seq_len,
                  batch_size=batch_size, calls=calls, rounds=rounds, bf16=bf16)
    title = (f"BERT masked-LM step (AdamW), {n_layer} layers x {hidden} wide, batch {batch_size} x {seq_len} tokens, "
             f"{torch.get_num_threads()} threads")
    rows = run(b, torch.device(device))
    _say_if_no_bf16(rows, device, as_json)
    _print_side_by_side(rows, {"ours": "ours", "hf": "HF"}, "tokens", title, as_json)


@app.command("unet")
def bench_unet(
    width: int = typer.Option(16, help="Channels at full resolution (the ddpm-fashion-mnist recipe's)."),
    batch_size: int = typer.Option(64, help="Images per step."),
    input_size: int = typer.Option(28, help="Image side."),
    calls: int = typer.Option(5, help="Training steps per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    bf16: Optional[bool] = BF16,
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """DDPM training step of our UNet + scheduler vs diffusers' UNet2DModel + DDPMScheduler, same configuration."""
    import torch

    from ..bench.unet import UNetBench, param_counts, run

    b = UNetBench(width=width, batch_size=batch_size, input_size=input_size, calls=calls, rounds=rounds, bf16=bf16)
    counts = param_counts(b)
    title = (f"DDPM UNet step (AdamW), {width}/{2 * width}/{2 * width} channels, attention at 7x7, batch {batch_size} x "
             f"{input_size}x{input_size}, parameters ours {counts['ours']:,} / diffusers {counts['diffusers']:,}, "
             f"{torch.get_num_threads()} threads")
    rows = run(b, torch.device(device))
    _say_if_no_bf16(rows, device, as_json)
    _print_side_by_side(rows, {"ours": "ours", "diffusers": "diffusers"}, "images", title, as_json)


@app.command("resnet")
def bench_resnet(
    model: list[str] = typer.Option(list(("resnet20", "resnet20-b", "resnet18", "resnet50")), "--model",
                                    help="resnet20, resnet20-b, resnet18, resnet50 (repeat the option)."),
    image_size: int = typer.Option(224, help="Image side of ResNet-18/50 (the CIFAR models take 32)."),
    batch_size: int = typer.Option(8, help="Images per step of ResNet-18/50."),
    cifar_batch_size: int = typer.Option(128, help="Images per step of the CIFAR models."),
    calls: int = typer.Option(3, help="Training steps per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    bf16: Optional[bool] = BF16,
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Training throughput of our ResNet-20 (CIFAR) and ResNet-18/50 vs torchvision.models (where torchvision imports)."""
    from ..bench.resnet import MODELS, ResNetBench, run, torchvision_missing

    for m in model:
        if m not in MODELS:
            raise ConfigError(f"--model: {m!r} is not benchmarked (allowed: {', '.join(MODELS)}).")
    import torch

    b = ResNetBench(models=tuple(model), image_size=image_size, batch_size=batch_size, cifar_batch_size=cifar_batch_size,
                    calls=calls, rounds=rounds, bf16=bf16)
    missing = torchvision_missing()
    if missing and not as_json:
        out.print(missing, markup=False, soft_wrap=True)
    title = f"ResNet training step (SGD), {torch.get_num_threads()} threads"
    rows = run(b, torch.device(device))
    _say_if_no_bf16(rows, device, as_json)
    _print_side_by_side(rows, {"ours": "ours", "torchvision": "torchvision"}, "images", title,
                        as_json, lead=("model", "precision"))


@app.command("data")
def bench_data(
    limit: int = typer.Option(None, help="Use only this many Fashion-MNIST training images."),
    batch_size: int = typer.Option(None, help="One batch size for every pipeline and model (default: the recipes')."),
    calls: int = typer.Option(5, help="Batches (or training steps) per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Images/s our augmenting pipelines deliver vs images/s ResNet-20, ViT, MLP and SimCLR consume in training (goal 5x)."""
    import torch

    from ..bench.data import GOAL, DataBench, run

    rows = run(DataBench(limit=limit, batch_size=batch_size, calls=calls, rounds=rounds), torch.device(device))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    columns = ("pipeline", "consumer (its training step)", "delivered images/s", "consumed images/s", "delivered / consumed", "spread")
    result = table(columns, right=columns[2:], title=f"input pipelines against training, goal >= {GOAL:.0f}x, {torch.get_num_threads()} threads")
    for r in rows:
        result.add_row(r["pipeline"], f"{r['consumer']} ({r['setup']})", f"{r['delivered_images_per_s']:,.0f}",
                       f"{r['consumed_images_per_s']:,.0f}", f"{r['ratio']:.1f}x" + ("" if r["goal_met"] else " (below goal)"),
                       f"{r['spread']:.0%}")
    out.print(result)


@app.command("all")
def bench_all(
    family: list[str] = typer.Option([], "--family", help="Families of table (a) (repeat; default: all)."),
    defaults_family: list[str] = typer.Option([], "--defaults-family", help="Families of table (b) (repeat; default: gpt, gpt-6x384, bert, unet, resnet20-b, resnet18)."),
    extras: bool = typer.Option(True, help="Table (a) also runs bench gnn (Cora, synthetic) and bench lstm."),
    loss_steps: int = typer.Option(30, help="Steps of the short training runs of table (b) (0: none)."),
    compile: bool = typer.Option(False, "--compile", help="Our defaults with torch.compile."),
    calls: int = typer.Option(3, help="Training steps per timed round."),
    rounds: int = typer.Option(5, help="Alternating rounds (the median is reported)."),
    warmup: int = typer.Option(3, help="Untimed steps of each side first."),
    peak_n: int = typer.Option(2048, help="Side of the square matmul that measures the machine's peak."),
    bf16: Optional[bool] = BF16,
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Every family against its reference: (a) the same settings on both sides, (b) each side's defaults, with final losses."""
    from ..bench.suite import FAMILIES, TABLE_B, Suite, run

    for name in (*family, *defaults_family):
        if name not in FAMILIES:
            raise ConfigError(f"--family: {name!r} is not benchmarked (allowed: {', '.join(FAMILIES)}).")
    import torch

    suite = Suite(families=tuple(family) or tuple(FAMILIES), defaults_families=tuple(defaults_family) or TABLE_B,
                  extras=extras, loss_steps=loss_steps, compile=compile, calls=calls, rounds=rounds, warmup=warmup, peak_n=peak_n,
                  bf16=bf16)
    result = run(suite, torch.device(device), say=lambda line: None if as_json else out.print(f"running {line}", style="dim"))
    if as_json:
        out.print_json(json.dumps(result))
        return
    for line in result["skipped"]:
        out.print(line, markup=False, soft_wrap=True)
    threads = torch.get_num_threads()
    for key, title in (("same", f"(a) same settings on both sides (goal >= 1.00x; GAT on the synthetic graph 2.00x), {threads} threads"),
                       ("defaults", f"(b) each side's defaults (goal >= 1.30x for GPT, UNet, ResNet), {threads} threads")):
        columns = ("family", "reference", "settings", "ours /s", "reference /s", "ratio", "goal", "ours MFU", "spread",
                   *(("final loss ours / reference (noise)",) if key == "defaults" else ()))
        rows = table(columns, right=columns[3:], title=title)
        for r in result[key]:
            if "skipped" in r:
                rows.add_row(r["family"], "-", r["skipped"], *["-"] * (len(columns) - 3))
                continue
            ratio = r["ratio"]
            cells = [r["family"], r["reference"] or "- (ours alone)", r["setting"], f"{r['ours_per_s']:,.1f} {r['unit']}",
                     f"{r['reference_per_s']:,.1f}" if r["reference_per_s"] else "-",
                     f"{ratio:.2f}x" if ratio is not None else "-",
                     ("met" if ratio >= r["goal"] else f"below {r['goal']:.2f}x") if ratio is not None else "-",
                     f"{r['ours_mfu']:.1%}" if r["ours_mfu"] is not None else "-", f"{r['spread']:.0%}"]
            if key == "defaults":
                loss = r.get("loss")
                cells.append("-" if not loss else " / ".join(f"{v:.3f}" for v in loss["means"].values())
                             + f" ({loss['noise']:.3f}){'' if loss['equal'] else ' differ'}")
            rows.add_row(*cells)
        out.print(rows)
    out.print("reference defaults: " + "; ".join(f"{k}: {v}" for k, v in result["reference_defaults"].items()), markup=False, soft_wrap=True)
    out.print(NOISE_NOTE + " Final loss: the mean of the last 5 steps, averaged over 2 seeds; noise: the largest "
              "seed-to-seed difference of one side; 'differ' where the sides differ by more than twice that.")
