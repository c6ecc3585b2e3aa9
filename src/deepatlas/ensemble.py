"""Deep ensembles (Lakshminarayanan, Pritzel & Blundell 2017, "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles").

M classifiers trained independently (different ``train.seed``: initialisation and data order) are combined
by averaging their predicted distributions (section 2.4):

    p(y | x) = 1/M sum_m p_m(y | x).

The ensemble's NLL is never worse than its members' mean NLL: -log is convex, so for every example
-log(1/M sum_m p_m) <= 1/M sum_m -log p_m (Jensen). ``deepatlas.ensemble([run, ...])`` loads the runs
as :class:`~deepatlas.predict.Predictor` s; ``evaluate(split)`` reports accuracy, NLL and ECE (the bins
of the members' ``task.ece_bins``) for each member and for the ensemble, on the split each member's own
data bundle serves (the same examples, each with its own fitted preprocessing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, RunError
from .metrics.classification import probability_metrics
from .predict import Predictor, load
from .tracking import Run


@dataclass(frozen=True)
class EnsembleEvaluation:
    """Metrics of each member (by run id, in order) and of the ensemble on one split."""

    split: str
    members: dict[str, dict[str, float]]
    ensemble: dict[str, float]

    @property
    def member_mean(self) -> dict[str, float]:
        """Each metric averaged over the members (what one model is expected to reach)."""
        keys = next(iter(self.members.values())).keys()
        return {k: float(np.mean([m[k] for m in self.members.values()])) for k in keys}


class Ensemble:
    """Classifier runs whose predicted probabilities are averaged."""

    def __init__(self, members: Sequence[Predictor]) -> None:
        if len(members) < 2:
            raise ConfigError(f"ensemble: needs at least two runs, got {len(members)}.")
        for p in members:
            if p.task.predicts != "labels":
                raise ConfigError(f"ensemble: {p.source} is a {p.config.task.name} run; an ensemble averages classifiers.")
        seen = [p.source for p in members]
        twice = sorted({s for s in seen if seen.count(s) > 1})
        if twice:
            raise ConfigError(f"ensemble: {', '.join(twice)} listed more than once; an ensemble needs distinct runs "
                              "(e.g. one recipe trained with several train.seed values).")
        first = members[0]
        for p in members[1:]:
            if p.class_names != first.class_names or p.meta.get("num_classes") != first.meta.get("num_classes"):
                def shown(q: Predictor) -> str:
                    names = q.class_names
                    return f"{q.meta.get('num_classes')} classes" + (f": {', '.join(map(str, names[:6]))}{', ...' if len(names) > 6 else ''}"
                                                                     if names else "")
                raise ConfigError(
                    f"ensemble: {p.source} predicts other classes than {first.source} ({shown(p)} against {shown(first)}); "
                    "ensemble runs of one dataset."
                )
        self.members = list(members)

    def __repr__(self) -> str:
        return f"Ensemble({', '.join(p.source for p in self.members)})"

    @property
    def class_names(self) -> list[str] | None:
        return self.members[0].class_names

    def predict_proba(self, raw: Any) -> np.ndarray:
        """(N, K): the mean of the members' predicted probabilities for raw inputs."""
        return np.mean([p.predict_proba(raw) for p in self.members], axis=0)

    def predict(self, raw: Any) -> Any:
        """Class names (or ids) of the averaged distribution's most likely class."""
        labels = self.predict_proba(raw).argmax(axis=-1)
        names = self.class_names
        return [names[i] for i in labels] if names else labels

    @torch.no_grad()
    def member_probabilities(self, split: str = "test") -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each member's (N, K) probabilities on ``split`` and the (N,) labels, from the members' data."""
        from .data import load_dataset

        bundles: dict[str, Any] = {}
        probabilities, labels = [], None
        for p in self.members:
            if p.run is None:
                raise RunError(f"ensemble: {p.source} is an export folder; evaluating on a split needs the runs.")
            key = repr(p.config.data)
            if key not in bundles:  # members of one data config share its bundle
                bundles[key] = load_dataset(p.config.data, state_dir=p.run.path)
            batches = bundles[key].eval_batches(split, p.device)
            probs, ys = zip(*[(p.task.predict(p.model, x)["probabilities"].double().cpu(), y.cpu()) for x, y in batches],
                            strict=True)
            y = torch.cat(ys)
            if labels is not None and not torch.equal(y, labels):
                raise ConfigError(f"ensemble: {p.source} sees other {split} examples than {self.members[0].source}; "
                                  "ensemble runs of one dataset.")
            labels = y
            probabilities.append(torch.cat(probs))
        assert labels is not None
        return probabilities, labels

    def evaluate(self, split: str = "test") -> EnsembleEvaluation:
        """Accuracy, NLL and ECE of each member and of the ensemble on ``split`` (test, val or train)."""
        if split not in ("test", "val", "train"):
            raise ConfigError(f"--split: {split!r} is not a split (allowed: test, val, train).")
        probabilities, labels = self.member_probabilities(split)
        bins = int(getattr(self.members[0].task.config, "ece_bins", 15))
        members = {p.source: probability_metrics(q, labels, bins) for p, q in zip(self.members, probabilities, strict=True)}
        combined = probability_metrics(torch.stack(probabilities).mean(0), labels, bins)
        return EnsembleEvaluation(split, members, combined)


def ensemble(
    runs: Sequence[str | Path | Run], *, device: str | None = None, checkpoint: str = "best",
    runs_dir: str | Path | None = None,
) -> Ensemble:
    """A deep ensemble of classifier runs (ids, prefixes, folders or :class:`Run` s; export folders predict only)."""
    return Ensemble([load(r, device=device, checkpoint=checkpoint, runs_dir=runs_dir) for r in runs])
