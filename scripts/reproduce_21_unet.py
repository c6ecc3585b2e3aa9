"""Issue 21 reproduction: U-Net (Ronneberger et al. 2015) on the built-in synthetic shapes set.

    PYTHONPATH=src python scripts/reproduce_21_unet.py [--threads 1] [--set KEY=VALUE ...]

Trains the recipe ``unet-shapes`` as written (base width 16, depth 4: 1.94M parameters; 1,800
training, 200 validation and 500 test 64x64 images generated from data.seed 0) through the
engine, which evaluates the best checkpoint on the test split, and logs one markdown row for
docs/REPRODUCTIONS.md: test mean IoU, mean Dice and pixel accuracy beside the all-background
predictor's (the bar a network must beat), the parameter count, the wall-clock time and the command.
The same as ``deepatlas train unet-shapes train.threads=1``; the script only adds the baseline and
the row.
"""

from __future__ import annotations

import argparse
import logging
import time

import deepatlas
from deepatlas.data import load_dataset
from deepatlas.models import count_parameters
from deepatlas.predict import load

log = logging.getLogger("reproduce_21_unet")
RECIPE = "unet-shapes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the run (train.threads)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more recipe overrides")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    overrides = [f"train.threads={args.threads}", *args.set]
    start = time.perf_counter()
    run = deepatlas.train(RECIPE, overrides, progress=False)
    seconds = time.perf_counter() - start
    test = run.summary["eval"]["test"]
    masks = load_dataset(run.config.data).split("test").masks
    background = float((masks == 0).double().mean())
    classes = int(run.config.model.options.num_classes)
    params = count_parameters(load(run.id).model)
    command = f"deepatlas train {RECIPE} " + " ".join(overrides)
    log.info("run %s: %s", run.id, run.path)
    log.info("| model | data | test mean IoU | mean Dice | pixel acc. | all-background mIoU / pixel acc. | params | time | command |")
    log.info("|---|---|---|---|---|---|---|---|---|")
    log.info(
        "| U-Net (base %d, depth %d) | shapes (synthetic, 500 test images) | %.4f | %.4f | %.4f | %.4f / %.4f | %s | %.0f s | `%s` |",
        run.config.model.options.base_width, run.config.model.options.depth, test["mean_iou"], test["mean_dice"],
        test["pixel_accuracy"], background / classes, background, f"{params:,}", seconds, command,
    )


if __name__ == "__main__":
    main()
