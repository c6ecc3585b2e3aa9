"""The segmentation task: soft Dice / IoU losses against hand-computed values, mean IoU against a direct
per-class computation, the ignore index, and a tiny U-Net trained end to end that beats the all-background
predictor on held-out images and predicts label maps from raw pixels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import deepatlas
from deepatlas.config import load_recipe
from deepatlas.errors import ConfigError
from deepatlas.registry import TASKS, create_model
from deepatlas.tasks.base import accumulate
from deepatlas.tasks.segmentation import SegmentationConfig, soft_dice_loss, soft_iou_loss

LN3 = math.log(3.0)


def two_pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes, pixels p = (0.75, 0.25) and (0.5, 0.5), labels 0 and 1, plus a third pixel labelled 255."""
    logits = torch.tensor([[LN3, 0.0, 5.0], [0.0, 0.0, -5.0]])[None, :, None, :]  # (1, 2, 1, 3)
    return logits, torch.tensor([[[0, 1, 255]]])


def test_soft_dice_loss_by_hand() -> None:
    logits, target = two_pixels()
    # class 0: I = 0.75, P = 1.25, G = 1 -> 1.5 / 2.25; class 1: I = 0.5, P = 0.75, G = 1 -> 1 / 1.75
    assert soft_dice_loss(logits, target, smooth=0.0, ignore_index=255).item() == pytest.approx(1 - (2 / 3 + 4 / 7) / 2)
    # with s = 1: (2 I + 1) / (P + G + 1)
    assert soft_dice_loss(logits, target, smooth=1.0, ignore_index=255).item() == pytest.approx(1 - (2.5 / 3.25 + 2 / 2.75) / 2)
    # without the ignore index the third pixel counts as class 1 (label 255 is not one-hot: use a real label)
    target1 = torch.tensor([[[0, 1, 1]]])
    p3 = torch.softmax(torch.tensor([5.0, -5.0]), 0)
    dice0 = 2 * 0.75 / (0.75 + p3[0] + 0.5 + 1)
    dice1 = 2 * (0.5 + p3[1]) / (0.25 + 0.5 + p3[1] + 2)
    assert soft_dice_loss(logits, target1, smooth=0.0).item() == pytest.approx(1 - (dice0 + dice1).item() / 2, rel=1e-6)


def test_soft_iou_loss_by_hand() -> None:
    logits, target = two_pixels()
    # class 0: I / (P + G - I) = 0.75 / 1.5; class 1: 0.5 / 1.25
    assert soft_iou_loss(logits, target, smooth=0.0, ignore_index=255).item() == pytest.approx(1 - (0.5 + 0.4) / 2)
    assert soft_iou_loss(logits, target, smooth=1.0, ignore_index=255).item() == pytest.approx(1 - (1.75 / 2.5 + 1.5 / 2.25) / 2)
    perfect = torch.tensor([[20.0, -20.0], [-20.0, 20.0]])[None, :, None, :]
    assert soft_iou_loss(perfect, torch.tensor([[[0, 1]]]), smooth=0.0).item() == pytest.approx(0.0, abs=1e-6)


class Fixed(nn.Module):
    """A 'network' whose input is already its logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def task(num_classes: int = 4, ignore_index: int | None = None, **options: object):
    entry = TASKS.get("segmentation")
    return entry.factory(SegmentationConfig(**options), {"num_classes": num_classes, "ignore_index": ignore_index})


def numpy_mean_iou(predicted: np.ndarray, target: np.ndarray, classes: int, ignore: int | None = None) -> tuple[float, float, float]:
    keep = target != ignore if ignore is not None else np.ones_like(target, dtype=bool)
    p, t = predicted[keep], target[keep]
    ious, dices = [], []
    for k in range(classes):
        inter, union = np.sum((p == k) & (t == k)), np.sum((p == k) | (t == k))
        if union:
            ious.append(inter / union)
            dices.append(2 * inter / (np.sum(p == k) + np.sum(t == k)))
    return float(np.mean(ious)), float(np.mean(dices)), float(np.mean(p == t))


@pytest.mark.parametrize("ignore", [None, 255])
def test_mean_iou_over_batches_equals_a_direct_per_class_computation(ignore: int | None) -> None:
    rng = np.random.default_rng(0)
    classes = 5
    target = rng.integers(0, classes - 1, (7, 9, 11))  # class 4 never true: counted only where predicted
    logits = rng.normal(size=(7, classes, 9, 11)).astype(np.float32)
    if ignore is not None:
        target[rng.random(target.shape) < 0.2] = ignore
    predicted = logits.argmax(axis=1)
    t = task(classes, ignore)
    batches = [(torch.from_numpy(logits[i: i + 3]), torch.from_numpy(target[i: i + 3])) for i in range(0, 7, 3)]
    metrics = t.reduce(accumulate(t, Fixed(), batches))
    iou, dice, accuracy = numpy_mean_iou(predicted, target, classes, ignore)
    assert metrics["mean_iou"] == pytest.approx(iou) and metrics["mean_dice"] == pytest.approx(dice)
    assert metrics["pixel_accuracy"] == pytest.approx(accuracy)
    evaluation = t.evaluate(Fixed(), batches)
    assert evaluation.arrays["confusion_matrix"].sum() == (target != ignore).sum()


def test_every_loss_trains_and_an_unpadded_networks_targets_are_the_masks_centre() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(2, 1, 36, 36), torch.randint(0, 3, (2, 36, 36))
    unpadded = create_model("unet-seg", in_channels=1, num_classes=3, base_width=4, depth=1, padding=False)
    for loss in ("cross-entropy", "dice", "iou", "ce-dice"):
        t = task(3, loss=loss)
        logits, target = t.logits_and_targets(unpadded, (x, y))
        assert logits.shape == (2, 3, 20, 20) and torch.equal(target, y[:, 8:28, 8:28])  # 36 -2 -2, /2, -2 -2, x2, -2 -2
        out = t.training_step(unpadded, (x, y), "main")
        out.loss.backward()
        assert torch.isfinite(out.loss) and out.loss > 0


def test_the_task_refuses_a_classifier_and_a_dataset_without_masks() -> None:
    with pytest.raises(ConfigError, match="outputs one prediction per image; the segmentation task needs a network"):
        task(4).check_model(create_model("lenet5"))
    with pytest.raises(ConfigError, match="segmentation"):
        load_recipe("unet-shapes", ["data.name=digits"])


def test_a_tiny_unet_beats_the_all_background_predictor_and_predicts_label_maps(tmp_path: Path) -> None:
    """384 steps of a 8-wide, depth-3 U-Net on 512 32x32 images: about 15 s of one CPU thread (test mean IoU 0.52)."""
    run = deepatlas.train("unet-shapes", [
        "data.train_size=512", "data.test_size=64", "data.size=32", "data.batch_size=16", "model.base_width=8",
        "model.depth=3", "train.epochs=12", "optim.lr=0.01", "train.threads=1", "train.checkpoint_every=0",
        "task.figure_images=4",
    ], progress=False)
    test = run.summary["eval"]["test"]
    predictor = deepatlas.load(run.id)
    data = deepatlas.load_dataset(run.config.data)
    split = data.split("test")
    background = (split.masks == 0).double().mean().item()
    all_background = background / 4  # IoU = the background share for class 0, 0 for the three shapes
    assert test["mean_iou"] > all_background + 0.2, (test, all_background)  # 0.52 against 0.22
    assert test["pixel_accuracy"] > background  # better than saying "background" everywhere

    maps = predictor.predict(split.images[:5].numpy())  # raw uint8 pixels
    assert maps.shape == (5, 32, 32) and maps.dtype == np.int64 and set(np.unique(maps)) <= {0, 1, 2, 3}
    x, _ = next(data.eval_batches("test", torch.device("cpu")))
    with torch.no_grad():
        direct = predictor.model(x[:5].to(predictor.device)).argmax(dim=1).cpu().numpy()
    assert (maps == direct).mean() > 0.999  # the same as evaluation computed
    assert predictor.predict_proba(split.images[:2].numpy()).shape == (2, 4, 32, 32)
    figures = {p.name for p in run.path.iterdir()}
    assert {"segmentation-test.png", "confusion-test.png"} <= figures

    from PIL import Image
    from typer.testing import CliRunner

    from deepatlas.cli import app

    Image.fromarray(split.images[0].permute(1, 2, 0).numpy()).save(tmp_path / "shapes.png")
    result = CliRunner().invoke(app, ["predict", run.id, str(tmp_path / "shapes.png")])
    assert result.exit_code == 0, result.output
    assert "shapes.png: 32x32 label map: background" in result.output
    big = Image.fromarray(split.images[0].permute(1, 2, 0).numpy()).resize((70, 50), Image.NEAREST)  # width 70, height 50
    big.save(tmp_path / "big.png")
    resized = predictor.predict(str(tmp_path / "big.png"))
    assert resized.shape == (1, 50, 70)  # the input's own size, not the run's 32x32
    upscaled = np.asarray(Image.fromarray(maps[0].astype(np.uint8)).resize((70, 50), Image.NEAREST))
    assert (resized[0] == upscaled).mean() > 0.9  # the same shapes, at the new size
    mixed = predictor.predict([str(tmp_path / "big.png"), split.images[0].numpy()])  # sizes differ: one map each
    assert [m.shape for m in mixed] == [(50, 70), (32, 32)] and (mixed[1] == maps[0]).all()
    result = CliRunner().invoke(app, ["predict", run.id, str(tmp_path / "big.png"), str(tmp_path / "shapes.png")])
    assert result.exit_code == 0, result.output
    assert "big.png: 50x70 label map" in result.output and "shapes.png: 32x32 label map" in result.output

    from deepatlas.compress.export import export

    folder, check = export(run.id, tmp_path / "exported", fmt="exported-program")
    assert check is not None and check.max_abs_error < 1e-4 and check.batch_sizes[0] != check.batch_sizes[1]
    assert (deepatlas.load(folder).predict(split.images[:5].numpy()) == maps).all()


def test_a_run_resumed_mid_epoch_ends_with_the_same_weights() -> None:
    """Flips of image and mask are seeded per (seed, epoch, batch): a resumed run sees the same batches."""
    from deepatlas.engine import load_checkpoint
    from tests.engine.test_trainer import StopAt

    overrides = [
        "data.train_size=64", "data.test_size=8", "data.size=16", "data.batch_size=8", "model.base_width=4",
        "model.depth=2", "train.epochs=2", "train.threads=1", "train.test=false", "task.loss=ce-dice",
    ]
    whole = deepatlas.train("unet-shapes", overrides, progress=False)
    stopped = deepatlas.train("unet-shapes", overrides, callbacks=[StopAt(5)], progress=False)
    assert stopped.status == "interrupted"
    resumed = deepatlas.resume(stopped.id, progress=False)
    a, b = load_checkpoint(whole.checkpoint("last"))["model"], load_checkpoint(resumed.checkpoint("last"))["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
