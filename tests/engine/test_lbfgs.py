"""L-BFGS in the training loop: a full-batch closure reaches the least-squares optimum, and resumes exactly."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepatlas.config import load_recipe
from deepatlas.data import load_dataset
from deepatlas.engine import Trainer
from deepatlas.tasks.base import StepOutput, Task
from tests.conftest import tiny_recipe

FULL_BATCH = tiny_recipe(**{
    "optim.name": "lbfgs", "optim.lr": 1.0, "optim.weight_decay": 0, "data.batch_size": 5000, "train.epochs": 2,
    "schedule.name": "constant", "train.threads": 1, "optim.lbfgs_max_iter": 1000, "model.dropout": 0.0,
})


class LeastSquares(Task):
    """Regress the digit's value on its pixels: the mean squared error of a linear model."""

    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        x, y = batch
        loss = ((model(x.flatten(1).double()).squeeze(1) - y.double()) ** 2).mean()
        return StepOutput(loss, {"loss": loss.detach()})

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"sse": ((model(x.flatten(1).double()).squeeze(1) - y.double()) ** 2).sum(), "n": torch.tensor(float(len(y)))}

    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return {"loss": float(totals["sse"] / totals["n"])}


def test_lbfgs_in_the_trainer_reaches_the_closed_form_fit(tmp_path: Path) -> None:
    config = load_recipe("quickstart", FULL_BATCH)
    data = load_dataset(config.data)
    assert data.num_batches("train") == 1  # the whole training split in one batch
    torch.manual_seed(0)
    model = nn.Linear(64, 1).double()
    trainer = Trainer(model, LeastSquares(None, data.meta), data, config, checkpoint_dir=tmp_path)
    assert trainer.fit().status == "completed" and trainer.state.step == 2
    x, y = next(iter(data.train_batches(0, config.train.seed, torch.device("cpu"))))
    x = x.flatten(1).double()
    design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y.double()[:, None], driver="gelsd").solution
    with torch.no_grad():
        mse = float(((model(x).squeeze(1) - y.double()) ** 2).mean())
    optimum = float((((design @ solution).squeeze(1) - y.double()) ** 2).mean())
    # the pixels are collinear: the fit, not the weights, is unique; torch's L-BFGS stops at its gradient
    # tolerance (1e-7), 1e-6 to 2e-6 above the optimum depending on the BLAS build
    assert optimum <= mse < optimum * (1 + 1e-5)
    again = Trainer(nn.Linear(64, 1).double(), LeastSquares(None, data.meta), data, config)
    again.load(tmp_path / "last.safetensors")  # the curvature pairs and line-search state travel in the checkpoint
    saved, loaded = trainer.optimizers["main"].state_dict(), again.optimizers["main"].state_dict()
    assert saved["state"][0]["n_iter"] == loaded["state"][0]["n_iter"] > 2
    assert all(torch.equal(a, b) for a, b in zip(saved["state"][0]["old_dirs"], loaded["state"][0]["old_dirs"], strict=True))
