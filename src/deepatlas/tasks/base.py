"""The task interface: what a family does differently, behind one declared contract.

The engine knows nothing of images, tokens or graphs. A task tells it, for a
batch, which optimizers step and in what order (``phases``: a classifier has
one, a GAN two), what the loss of each phase is (``training_step``), and how
validation batches become summable statistics and then metrics
(``validation_step`` + ``reduce``). Everything else a family may do is declared
here with a default, so that the api and the CLI ask the task and never probe:

- ``directions``: whether each metric the task reports should go up or down;
- ``capabilities``: what a trained run can do beyond training and evaluation
  (``predict``, ``sample``, ``sample-steps``, ``generate``, ``export``), as data;
- ``predict`` (raw model outputs -> what a user gets), ``sample`` (images),
  ``generate`` (tokens) and ``figures`` (pictures of a trained model), each
  raising a clear :class:`~deepatlas.errors.CapabilityError` (or drawing
  nothing) by default;
- ``export_inputs``: the network's positional inputs for a batch and their dynamic dimensions,
  for ONNX / torch.export / TorchScript (tasks that declare ``export``);
- ``data_kind``: the kind of data bundle the task takes;
- ``model_meta``: what the network must output for this task (``num_outputs``), filled
  into the model config next to the data-bound keys;
- ``calibrate`` / ``load_calibration``: state fitted after training from data the
  optimizer never used for gradients (a Cox model's baseline hazard, a conformal
  correction), saved with the run as ``calibration.safetensors`` and used by evaluation
  and prediction.
- ``check_model``: refuse, before any work, a model the task's options cannot train
  (a :class:`~deepatlas.errors.ConfigError`);
- ``state_dict`` / ``load_state_dict``: state the task carries from one training batch
  to the next (a recurrent state in truncated back-propagation through time), saved in
  every resumable checkpoint and handed back on resume, so that a resumed run stays
  exact. Nothing by default.

``validation_step`` returns statistics that are summed over batches; a key that starts
with ``rows/`` is concatenated instead (per-example values for metrics that are not sums,
such as a concordance index).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from ..errors import CapabilityError, ConfigError, one_of, suggest

#: every capability a task may declare, with what it means to a user
CAPABILITIES = {
    "predict": "predictions for raw inputs (deepatlas.load(run).predict)",
    "sample": "draws images (deepatlas sample / deepatlas.load(run).sample)",
    "sample-steps": "takes a number of sampling steps",
    "generate": "generates text after a prompt (deepatlas sample / deepatlas.load(run).generate)",
    "distribution": "a predictive distribution per row: mean, quantiles, log-density (deepatlas.load(run).predict_distribution)",
    "quantiles": "conditional quantiles (deepatlas.load(run).predict_quantiles)",
    "interval": "prediction intervals at a chosen coverage (deepatlas.load(run).predict_interval)",
    "survival": "survival curves S(t | x) (deepatlas.load(run).predict_survival_function)",
    "embed": "embeddings of images and text in one space (deepatlas embed / deepatlas.load(run).encode_image, encode_text)",
    "zero-shot": "classifies images into classes named in words, with no classifier trained (deepatlas.load(run).zero_shot)",
    "export": "exports its network as ONNX, a torch.export program or TorchScript (deepatlas export RUN --format onnx)",
}


#: what a task's ``predict`` may return, and what a user gets from ``Predictor.predict``
PREDICTIONS = {
    "labels": "'label' (B,) class ids and 'probabilities' (B, K): class names",
    "sequences": "'output' (B, L) token ids padded with [PAD]: decoded strings",
    "next-token": "'next' (B, T) ids and 'probabilities' (B, T, vocab): the next token after each string",
    "fill-mask": "'filled' (B, T) ids with each [MASK] replaced by its most likely token: the filled strings",
    "link-scores": "'logits' and 'probabilities' (P,) that each node pair (u, v) is an edge: the probabilities",
    "values": "'prediction' (B,) or (B, D), a point prediction per row (a mean, a median, a risk score), with "
              "other arrays of the task ('lower', 'upper', 'quantiles', 'std'): the point predictions",
    "label-maps": "'label_map' (B, H, W) class ids per pixel and 'probabilities' (B, K, H, W): the label maps (N, H, W)",
}


class StepOutput(NamedTuple):
    """The loss to back-propagate and detached tensors to log (no ``.item()`` inside a step)."""

    loss: torch.Tensor
    logs: Mapping[str, torch.Tensor]


class ExportInputs(NamedTuple):
    """The positional tensor arguments of ``model(*args)`` for a batch, as an exported graph takes them:
    ``names`` (one per argument) and ``dynamic`` (per argument, its dimensions that may change size, by name:
    ``{0: "batch"}``)."""

    args: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    dynamic: tuple[Mapping[int, str], ...]


class Evaluation(NamedTuple):
    """Final metrics of a split and arrays worth keeping (e.g. a confusion matrix)."""

    metrics: dict[str, float]
    arrays: dict[str, Any]


class Task(ABC):
    """Base class of every objective. Subclasses implement three methods and declare what else they do."""

    #: default validation metric for best-checkpoint selection and early stopping, and its direction
    monitor: ClassVar[tuple[str, str]] = ("loss", "min")
    #: every metric ``reduce`` reports -> "max" or "min"
    directions: ClassVar[Mapping[str, str]] = {"loss": "min"}
    #: what a trained run of this task can do (keys of ``CAPABILITIES``)
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: the kind of data bundle this task takes, matched against each dataset's declared ``data_kinds`` when a
    #: recipe is loaded: ``labelled`` (inputs + class labels), ``images``, ``tokens`` (a token stream),
    #: ``pairs`` (source/target sequences), ``graph`` (one graph, nodes as examples), ``graphs`` (many
    #: graphs); ``any``: no check
    data_kind: ClassVar[str] = "any"
    #: what ``predict`` returns (keys of ``PREDICTIONS``); None when the task cannot predict
    predicts: ClassVar[str | None] = None
    #: whether ``train.precision: auto`` may train it under bf16 autocast where that pays; False for the
    #: statistical tasks, whose likelihoods, risk-set sums and quantiles want float32 whatever the speed,
    #: and for the graph tasks, whose sparse adjacency products have no bf16 kernel on the CPU
    low_precision_ok: ClassVar[bool] = True

    def __init__(self, config: Any, meta: Mapping[str, Any]) -> None:
        self.config = config
        self.meta = dict(meta)

    # ----------------------------------------------------------------- metrics

    @classmethod
    def metric_directions(cls, config: Any = None) -> dict[str, str]:
        """Every metric the task reports (for ``config``, its options), "max" or "min"."""
        return dict(cls.directions)

    @classmethod
    def direction(cls, metric: str, config: Any = None, path: str = "train.monitor") -> str:
        """"max" or "min" for ``metric`` (with or without a ``val/`` prefix); unknown names are errors."""
        bare = metric.split("/", 1)[1] if "/" in metric else metric
        directions = cls.metric_directions(config)
        if bare not in directions:
            names = [f"val/{name}" for name in directions]
            raise ConfigError(
                f"{path}: 'val/{bare}' is not a validation metric of this task (there are: {one_of(names)})."
                + suggest(f"val/{bare}", names)
            )
        return directions[bare]

    # ----------------------------------------------------------------- optimisation

    def parameters(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Parameters of each optimizer, by name. One optimizer (``main``) by default."""
        return {"main": [p for p in model.parameters() if p.requires_grad]}

    def lr_scales(self) -> dict[str, float]:
        """Multipliers of the scheduled lr per optimizer (e.g. a GAN's two time-scales); 1 when absent."""
        return {}

    def phases(self, step: int) -> Sequence[str]:
        """Optimizers stepped on the batch of optimizer step ``step``, in order."""
        return ("main",)

    @abstractmethod
    def training_step(self, model: nn.Module, batch: Any, phase: str) -> StepOutput:
        """The loss of ``phase`` on ``batch`` (model in train mode)."""

    # ----------------------------------------------------------------- validation

    @abstractmethod
    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """Statistics of one batch that are summed over the split (model in eval mode, no grad)."""

    @abstractmethod
    def reduce(self, totals: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Metrics from the summed statistics of a whole split."""

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> Evaluation:
        """Metrics over a whole split; subclasses add arrays (confusion matrices, samples)."""
        return Evaluation(self.reduce(accumulate(self, model, batches)), {})

    def check_model(self, model: nn.Module) -> None:
        """Raise a ConfigError naming the option when ``model`` cannot be trained with this task's options."""
        return None  # any model by default

    # ----------------------------------------------------------------- state carried across batches

    def state_dict(self) -> dict[str, Any]:
        """What the task carries from one training batch to the next, for the resumable checkpoint.

        Tensors (saved in the safetensors file), numbers, strings and None, in dicts, lists and
        tuples; taken after an optimizer step. Empty by default: most tasks are a pure function
        of the batch.
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back what ``state_dict`` returned (tensors on the CPU); ``{}`` from a checkpoint without it."""
        return None  # nothing to take by default

    def lineage(self) -> dict[str, Any] | None:
        """The run this task's runs derive from (``{"parent": run id, "kind": ..., ...}``, recorded in the summary
        as ``lineage``): a distilled student's teacher. None by default."""
        return None

    def model_meta(self) -> dict[str, Any]:
        """Model config keys this task decides (e.g. ``num_outputs``: a distribution's parameters); none by default."""
        return {}

    # ----------------------------------------------------------------- calibration after training

    #: True when ``calibrate`` fits state the trained run needs (saved as ``calibration.safetensors``)
    calibrates: ClassVar[bool] = False

    def calibrate(self, model: nn.Module, data: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """State fitted on the trained model (eval mode, no grad) and ``data`` (the bundle): tensors to save."""
        return {}

    def load_calibration(self, state: Mapping[str, torch.Tensor]) -> None:
        """Take the state ``calibrate`` returned (after training, or read back from the run)."""
        self._calibration = {k: v.detach().cpu() for k, v in state.items()}

    def calibration_state(self) -> dict[str, torch.Tensor]:
        """The state last given to ``load_calibration`` (what an export saves)."""
        return dict(getattr(self, "_calibration", {}))

    # ----------------------------------------------------------------- what a trained run can do

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def offers(self) -> str:
        """What a trained run of this task can do, for messages."""
        return ", ".join(sorted(self.capabilities)) or "nothing beyond evaluation"

    def cannot(self, capability: str, where: str = "", name: str | None = None) -> CapabilityError:
        """The error for a capability this task lacks, naming what it can do instead; ``where`` (a run)
        prefixes the message and ``name`` is the task's registered name (default: its class name)."""
        prefix = f"{where}: " if where else ""
        return CapabilityError(
            f"{prefix}a {name or type(self).__name__} run cannot {capability} (it can: {self.offers()})."
        )

    def predict(self, model: nn.Module, inputs: Any) -> dict[str, torch.Tensor]:
        """What a user gets for a batch of preprocessed inputs (model in eval mode, no grad):
        labels + probabilities, decoded sequences, a distribution... Raises by default."""
        raise self.cannot("predict")

    def export_inputs(self, batch: Any) -> ExportInputs:
        """The network's positional inputs for a (validation) batch, for export: what ``model(*args)`` takes
        and which of its dimensions are dynamic. Raises by default (a task that declares ``export`` overrides it)."""
        raise self.cannot("export")

    def predict_distribution(self, model: nn.Module, inputs: Any) -> Any:
        """The predictive distribution of each row (a ``torch.distributions.Distribution``). Raises by default."""
        raise self.cannot("predict a distribution")

    def predict_quantiles(self, model: nn.Module, inputs: Any, quantiles: Sequence[float]) -> torch.Tensor:
        """(B, len(quantiles)) conditional quantiles (a multi-target task: (B, D, Q)). Raises by default."""
        raise self.cannot("predict quantiles")

    def predict_interval(self, model: nn.Module, inputs: Any, coverage: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(lower, upper), each (B,), of prediction intervals at nominal ``coverage``. Raises by default."""
        raise self.cannot("predict intervals")

    def predict_survival(self, model: nn.Module, inputs: Any, times: torch.Tensor) -> torch.Tensor:
        """(B, len(times)) survival probabilities S(t | x). Raises by default."""
        raise self.cannot("predict survival curves")

    def embed(self, model: nn.Module, inputs: Any, modality: str) -> torch.Tensor:
        """(B, D) embeddings of preprocessed ``image`` or ``text`` inputs in a shared space. Raises by default."""
        raise self.cannot("embed images and text")

    def zero_shot(self, model: nn.Module, images: torch.Tensor, prompt_tokens: torch.Tensor) -> torch.Tensor:
        """(B, K) class probabilities of images from prompts (K classes, T templates, L tokens). Raises by default."""
        raise self.cannot("classify zero-shot")

    def sample(
        self, model: nn.Module, n: int, labels: torch.Tensor | None = None, *,
        generator: torch.Generator | None = None, steps: int | None = None,
    ) -> torch.Tensor:
        """``n`` images in [0, 1] (labels for a conditional model). Raises by default."""
        raise self.cannot("sample")

    def sample_labels(self, model: nn.Module, n: int, label: int | None = None) -> torch.Tensor | None:
        """Labels for ``n`` samples: ``label`` for all, else the classes in turn; None when unconditional."""
        if label is not None:
            raise ConfigError("--label: this run's model is not class-conditional; sample without --label.")
        return None

    def generate(self, model: nn.Module, prompt: torch.Tensor, max_new_tokens: int, **sampling: Any) -> Iterator[torch.Tensor]:
        """New tokens (B,) one at a time after ``prompt`` (B, T). Raises by default."""
        raise self.cannot("generate")

    def figures(
        self, model: nn.Module, batch: Any, folder: Path, split: str, evaluation: Evaluation | None = None,
    ) -> list[Path]:
        """Pictures of a trained model on a batch of ``split`` (and of its evaluation), saved in ``folder``."""
        return []

    # ----------------------------------------------------------------- helpers

    def batch_size(self, batch: Any) -> int:
        """Number of examples in a batch (for throughput)."""
        return len(batch[0])

    def ema_target(self, model: nn.Module) -> nn.Module:
        """The module whose weights are averaged when EMA is on (a GAN: the generator)."""
        return model


class ImageGenerationTask(Task):
    """The shared part of the image-generating families (VAE, GAN, diffusion): sampling and its labels.

    Subclasses implement ``sample``; a model is class-conditional when ``model.config.conditional``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"sample"})
    data_kind: ClassVar[str] = "images"

    @staticmethod
    def conditional(model: nn.Module) -> bool:
        return bool(model.config.conditional)

    def sample_labels(self, model: nn.Module, n: int, label: int | None = None) -> torch.Tensor | None:
        if not self.conditional(model):
            return super().sample_labels(model, n, label)
        classes = int(model.config.num_classes)
        if label is not None and not 0 <= label < classes:
            raise ConfigError(f"--label: {label} is not a class of this run (0..{classes - 1}).")
        return torch.full((n,), label, dtype=torch.long) if label is not None else torch.arange(n) % classes


@torch.no_grad()
def accumulate(task: Task, model: nn.Module, batches: Iterable[Any]) -> dict[str, torch.Tensor]:
    """Sum ``task.validation_step`` over batches, in float64 where it matters; ``rows/`` keys are concatenated."""
    totals: dict[str, torch.Tensor] = {}
    rows: dict[str, list[torch.Tensor]] = {}
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            for key, value in task.validation_step(model, batch).items():
                value = value.detach().double() if value.is_floating_point() else value.detach()
                if key.startswith("rows/"):
                    rows.setdefault(key, []).append(value.cpu())
                else:
                    totals[key] = totals[key] + value if key in totals else value
    finally:
        model.train(was_training)
    return {**{k: v.cpu() for k, v in totals.items()}, **{k: torch.cat(v) for k, v in rows.items()}}
