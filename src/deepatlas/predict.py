"""Use a trained model from Python: ``deepatlas.load(run_or_folder).predict(raw_inputs)``.

``load`` returns a :class:`Predictor`: the trained model in eval mode with its resolved
config, the task, the class names and the run's fitted preprocessing, so that raw inputs
(pixels, image files, PIL images, strings, a graph) go in and what a user wants comes out
(labels and probabilities, decoded sequences, images, text). What a run can do is what its
task declares (``Task.capabilities``); anything else is a one-line error naming the run.

``export(run, folder)`` writes a self-contained folder (``config.yaml``, ``model.safetensors``,
``preprocess.json``, the tokenizer, ``deepatlas-export.json``) that ``load`` reads without
the run store, as ``save_pretrained``/``from_pretrained`` do in Hugging Face::

    predictor = deepatlas.load("20261202-quickstart-ab12")
    predictor.predict(images)          # ['7', '2', ...]
    predictor.export("digits-mlp")     # deepatlas.load("digits-mlp") gives the same outputs
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .build import (
    build_model,
    build_task,
    checkpoint_path,
    derived_network,
    load_weights,
    restore_calibration,
    save_calibration_state,
)
from .config import Config, load_recipe
from .data.preprocess import FILE as PREPROCESS_FILE
from .data.preprocess import Preprocessor, load_preprocessor, save_preprocessor
from .engine.checkpoint import tensor_digest, verify_digest
from .engine.device import resolve_device
from .errors import CheckpointError, RunError
from .io import atomic_path, write_json, write_text
from .tasks.base import Task
from .tracking import Run, RunStore

MANIFEST = "deepatlas-export.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1


class Predictor:
    """A trained model ready for raw inputs. ``model`` is the plain ``nn.Module`` (eval mode)."""

    def __init__(
        self, model: nn.Module, config: Config, task: Task, preprocessor: Preprocessor, meta: Mapping[str, Any],
        source: str, run: Run | None = None,
    ) -> None:
        self.model, self.config, self.task, self.preprocessor = model.eval(), config, task, preprocessor
        self.meta, self.source, self.run = dict(meta), source, run

    def __repr__(self) -> str:
        return f"Predictor({self.config.model.name} / {self.config.task.name} from {self.source}; can: {self.task.offers()})"

    @property
    def device(self) -> torch.device:
        tensor = next(self.model.parameters(), None)
        return tensor.device if tensor is not None else torch.device("cpu")  # an int8 network has no float parameters

    @property
    def class_names(self) -> list[str] | None:
        return self.meta.get("class_names")

    def _require(self, capability: str) -> None:
        if not self.task.can(capability):
            raise self.task.cannot(capability, self.source, self.config.task.name)

    # ----------------------------------------------------------------- predictions

    def preprocess(self, raw: Any) -> Any:
        """Raw inputs -> model inputs on the model's device, as the run's data made them."""
        return _to(self.preprocessor(raw), self.device)

    @torch.no_grad()
    def outputs(self, raw: Any) -> dict[str, torch.Tensor]:
        """The task's predictions for raw inputs, as tensors (see ``Task.predict``)."""
        self._require("predict")
        return self.task.predict(self.model, self.preprocess(raw))

    def predict(self, raw: Any) -> Any:
        """What a user wants for raw inputs: class names (or ids) for a classifier, decoded strings for
        a sequence-to-sequence model, the most likely next token after each string for a language model,
        class ids per pixel for a segmentation model at each input's own size (an (N, H, W) array, or a
        list of arrays when the sizes differ)."""
        out = self.outputs(raw)
        kind, tokenizer = self.task.predicts, self.preprocessor.tokenizer
        if kind == "labels":
            labels = out["label"].cpu().numpy()
            names = self.class_names
            return [names[i] for i in labels] if names else labels
        if kind == "sequences":
            pad = self.meta.get("pad_id")
            return [tokenizer.decode([i for i in row if i != pad]) for row in out["output"].tolist()]
        if kind == "next-token":
            return [tokenizer.decode([row[-1]]) for row in out["next"].tolist()]
        if kind == "fill-mask":
            return [tokenizer.decode(row) for row in out["filled"].tolist()]
        if kind == "link-scores":
            return out["probabilities"].cpu().numpy()
        if kind == "values":
            return out["prediction"].cpu().numpy()
        if kind == "label-maps":
            return self._label_maps(raw, out["probabilities"])
        return {k: v.cpu().numpy() for k, v in out.items()}

    def _label_maps(self, raw: Any, probabilities: torch.Tensor) -> Any:
        """Class ids per pixel at each input's own size: the per-pixel probabilities (at the run's image size)
        resized bilinearly to the input's height and width, then the most likely class. One (N, H, W) array
        when every input has the same size, else a list of (H_i, W_i) arrays."""
        sizes = self.preprocessor.sizes(raw)
        maps = [
            (p if tuple(p.shape[-2:]) == size else F.interpolate(p[None], size=size, mode="bilinear", align_corners=False)[0])
            .argmax(dim=0).cpu().numpy()
            for p, size in zip(probabilities, sizes, strict=True)
        ]
        return np.stack(maps) if len(set(sizes)) <= 1 else maps

    def predict_proba(self, raw: Any) -> np.ndarray:
        """Class probabilities (N, K) for a classifier; next-token distributions (N, T, vocab) for a language model."""
        out = self.outputs(raw)
        if "probabilities" not in out:
            raise RunError(f"{self.source}: a {self.config.task.name} run predicts no probabilities.")
        return out["probabilities"].cpu().numpy()

    # ----------------------------------------------------------------- distributions, quantiles, intervals, survival

    @torch.no_grad()
    def predict_distribution(self, raw: Any) -> Any:
        """The predictive distribution of each row, a ``torch.distributions.Distribution`` with batch shape (N,)
        (``.mean``, ``.variance``, ``.log_prob(y)``, ``.cdf(y)``, ``.icdf(q)`` where the family has them)."""
        self._require("distribution")
        return self.task.predict_distribution(self.model, self.preprocess(raw))

    @torch.no_grad()
    def predict_quantiles(self, raw: Any, quantiles: Sequence[float] = (0.05, 0.5, 0.95)) -> np.ndarray:
        """(N, len(quantiles)) conditional quantiles of the target."""
        self._require("quantiles")
        levels = [float(q) for q in quantiles]
        if not levels or not all(0.0 < q < 1.0 for q in levels):
            raise RunError(f"quantiles: each level must lie strictly between 0 and 1, got {levels}.")
        return self.task.predict_quantiles(self.model, self.preprocess(raw), levels).cpu().numpy()

    @torch.no_grad()
    def predict_interval(self, raw: Any, coverage: float = 0.9) -> np.ndarray:
        """(N, 2) lower and upper ends of prediction intervals at nominal ``coverage`` (e.g. 0.9)."""
        self._require("interval")
        if not 0.0 < coverage < 1.0:
            raise RunError(f"coverage: must lie strictly between 0 and 1, got {coverage}.")
        lower, upper = self.task.predict_interval(self.model, self.preprocess(raw), float(coverage))
        return torch.stack([lower, upper], dim=-1).cpu().numpy()

    @torch.no_grad()
    def predict_survival_function(self, raw: Any, times: Sequence[float] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(times, S) with S (N, len(times)) the survival probabilities S(t | x) of each row; default times:
        the training event-time quantiles."""
        self._require("survival")
        grid = torch.as_tensor(np.asarray(times if times is not None else self.meta.get("event_time_quantiles") or [], dtype=np.float64))
        if grid.ndim != 1 or len(grid) == 0:
            raise RunError("times: give a 1-D list of times at which to evaluate the survival function.")
        return grid.numpy(), self.task.predict_survival(self.model, self.preprocess(raw), grid).cpu().numpy()

    # ----------------------------------------------------------------- image-text embeddings (CLIP)

    @torch.no_grad()
    def encode_image(self, raw: Any) -> np.ndarray:
        """(N, D) L2-normalised embeddings of images (paths, PIL images, pixel arrays) in the run's shared space."""
        self._require("embed")
        return self.task.embed(self.model, _to(self.preprocessor.images(raw), self.device), "image").cpu().numpy()

    @torch.no_grad()
    def encode_text(self, raw: str | Sequence[str]) -> np.ndarray:
        """(N, D) L2-normalised embeddings of captions (a string or a list of strings)."""
        self._require("embed")
        return self.task.embed(self.model, _to(self.preprocessor.text(raw), self.device), "text").cpu().numpy()

    @torch.no_grad()
    def zero_shot_proba(self, images: Any, class_names: Sequence[str], templates: Sequence[str] | None = None) -> np.ndarray:
        """(N, K) probabilities of each image over ``class_names``, from prompts: each of ``templates`` (default:
        the run's held-out templates, e.g. "a photo of {}.") filled with each name, ensembled per class."""
        from .data.captions import prompts

        self._require("zero-shot")
        names = [str(n) for n in ([class_names] if isinstance(class_names, str) else class_names)]
        templates = list(templates or self.meta.get("prompt_templates") or ["a photo of {}."])
        if len(names) < 2 or any("{}" not in t for t in templates):
            raise RunError("zero_shot: give at least two class names, and templates with a {} for the name.")
        tokens = self.preprocessor.text([p for group in prompts(names, templates) for p in group])
        tokens = _to(tokens, self.device).view(len(names), len(templates), -1)
        images = _to(self.preprocessor.images(images), self.device)
        return self.task.zero_shot(self.model, images, tokens).cpu().numpy()

    def zero_shot(self, images: Any, class_names: Sequence[str], templates: Sequence[str] | None = None) -> list[str]:
        """The most likely of ``class_names`` for each image, with no classifier trained (see ``zero_shot_proba``)."""
        probabilities = self.zero_shot_proba(images, class_names, templates)
        return [str(class_names[i]) for i in probabilities.argmax(-1)]

    # ----------------------------------------------------------------- generation

    def sample(self, n: int = 64, *, label: int | None = None, steps: int | None = None, seed: int = 0) -> torch.Tensor:
        """``n`` images (n, C, H, W) in [0, 1] from a VAE, GAN or diffusion run; deterministic in ``seed``."""
        from .evaluation import generate_images

        self._require("sample")
        labels = self.task.sample_labels(self.model, n, label)
        return generate_images(self.model, self.task, labels, n, steps=steps, seed=seed)

    def stream(
        self, prompt: str = "", *, max_new_tokens: int = 500, temperature: float = 0.8, top_k: int | None = 200,
        top_p: float | None = None, seed: int = 0,
    ) -> Iterator[str]:
        """Text after ``prompt`` from a language-model run, yielded piece by piece as it is generated."""
        self._require("generate")
        tokenizer = self.preprocessor.tokenizer
        ids = tokenizer.encode(prompt) if prompt else [0]
        context = torch.tensor([ids], dtype=torch.long, device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        produced: list[int] = []
        shown = ""
        sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "generator": generator}
        for token in self.task.generate(self.model, context, max_new_tokens, **sampling):
            produced.append(int(token[0]))
            text = tokenizer.decode(produced)  # decode the whole tail: BPE pieces can span tokens
            if len(text) > len(shown) and not text.endswith("\ufffd"):
                yield text[len(shown):]
                shown = text

    def generate(self, prompt: str = "", **options: Any) -> str:
        """The whole text ``stream`` yields, as one string."""
        return "".join(self.stream(prompt, **options))

    # ----------------------------------------------------------------- export

    def export(self, folder: str | Path) -> Path:
        """Write a self-contained folder that ``deepatlas.load(folder)`` reads without the run store."""
        from safetensors.torch import save_file

        folder = Path(folder).expanduser()
        if self.run is not None and (self.run.summary.get("lineage") or {}).get("kind") == "quantize":
            raise RunError(f"{self.source}: an int8 run cannot be exported yet (its weights are packed int8); export its parent.")
        if folder.exists() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
            raise RunError(f"{folder}: exists and is not an export folder; choose an empty or new folder.")
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "config.yaml", self.config.to_yaml())
        state = {k: v.detach().cpu().clone().contiguous() for k, v in self.model.state_dict().items()}  # tied weights: one copy each
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file(state, str(tmp), metadata={"source": self.source, "hash": tensor_digest(state)})
        save_preprocessor(self.preprocessor, folder)
        if self.task.calibrates:  # the post-training state (baseline hazard, conformal correction) travels too
            save_calibration_state(self.task, folder)
        import deepatlas

        write_json(folder / MANIFEST, {
            "format": "deepatlas-export", "version": FORMAT_VERSION, "deepatlas": deepatlas.__version__,
            "source": self.source, "model": self.config.model.name, "task": self.config.task.name,
            "capabilities": sorted(self.task.capabilities), "meta": self.meta,
        })
        return folder


def _to(inputs: Any, device: torch.device) -> Any:
    """Tensors and graphs, or tuples of them (a graph and node pairs), on ``device``."""
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_to(item, device) for item in inputs)
    if isinstance(inputs, np.ndarray):
        inputs = torch.as_tensor(inputs)
    return inputs.to(device)


def load(
    ref: str | Path | Run, *, device: str | None = None, checkpoint: str = "best", runs_dir: str | Path | None = None,
) -> Predictor:
    """A :class:`Predictor` for a run (id, unique prefix, folder or :class:`Run`) or an export folder.

    ``checkpoint``: ``best`` (falls back to ``last``) or ``last`` (runs only). ``device``: default the
    run's ``train.device`` (``auto``: CUDA, then MPS, then CPU).
    """
    if not isinstance(ref, Run) and (Path(ref).expanduser() / MANIFEST).is_file():
        return _load_export(Path(ref).expanduser(), device)
    run = ref if isinstance(ref, Run) else RunStore(runs_dir).open(ref)
    config = run.config
    meta = (run.summary.get("data") or {}).get("meta") or {}
    task = build_task(config, meta)
    model = build_model(config)
    load_weights(model, task, checkpoint_path(run, checkpoint))
    model = derived_network(run, model)  # a quantized run: its int8 network
    if task.calibrates:
        if checkpoint != "best":
            raise RunError(f"{run.id}: a {config.task.name} run is calibrated on its best weights; load it with checkpoint='best'.")
        restore_calibration(task, run.path)
    model.to(resolve_device(device or config.train.device))
    return Predictor(model, config, task, _run_preprocessor(run), meta, run.id, run)


def _run_preprocessor(run: Run) -> Preprocessor:
    if (run.path / PREPROCESS_FILE).is_file():
        return load_preprocessor(run.path)
    from .data import (
        load_dataset,  # a run from before preprocessing was saved: refit it from its data
    )

    return load_dataset(run.config.data, state_dir=run.path).preprocessor()


def _load_export(folder: Path, device: str | None) -> Predictor:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != "deepatlas-export" or manifest.get("version") != FORMAT_VERSION:
            raise ValueError(f"format {manifest.get('format')!r} version {manifest.get('version')!r}")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder / MANIFEST}: not a deepatlas export (version {FORMAT_VERSION}) ({exc}).") from None
    config = load_recipe(folder / "config.yaml")
    meta = manifest.get("meta") or {}
    task = build_task(config, meta)
    model = build_model(config)
    weights = folder / WEIGHTS
    try:
        with safe_open(str(weights), framework="pt") as f:
            recorded = (f.metadata() or {}).get("hash")
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc}).") from None
    verify_digest(weights, state, "", recorded)
    try:
        model.load_state_dict(state)
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(f"{folder / WEIGHTS}: does not fit the exported model ({exc}).") from None
    restore_calibration(task, folder)
    model.to(resolve_device(device or config.train.device))
    return Predictor(model, config, task, load_preprocessor(folder), meta, str(manifest.get("source") or folder))


def export(
    ref: str | Path | Run, out: str | Path, *, checkpoint: str = "best", runs_dir: str | Path | None = None,
) -> Path:
    """Export a run (its ``checkpoint`` weights, EMA when kept) as a self-contained folder ``out``."""
    return load(ref, device="cpu", checkpoint=checkpoint, runs_dir=runs_dir).export(out)


__all__: Sequence[str] = ("Predictor", "export", "load")

