"""Recipes: the typed configuration of a run, YAML loading and dotted overrides.

A recipe is a YAML file with the sections ``data``, ``model``, ``task``,
``optim``, ``schedule`` and ``train``, and optionally ``search`` (the
hyperparameter search of ``deepatlas tune``, parsed by
:mod:`deepatlas.tune.space`; training ignores it) (see ``deepatlas config show RECIPE``
for every key with its type, default and doc). ``data``, ``model`` and
``task`` are *named* sections: their ``name`` picks a registered dataset,
model or task, whose own options are validated next to the common keys.

Overrides use dotted paths, ``model.width=512 optim.lr=3e-4``; values are
read as YAML (``true``, ``[1, 2]``, ``null``). Overriding a named section's
``name`` (``model.name=resnet32``) starts a model afresh from the new preset,
keeping only the section's common keys; a new dataset or task also keeps the
recipe's values of the options it shares with the old one (``data.links``).
The fully resolved config is saved with every run and can be trained again as is.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from . import schema
from .errors import ConfigError, one_of, suggest
from .registry import DATASETS, MODELS, TASKS, Registry
from .schema import option

# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is batched (common to all datasets)."""

    name: str = option("digits", "dataset to train on (see `deepatlas datasets`)")
    root: Optional[str] = option(
        None, "data directory searched first (default: $DEEPATLAS_DATA_DIR, then system paths)"
    )
    batch_size: int = option(128, "training examples per micro-batch", low=1)
    eval_batch_size: int = option(512, "examples per batch in validation and evaluation", low=1, resumable=True)
    num_workers: Optional[int] = option(
        None, "loader worker processes (null: 0 for in-memory data, up to 4 for files)", low=0, resumable=True
    )
    val_fraction: float = option(
        0.1, "fraction of the training set held out for validation (seeded)", low=0.0, high=0.9
    )
    split_seed: int = option(0, "seed of the train/validation split (independent of train.seed)")
    limit: Optional[int] = option(
        None, "use only this many training examples (after the seeded split); for quick trials", low=1
    )
    options: Any = None  # dataset-specific options (flattened into this section in YAML)


@dataclass(frozen=True)
class ModelSection:
    """A registered model and its config (flattened into the section in YAML)."""

    name: str = option(None, "model to build (see `deepatlas models`)")
    options: Any = None


@dataclass(frozen=True)
class TaskSection:
    """A registered task (the objective) and its options."""

    name: str = option("classification", "objective: how a batch becomes losses and metrics")
    options: Any = None


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer (update rule) and its hyperparameters."""

    name: Literal["sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs"] = option(
        "adamw", "update rule: sgd, adam, adamw, rmsprop, adagrad or lbfgs (full-batch quasi-Newton, for small fits)"
    )
    lr: float = option(1e-3, "base learning rate (the peak of warm-up or one-cycle)", low=0.0)
    weight_decay: float = option(0.0, "weight decay (L2 for sgd/adam, decoupled for adamw)", low=0.0)
    decay_norm_and_bias: bool = option(
        True, "apply weight decay to normalisation weights and biases too (false: exclude them)"
    )
    momentum: float = option(0.9, "momentum (sgd and rmsprop)", low=0.0, high=1.0)
    nesterov: bool = option(False, "Nesterov momentum (sgd)")
    betas: tuple[float, float] = option((0.9, 0.999), "moment decay rates (adam, adamw)", low=0.0, high=1.0)
    eps: float = option(1e-8, "denominator epsilon (adam, adamw, rmsprop, adagrad)", low=0.0)
    alpha: float = option(0.99, "squared-gradient smoothing (rmsprop)", low=0.0, high=1.0)
    l1: float = option(
        0.0, "L1 penalty l1 * sum |w| on weights, not biases or norms (with weight_decay: the elastic net)", low=0.0)
    fused: Optional[bool] = option(
        None, "fused kernels of adam, adamw and sgd (one kernel for all parameters; CUDA and CPU; null: on for those "
        "three in one process or DDP, off under FSDP)")
    lbfgs_max_iter: int = option(20, "lbfgs: iterations per optimizer step (each with a strong-Wolfe line search)", low=1)
    lbfgs_history: int = option(10, "lbfgs: curvature pairs kept (history size m)", low=1)
    freeze: tuple[str, ...] = option(
        (), "fine-tuning: glob patterns of parameter names that never train (e.g. [stem, stages.0.*]; a module path "
        "matches its parameters)")
    lr_groups: Optional[dict[str, float]] = option(  # noqa: RUF009 (the default, None, is immutable)
        None, "fine-tuning: discriminative learning rates, {pattern: factor} (lr = optim.lr x factor; first match wins)")
    unfreeze: tuple[str, ...] = option(
        (), "fine-tuning: gradual unfreezing, parameter groups from the top down (e.g. [head, stages.2, stages.1]); "
        "epoch e trains groups 0..e (Howard & Ruder 2018)")

    def validate(self, path: str) -> None:
        if self.nesterov and (self.name != "sgd" or self.momentum <= 0):
            raise ConfigError(f"{path}.nesterov: needs optim.name=sgd and optim.momentum > 0.")
        if self.fused and self.name not in ("adam", "adamw", "sgd"):
            raise ConfigError(f"{path}.fused: torch fuses adam, adamw and sgd, not {self.name}; set optim.fused=false.")
        if self.name == "lbfgs":
            for key, off in (("weight_decay", 0.0), ("lr_groups", None), ("l1", 0.0)):
                if getattr(self, key) != off:
                    reset = "{}" if key == "lr_groups" else "0"
                    raise ConfigError(f"{path}.{key}: lbfgs has one parameter group and no penalties; set {path}.{key}={reset} "
                                      "(the recipe may set it) or pick another optim.name.")
        for pattern, factor in (self.lr_groups or {}).items():
            if not (math.isfinite(factor) and factor >= 0):
                raise ConfigError(
                    f"{path}.lr_groups.{pattern}: {factor!r} is not a learning-rate factor (must be >= 0); "
                    "e.g. optim.lr_groups={'head': 1.0, 'body': 0.1}."
                )


@dataclass(frozen=True)
class ScheduleConfig:
    """How the learning rate changes over training."""

    name: Literal["constant", "step", "multi-step", "cosine", "warmup-cosine", "one-cycle", "inverse-sqrt"] = option(
        "constant", "learning-rate schedule"
    )
    interval: Literal["step", "epoch"] = option(
        "step", "update the learning rate after every optimizer step or only at epoch ends"
    )
    unit: Literal["epoch", "step"] = option(
        "epoch", "unit of warmup, step_size and milestones: epochs or optimizer steps"
    )
    warmup: float = option(0.0, "linear warm-up length from 0 to optim.lr (any schedule)", low=0.0)
    step_size: float = option(30.0, "step: decay by gamma every step_size units", low=0.0)
    milestones: tuple[float, ...] = option((), "multi-step: decay by gamma at each milestone", low=0.0)
    gamma: float = option(0.1, "step, multi-step: multiplicative decay", low=0.0)
    min_lr: float = option(0.0, "cosine, warmup-cosine: final learning rate", low=0.0)
    pct_start: float = option(0.3, "one-cycle: fraction of training spent rising", low=0.0, high=1.0)
    div_factor: float = option(25.0, "one-cycle: initial lr = optim.lr / div_factor", low=1.0)
    final_div_factor: float = option(1e4, "one-cycle: final lr = initial lr / final_div_factor", low=1.0)

    def validate(self, path: str) -> None:
        if self.name == "multi-step":
            if not self.milestones:
                raise ConfigError(f"{path}.milestones: multi-step needs at least one milestone.")
            if list(self.milestones) != sorted(self.milestones):
                raise ConfigError(f"{path}.milestones: must be increasing, got {list(self.milestones)}.")
        if self.name in ("warmup-cosine", "inverse-sqrt") and self.warmup <= 0:
            raise ConfigError(f"{path}.warmup: {self.name} needs warmup > 0 (in schedule.unit).")
        if self.name == "step" and self.step_size <= 0:
            raise ConfigError(f"{path}.step_size: must be > 0 for the step schedule.")


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train: precision, checkpoints, early stopping."""

    epochs: int = option(10, "passes over the training set", low=1, resumable=True)
    max_steps: Optional[int] = option(None, "stop after this many optimizer steps (null: use epochs)", low=1, resumable=True)
    seed: int = option(0, "seed of initialisation, data order, augmentation and dropout")
    device: str = option("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps", resumable=True)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto", "auto: bf16 autocast where it pays (CUDA with bf16; a CPU with AMX or AVX-512 BF16 and at least "
        "the work per batch where bf16 pays for the kind of network: 0.5 GFLOP for conv nets, 4 for GroupNorm conv "
        "nets and networks at least 192 wide, 15 for narrower ones; not the statistical tasks' likelihood fits), else fp32; fp32; bf16 autocast (CPU or GPU); "
        "fp16 autocast with loss scaling (GPU)"
    )
    channels_last: Optional[bool] = option(
        None, "NHWC memory format for convolutional models (null: on for models with 2-d convolutions under bf16)")
    compile: bool = option(False, "torch.compile the model")
    grad_clip: Optional[float] = option(None, "clip the global gradient norm to this value", low=0.0)
    grad_accum: int = option(1, "micro-batches accumulated per optimizer step", low=1)
    ema_decay: Optional[float] = option(
        None, "keep an exponential moving average of the weights (e.g. 0.999); evaluated instead of the raw weights", low=0.0, high=1.0
    )
    eval_every: int = option(1, "validate every N epochs", low=1)
    checkpoint_every: int = option(
        500, "also checkpoint every N optimizer steps (0: only at epoch ends)", low=0, resumable=True
    )
    log_every: int = option(50, "log training loss every N optimizer steps", low=1, resumable=True)
    early_stopping: Optional[int] = option(
        None, "stop after this many validations without improvement (null: never)", low=1, resumable=True
    )
    min_delta: float = option(0.0, "smallest change of the monitored metric that counts", low=0.0)
    monitor: Optional[str] = option(None, "validation metric for best checkpoint and early stopping (null: the task's)")
    mode: Literal["auto", "max", "min"] = option("auto", "whether the monitored metric should go up or down")
    test: bool = option(False, "evaluate the best checkpoint on the test split when training ends", resumable=True)
    init_from: Optional[str] = option(
        None, "start from another run's weights (id, folder or .safetensors); layers of matching shape are loaded"
    )
    threads: Optional[int] = option(
        None, "CPU threads for torch (null: chosen from the free cores and the work per batch, kept on resume)",
        low=1, resumable=True,
    )
    deterministic: bool = option(False, "use deterministic algorithms only (slower on GPU)")
    strategy: Literal["ddp", "fsdp"] = option(
        "ddp", "with several processes (torchrun, --nproc N): DistributedDataParallel (weights on every rank) or FSDP "
        "(weights, gradients and optimizer state sharded across ranks; checkpoints gathered into one file)")
    dist_timeout_s: float = option(
        300.0, "with several processes: seconds a rank waits for the others in a collective before the run fails",
        low=1.0, resumable=True)
    loggers: tuple[str, ...] = option((), "also log to: tensorboard, mlflow, csv (any of them; the run store always records)",
                                      resumable=True)
    mlflow_uri: Optional[str] = option(
        None, "MLflow tracking URI for the mlflow logger (null: $MLFLOW_TRACKING_URI, else sqlite:///<runs dir>/mlflow.db)",
        resumable=True)

    def validate(self, path: str) -> None:
        allowed = ("tensorboard", "mlflow", "csv")
        for name in self.loggers:
            if name not in allowed:
                raise ConfigError(f"{path}.loggers: unknown logger {name!r} (allowed: {', '.join(allowed)})." + suggest(name, allowed))
        if not _DEVICE.match(self.device):
            raise ConfigError(
                f"{path}.device: {self.device!r} is not a device (allowed: auto, cpu, cuda, cuda:N, mps)."
                + suggest(self.device, ["auto", "cpu", "cuda", "mps"])
            )


# --------------------------------------------------------------------------- the config

_SECTIONS = ("data", "model", "task", "optim", "schedule", "train")
_TOP_LEVEL = (*_SECTIONS, "recipe", "description", "reference", "extends", "search")
_NAMED = (("data", DataConfig, DATASETS), ("model", ModelSection, MODELS), ("task", TaskSection, TASKS))


@dataclass(frozen=True)
class Config:
    """A fully typed and validated recipe."""

    data: DataConfig
    model: ModelSection
    task: TaskSection
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    recipe: str = ""
    description: str = ""
    reference: Optional[dict[str, Any]] = None
    search: Optional[dict[str, Any]] = None  # hyperparameter search (deepatlas.tune.space); training ignores it

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Config:
        """Validate a plain mapping (a parsed recipe) into a Config."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"a recipe must be a mapping of sections, got {type(raw).__name__}.")
        schema.check_keys("", raw, _TOP_LEVEL)
        if "extends" in raw:
            raise ConfigError("extends: must be resolved by load_recipe (it names another recipe).")
        for key in _SECTIONS:
            if raw.get(key) is not None and not isinstance(raw[key], Mapping):
                raise ConfigError(f"{key}: expected a mapping of keys, got {raw[key]!r}.")
        if not raw.get("model") or "name" not in raw["model"]:
            raise ConfigError(
                "model.name: required key is missing (see `deepatlas models` for the choices)."
            )
        # Names and keys first, from the catalogue: the common mistakes fail before
        # the model, dataset and task modules (and torch) are imported.
        for key, common_cls, registry in _NAMED:
            _check_named(key, raw.get(key), common_cls, registry)
        _check_data_kind(raw)
        optim = schema.parse(OptimConfig, raw.get("optim"), "optim")
        schedule = schema.parse(ScheduleConfig, raw.get("schedule"), "schedule")
        train = schema.parse(TrainConfig, raw.get("train"), "train")
        _check_closure_optimizer(optim, train)
        return cls(
            data=_parse_named("data", raw.get("data"), DataConfig, DATASETS),
            model=_parse_named("model", raw.get("model"), ModelSection, MODELS),
            task=_parse_named("task", raw.get("task"), TaskSection, TASKS),
            optim=optim,
            schedule=schedule,
            train=train,
            recipe=schema.coerce(raw.get("recipe", ""), str, "recipe"),
            description=" ".join(schema.coerce(raw.get("description", ""), str, "description").split()),
            reference=schema.coerce(raw.get("reference"), Optional[dict[str, Any]], "reference"),
            search=schema.coerce(raw.get("search"), Optional[dict[str, Any]], "search"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Every key with its value, named sections flattened (the saved form)."""
        out: dict[str, Any] = {"recipe": self.recipe}
        if self.description:
            out["description"] = self.description
        if self.reference:
            out["reference"] = schema.to_dict(self.reference)
        for key in _SECTIONS:
            section = getattr(self, key)
            flat = schema.to_dict(section)
            options = flat.pop("options", None)
            out[key] = {**flat, **(options or {})}
        if self.search:
            out["search"] = copy.deepcopy(self.search)
        return out

    def override(self, overrides: Iterable[str] | Mapping[str, Any]) -> Config:
        """A new Config with dotted overrides applied (``["optim.lr=0.1"]``)."""
        raw = self.to_dict()
        for dotted, value in _override_items(overrides):
            set_dotted(raw, dotted, value)
        return Config.from_dict(raw)

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    """Sections as blocks, lists of numbers inline (``layers: [3, 3, 3]``)."""


_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def _check_closure_optimizer(optim: OptimConfig, train: TrainConfig) -> None:
    """L-BFGS evaluates the loss several times per step on one batch: no accumulation, scaling or clipping."""
    if optim.name != "lbfgs":
        return
    for key, value, fine in (("grad_accum", train.grad_accum, 1), ("precision", train.precision, "fp32"),
                             ("grad_clip", train.grad_clip, None)):
        if value != fine and not (key == "precision" and value == "auto"):  # auto resolves to fp32 for lbfgs
            raise ConfigError(
                f"train.{key}: optim.name=lbfgs re-evaluates the loss inside its line search and needs "
                f"train.{key}={'null' if fine is None else fine}; set it, or pick another optim.name."
            )


def _section_name(path: str, raw: Mapping[str, Any], common_cls: type) -> str:
    default_name = next(f.default for f in dataclasses.fields(common_cls) if f.name == "name")
    return schema.coerce(raw.get("name", default_name), str, f"{path}.name")


def _common_keys(common_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(common_cls) if f.name != "options"]


def _check_named(path: str, raw: Any, common_cls: type, registry: Registry) -> None:
    """The name and keys of a named section, checked against the registry's catalogue (no imports)."""
    raw = dict(raw or {})
    listing = registry.listing(_section_name(path, raw, common_cls), f"{path}.name")
    schema.check_keys(path, raw, _common_keys(common_cls) + list(listing.keys))


def _check_data_kind(raw: Mapping[str, Any]) -> None:
    """The task takes the kind of data the dataset serves (from the catalogue: no imports)."""
    data = _section_name("data", dict(raw.get("data") or {}), DataConfig)
    task = _section_name("task", dict(raw.get("task") or {}), TaskSection)
    wanted = TASKS.listing(task, "task.name").data_kinds
    served = DATASETS.listing(data, "data.name").data_kinds
    if not wanted or not served or wanted[0] in served:
        return  # a task that takes any data, or a dataset that declares no kind (your own): nothing to check
    fits = [name for name, listing in DATASETS.listings().items() if wanted[0] in listing.data_kinds]
    raise ConfigError(
        f"data.name: task {task!r} takes {wanted[0]} data, but dataset {data!r} serves {' / '.join(served)} data "
        f"(datasets that fit: {one_of(fits, limit=20)}); set data.name to one of them or pick another task.name."
    )


def _parse_named(path: str, raw: Any, common_cls: type, registry: Registry) -> Any:
    """Parse a section whose ``name`` selects a registered options dataclass."""
    raw = dict(raw or {})
    name = _section_name(path, raw, common_cls)
    entry = registry.get(name, f"{path}.name")
    common = _common_keys(common_cls)
    specific = [f.name for f in dataclasses.fields(entry.config)] if entry.config is not None else []
    schema.check_keys(path, raw, common + specific)
    options = schema.replace(
        entry.config, {k: v for k, v in raw.items() if k in specific}, path
    ) if entry.config is not None else None
    common_raw = {k: v for k, v in raw.items() if k in common}
    common_raw["name"] = name
    return schema.parse(common_cls, {**common_raw, "options": options}, path)


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=3e-4"`` -> ``("optim.lr", 3e-4)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(
            f"override {text!r}: expected key=value with a dotted key, e.g. optim.lr=0.01."
        )
    key, _, value = text.partition("=")
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
        raise ConfigError(f"override {text!r}: {key!r} is not a dotted key like optim.lr.")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def _override_items(overrides: Iterable[str] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Parsed overrides; ``model.name`` and the like come first, as they reset their section."""
    items = list(overrides.items()) if isinstance(overrides, Mapping) else [parse_override(o) for o in overrides]
    return sorted(items, key=lambda item: not item[0].endswith(".name"))


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``raw["a"]["b"] = value`` for ``dotted == "a.b"``, creating sections."""
    parts = dotted.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"{dotted}: {where} is a value, not a section.")
        node = child
    if len(parts) == 1 and parts[0] in _SECTIONS:
        raise ConfigError(f"{dotted}: is a section; set one of its keys, e.g. {dotted}.name=...")
    # Changing a named section's `name` resets keys that belong to the old choice.
    named = len(parts) == 2 and parts[0] in ("model", "data", "task") and parts[1] == "name"
    if named and node.get("name") != value:
        _drop_foreign_keys(node, parts[0], value)
    node[parts[-1]] = value


def _drop_foreign_keys(section: dict[str, Any], kind: str, new_name: Any) -> None:
    """A new model/dataset/task: keys that configured the old one and that the new one lacks no longer apply.

    A dataset or task keeps the recipe's values of the options the new choice also has
    (``data.name=graph-csv`` on a link-prediction recipe keeps ``links: true``): such keys
    mean the same for every dataset or task of a kind (how the data is served, the objective),
    and losing them breaks the recipe. Keys the new choice lacks are dropped without an error,
    since they configured only the old one. A model starts afresh from its preset: its keys
    are the preset's architecture (``layers`` kept from resnet20 would turn resnet56 into resnet20).
    """
    common_cls, registry = {"model": (ModelSection, MODELS), "data": (DataConfig, DATASETS), "task": (TaskSection, TASKS)}[kind]
    keep = {f.name for f in dataclasses.fields(common_cls)}
    if kind != "model" and isinstance(new_name, str):
        with contextlib.suppress(ConfigError):  # an unknown name: Config.from_dict reports it with the choices
            keep |= set(registry.listing(new_name).keys)
    for key in list(section):
        if key not in keep:
            del section[key]


# --------------------------------------------------------------------------- recipes


def recipe_dirs() -> list[Path]:
    """Folders searched for recipes by name, first match wins."""
    dirs = []
    env = os.environ.get("DEEPATLAS_RECIPES")
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    here = Path(__file__).resolve().parent
    dirs.append(here / "recipes")  # inside an installed wheel
    dirs.append(here.parent.parent / "recipes")  # a source checkout (src/ layout)
    return [d for d in dirs if d.is_dir()]


def list_recipes() -> dict[str, Path]:
    """All recipes found by name, ``{name: path}``."""
    found: dict[str, Path] = {}
    for folder in recipe_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def find_recipe(name_or_path: str | os.PathLike[str]) -> Path:
    """Resolve a recipe name (``resnet20-fashion-mnist``) or a path to a file."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir() and (path / "config.yaml").is_file():
        return path / "config.yaml"  # a run folder: train its resolved config again
    recipes = list_recipes()
    stem = text[: -len(".yaml")] if text.endswith(".yaml") else text
    if stem in recipes:
        return recipes[stem]
    raise ConfigError(
        f"recipe {text!r}: no such file or recipe (recipes: {one_of(recipes, limit=30)})."
        + suggest(stem, recipes)
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (PyYAML lets the last one win silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, Hashable) and key in seen:
                raise ConfigError(
                    f"{key_node.start_mark.name}: line {line}: key {key!r} is given twice in one section "
                    f"(first on line {seen[key]}); keep one of them."
                )
            if isinstance(key, Hashable):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning syntax errors into one-line messages."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); a recipe is YAML text saved as UTF-8."
        ) from None
    except ConfigError:
        raise
    except ValueError as exc:  # e.g. a NUL byte, which PyYAML reports as a reader error or a ValueError
        raise ConfigError(f"{path}: not a YAML text file ({exc}).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f": line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem}).") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror}).") from None


def _deep_merge(base: dict[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw_recipe(name_or_path: str | os.PathLike[str], _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The recipe as a plain mapping, with ``extends:`` resolved."""
    path = find_recipe(name_or_path)
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections, got {type(raw).__name__}.")
    raw.setdefault("recipe", path.stem if path.name != "config.yaml" else raw.get("recipe", ""))
    base = raw.pop("extends", None)
    if base is not None:
        if str(base) in _seen:
            raise ConfigError(f"{path}: extends: recipes extend each other in a loop ({base}).")
        parent = load_raw_recipe(base, (*_seen, str(base)))
        parent.pop("description", None)  # what a recipe is and claims is its own
        parent.pop("reference", None)
        raw = _deep_merge(parent, raw)
    return raw


def load_recipe(
    name_or_path: str | os.PathLike[str],
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> Config:
    """Load, override and validate a recipe: ``load_recipe("quickstart", ["train.epochs=5"])``."""
    raw = load_raw_recipe(name_or_path)
    for dotted, value in _override_items(overrides):
        set_dotted(raw, dotted, value)
    return Config.from_dict(raw)


def resumable_keys() -> frozenset[str]:
    """The keys a resumed run may change: the options declared ``resumable`` (how long and where, not what)."""
    return frozenset(schema.resumable_keys(TrainConfig, "train") + schema.resumable_keys(DataConfig, "data"))
