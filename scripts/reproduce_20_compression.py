"""Issue 20 reproduction: the Fashion-MNIST ResNet-20 and its compressed versions, measured side by side.

    DEEPATLAS_DATA_DIR=/work/shared/data PYTHONPATH=src python scripts/reproduce_20_compression.py \
        [--epochs 10] [--teacher RUN] [--finetune-epochs 2] [--threads 1] [--repeats 30] [--set KEY=VALUE ...]

Every step is a run of the run store linked to its parent (``deepatlas runs compare LAST --lineage``):

1. the teacher: recipe ``resnet20-fashion-mnist`` with ``train.epochs=--epochs`` (or ``--teacher RUN``);
2. a student at a quarter of the parameters (ResNet-20 at widths 8-16-32, stem 8: 67,906 against
   269,722), distilled from the teacher (task ``distillation``, T = 4, alpha = 0.9) for the same epochs,
   and the same student trained on the labels alone (what distillation adds);
3. 50% and 80% global magnitude pruning of the teacher, each fine-tuned ``--finetune-epochs`` epochs
   (``deepatlas compress RUN --prune 0.5 --finetune-epochs 2``);
4. int8: static post-training quantization calibrated on 8 training batches, and quantization-aware
   training for one epoch (``deepatlas quantize RUN --mode static|qat``), x86 backend.

The table is measured here, the same way for every row: test accuracy of the network (fp32 or int8, eval,
CPU) on the 10,000 test images; parameters; the serialized state dict's bytes (and gzip-compressed, what
unstructured zeros save); forward FLOPs per image (dense, and at each layer's weight density); and CPU
latency, the median of ``--repeats`` forward passes at batch 1 and 64 on ``--threads`` threads, the rows
timed in turn round by round so that a machine that gets busier slows them all alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

import deepatlas
from deepatlas.build import load_trained_model, run_task
from deepatlas.compress import measure
from deepatlas.compress.pipeline import prune_run, quantize_run
from deepatlas.data import load_dataset

log = logging.getLogger("reproduce_20_compression")
RECIPE = "resnet20-fashion-mnist"
STUDENT = ["model.widths=[8,16,32]", "model.stem_width=8"]


def _timed(label: str, fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    log.info("%s: %.0f s", label, seconds)
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the teacher and the students (recipe: 40)")
    parser.add_argument("--teacher", help="an already trained teacher run (skips step 1)")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads while timing latency")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for the trained runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    epochs = [f"train.epochs={args.epochs}", *args.set]

    rows: list[tuple[str, Any, float]] = []  # (name, run, seconds of its step)
    if args.teacher:
        teacher = deepatlas.open_run(args.teacher)
        rows.append(("original ResNet-20", teacher, float((teacher.summary.get("time") or {}).get("wall_s") or 0.0)))
    else:
        teacher, s = _timed("teacher", lambda: deepatlas.train(RECIPE, epochs, progress=False))
        rows.append(("original ResNet-20", teacher, s))
    distilled, s = _timed("distilled student", lambda: deepatlas.train(
        RECIPE, [*epochs, *STUDENT, "task.name=distillation", f"task.teacher={teacher.id}"], progress=False))
    rows.append(("distilled student (1/4 parameters)", distilled, s))
    alone, s = _timed("student on labels", lambda: deepatlas.train(RECIPE, [*epochs, *STUDENT], progress=False))
    rows.append(("same student, labels only", alone, s))
    for amount in (0.5, 0.8):
        (pruned,), s = _timed(f"prune {amount}", lambda a=amount: prune_run(teacher.id, a, finetune_epochs=args.finetune_epochs))
        rows.append((f"{round(100 * amount)}% pruned, fine-tuned {args.finetune_epochs} epochs", pruned, s))
    int8, s = _timed("int8 static", lambda: quantize_run(teacher.id, "static"))
    rows.append(("int8 static (calibrated)", int8, s))
    qat, s = _timed("int8 qat", lambda: quantize_run(teacher.id, "qat", qat_epochs=1))
    rows.append(("int8 QAT (1 epoch)", qat, s))

    data = load_dataset(teacher.config.data, state_dir=teacher.path)  # every row shares the teacher's data
    test_images = torch.cat([b[0] for b in data.eval_batches("test", torch.device("cpu"))])
    networks: dict[str, torch.nn.Module] = {}
    table: list[dict[str, Any]] = []
    float_flops: tuple[float | None, float | None] = (None, None)
    for name, run, seconds in rows:
        task = run_task(run)
        model, _, _, _ = load_trained_model(run, run.config, task, "best")
        model = model.cpu().float().eval()
        accuracy = measure.evaluate(model, task, data)["accuracy"]
        quantized = (run.summary.get("lineage") or {}).get("kind") == "quantize"
        fp = measure.footprint(model, None if quantized else (test_images[:2],),
                               params=(run.summary.get("params") or {}).get("total"))
        flops = (fp.flops, fp.sparse_flops) if not quantized else float_flops
        if name.startswith("original"):
            float_flops = flops
        networks[name] = model
        table.append({"name": name, "run": run.id, "accuracy": accuracy, "params": fp.params, "sparsity": fp.sparsity,
                      "size_bytes": fp.size_bytes, "size_gzip_bytes": fp.size_gzip_bytes, "flops": flops[0],
                      "sparse_flops": flops[1], "step_s": seconds})
        log.info("%s: accuracy %.4f (%s)", name, accuracy, run.id)

    times = measure.latency(networks, lambda n: (test_images[:n],), (1, 64), repeats=args.repeats, threads=args.threads)
    base = table[0]
    log.info("\n| model | run | test accuracy | change | parameters | sparsity | size MB (gzip) | MFLOPs (sparse) "
             "| ms batch 1 | ms batch 64 | speed-up at 64 | step time |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in table:
        row["ms_1"], row["ms_64"] = times[row["name"]][1], times[row["name"]][64]
        mf = f"{row['flops'] / 1e6:.1f} ({row['sparse_flops'] / 1e6:.1f})" if row["flops"] else "-"
        log.info("| %s | %s | %.4f | %+.2f | %s | %.2f | %.3f (%.3f) | %s | %.2f | %.1f | %.2fx | %.0f s |",
                 row["name"], row["run"], row["accuracy"], 100 * (row["accuracy"] - base["accuracy"]), f"{row['params']:,}",
                 row["sparsity"], row["size_bytes"] / 1e6, row["size_gzip_bytes"] / 1e6, mf, row["ms_1"], row["ms_64"],
                 base["ms_64"] / row["ms_64"], row["step_s"])
    if args.out:
        args.out.write_text(json.dumps(table, indent=2))
    log.info("the chain: deepatlas runs compare %s --lineage", rows[-1][1].id)


if __name__ == "__main__":
    main()
