"""The study driver: many ordinary runs, one Optuna study (Akiba et al., 2019).

``tune`` asks the study for a trial, turns it into overrides (:mod:`.space`), trains the recipe with
them through :func:`deepatlas.api.train` (a normal run in the run store) and tells the study the
outcome: COMPLETE with the objective values, PRUNED when the pruning callback stopped the run, FAIL
when the run failed or raised (the study goes on). The study lives in an Optuna storage, by default
the SQLite file ``<runs_dir>/studies.db``; any Optuna URL (``postgresql://...``) lets several
workers share one study. Studies are created with ``load_if_exists``, so calling ``tune`` again
with the same name continues an interrupted study. SIGTERM or Ctrl-C stops the running trial's
training after its step (its run ``interrupted``, with a checkpoint), tells the trial FAIL with the
user attribute ``interrupted`` (the signal), starts no other trial and logs how to resume; a second
signal stops at once.

Each trial's user attributes hold its run id, overrides and compute (train FLOPs = FLOPs per
training example x examples seen; CPU and wall seconds; epochs done of planned), so that a study's
cost can be summed and the savings of pruning estimated.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import shlex
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.signals import stop_signals
from ..errors import ConfigError, one_of, suggest
from ..io import derive_seed, write_json
from ..registry import TASKS
from ..tracking.compare import flatten
from .callbacks import MetricNotFound, PruningCallback, StopWhenAsked, TrialLink
from .objectives import objective_values
from .space import (
    SearchSpec,
    format_value,
    parse_search,
    probes,
    resolve_monitor,
    sample,
    to_overrides,
)

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "grid", "cmaes", "nsga2")
PRUNERS = ("none", "median", "asha", "hyperband")
_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail", "RUNNING": "running", "WAITING": "waiting"}


@dataclass
class StudyResult:
    """What ``tune`` returns: every trial of the study as a row, and the best ones.

    ``best`` is the best trial (single objective) or the Pareto front (several objectives), as rows.
    """

    name: str
    storage: str
    objectives: list[dict[str, str]]
    trials: list[dict[str, Any]]
    best: list[dict[str, Any]]
    compute: dict[str, Any] = field(default_factory=dict)
    folder: str = ""
    interrupted: bool = False

    @property
    def best_trial(self) -> dict[str, Any] | None:
        return self.best[0] if self.best and len(self.objectives) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "storage": self.storage, "objectives": self.objectives, "trials": self.trials,
            "best": self.best, "compute": self.compute, "folder": self.folder, "interrupted": self.interrupted,
        }


# --------------------------------------------------------------------------- the driver


def tune(
    recipe: Config | str | os.PathLike[str],
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    trials: int,
    sampler: str | Any = "tpe",
    pruner: str | Any = "none",
    timeout: float | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    runs_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool | None = False,
) -> StudyResult | None:
    """Search the recipe's ``search:`` space with ``trials`` more runs; returns the study summary.

    ``sampler``: tpe, random, grid, cmaes, nsga2 or an Optuna sampler object; ``pruner``: none,
    median, asha, hyperband or an Optuna pruner object. ``timeout`` (seconds) starts no new trial
    once passed. ``study_name`` defaults to the recipe's name; ``storage`` to
    $DEEPATLAS_STUDY_STORAGE, else ``sqlite:///<runs_dir>/studies.db``. Several workers sharing a storage should use distinct seeds.
    """
    from ..engine import distributed
    from ..engine.device import resolve_device

    if trials < 1:
        raise ConfigError(f"--trials: must be >= 1, got {trials}.")
    overrides = _as_strings(overrides)
    config = _load(recipe, overrides)
    with distributed.session(resolve_device(config.train.device).type, config.train.dist_timeout_s) as here:
        if here.active and not here.main:  # rank 0 drives the study; this rank trains each trial beside it
            return _follow_trials(recipe, runs_dir)
        result = _tune(recipe, overrides, config, trials, sampler, pruner, timeout, study_name, storage, runs_dir, seed, progress)
        if here.active:
            distributed.broadcast(None)  # no more trials
        return result


def _follow_trials(recipe: Config | str | os.PathLike[str], runs_dir: str | Path | None) -> StudyResult | None:
    """A rank after 0 of a distributed search: train the trials rank 0 announces, until it announces none."""
    from .. import api
    from ..engine import distributed

    while (overrides := distributed.broadcast(None)) is not None:
        with contextlib.suppress(Exception):  # rank 0 records the failure; the search goes on
            api.train(recipe, overrides, runs_dir=runs_dir, progress=False)
    return None


def _tune(
    recipe: Config | str | os.PathLike[str], overrides: list[str], config: Config, trials: int, sampler: str | Any,
    pruner: str | Any, timeout: float | None, study_name: str | None, storage: str | None, runs_dir: str | Path | None,
    seed: int, progress: bool | None,
) -> StudyResult:
    from ..tracking import RunStore

    if not config.search:
        raise ConfigError(_no_search_message(recipe, config))
    task = TASKS.get(config.task.name, "task.name").factory
    spec = parse_search(config.search, resolve_monitor(config), task.metric_directions(config.task.options))
    _check_space(recipe, overrides, spec)
    chosen_sampler, chosen_pruner = _strategies(sampler, pruner, spec, config, seed)  # fail before a study exists
    root = RunStore(runs_dir).ensure_root()  # a file or read-only --runs-dir: one line, before a study
    url = storage_url(storage, root)
    study = _open_study(study_name or config.recipe or config.model.name, url, spec, _setup(config, spec))
    _fail_stale_trials(study, root)
    if isinstance(sampler, str) and study.trials:  # a resumed study must not replay the first call's samples
        chosen_sampler = make_sampler(sampler, spec, derive_seed(seed, len(study.trials)) % 2**32)
    study.sampler, study.pruner = chosen_sampler, chosen_pruner
    driver = _Driver(study, spec, recipe, overrides, root, url, progress)
    driver.run(trials, timeout)
    result = summarize(study, url, root)
    result.interrupted = driver.interrupted
    if driver.stopped_by is not None:
        log.warning("%s", _stop_line(driver, trials, recipe, overrides, storage, runs_dir, sampler, pruner, seed))
    write_json(Path(result.folder) / "summary.json", result.to_dict())
    return result


def _stop_line(driver: _Driver, trials: int, recipe: Any, overrides: Sequence[str], storage: str | None,
               runs_dir: str | Path | None, sampler: Any, pruner: Any, seed: int) -> str:
    """``tune: stopped by SIGTERM after 2 of 5 trials; trial 7 interrupted (run ...); resume with `deepatlas tune ...```."""
    from ..config import Config

    if driver.interrupted_trial is not None:
        number, run_id = driver.interrupted_trial
        what = f"trial {number} interrupted" + (f" (run {run_id})" if run_id else "")
    else:
        what = "no trial was running"
    name = driver.study.study_name
    words = ["deepatlas", "tune", (recipe.recipe or "RECIPE") if isinstance(recipe, Config) else str(recipe), *overrides,
             "--trials", str(max(trials - driver.finished, 1)), "--study", name]
    for flag, value, default in (("--sampler", sampler, "tpe"), ("--pruner", pruner, "none"), ("--seed", seed, 0)):
        if isinstance(value, str | int) and value != default:
            words += [flag, str(value)]
    if storage:
        words += ["--storage", redact(storage)]
    if runs_dir is not None:
        words += ["--runs-dir", str(runs_dir)]
    return (f"tune: stopped by {driver.stopped_by} after {driver.finished} of {trials} trials; {what}; "
            f"resume with `{shlex.join(words)}`")


def recipes_with_search() -> list[str]:
    """The recipes found by name whose YAML (after ``extends:``) has a ``search:`` section."""
    from ..config import list_recipes, load_raw_recipe

    found = []
    for name in list_recipes():
        try:
            if load_raw_recipe(name).get("search"):
                found.append(name)
        except ConfigError:  # a broken recipe is reported when it is used, not while listing
            continue
    return found


def _no_search_message(recipe: Config | str | os.PathLike[str], config: Config) -> str:
    from ..config import Config

    name = (config.recipe or "this config") if isinstance(recipe, Config) else str(recipe)
    with_search = recipes_with_search()
    example = f" (e.g. `deepatlas tune {with_search[0]} --trials 20`)" if with_search else ""
    return (
        f"recipe {name!r}: has no `search:` section, so there is nothing to tune; recipes with one: "
        f"{', '.join(with_search) or 'none'}{example}; or write a recipe with `extends: {name}` and "
        "`search: {space: {optim.lr: {type: float, low: 1.0e-4, high: 0.1, log: true}}}`."
    )


def _strategies(sampler: str | Any, pruner: str | Any, spec: SearchSpec, config: Config, seed: int) -> tuple[Any, Any]:
    """The sampler and pruner objects: by name, or given as Optuna objects."""
    import optuna

    if isinstance(sampler, optuna.samplers.GridSampler | optuna.samplers.BruteForceSampler):
        raise ConfigError("sampler: pass sampler='grid' (its grid comes from search.space); a grid object "
                          "stops an optimize loop, and tune drives trials by ask and tell.")
    if isinstance(sampler, str):
        sampler = make_sampler(sampler, spec, seed)
    if isinstance(pruner, str):
        pruner = make_pruner(pruner, spec, config)
    return sampler, pruner


def _as_strings(overrides: Sequence[str] | Mapping[str, Any]) -> list[str]:
    return to_overrides(overrides) if isinstance(overrides, Mapping) else list(overrides)


def _load(recipe: Config | str | os.PathLike[str], overrides: Sequence[str]) -> Config:
    from ..config import Config, load_recipe

    return recipe.override(overrides) if isinstance(recipe, Config) else load_recipe(recipe, overrides)


def _trial_overrides(overrides: Sequence[str], trial: Sequence[str]) -> list[str]:
    """The run's overrides: the user's (minus search.*), the trial's (later, so they win), no search section."""
    base = [o for o in overrides if _key(o) != "search" and not _key(o).startswith("search.")]
    return [*base, *trial, "search=null"]


def _key(override: str) -> str:
    return override.partition("=")[0].strip()


def _check_space(recipe: Any, overrides: Sequence[str], spec: SearchSpec) -> None:
    """Load the recipe with each searched key at its bounds (every choice): a key the recipe does not
    have, or a value it rejects, fails now with the command line's message rather than in every trial."""
    for values in probes(spec.space):
        try:
            _load(recipe, _trial_overrides(overrides, to_overrides(values)))
        except ConfigError as exc:
            shown = " ".join(to_overrides(values))
            raise ConfigError(f"search.space: {exc} (with {shown})") from None


def storage_url(storage: str | None, runs_dir: Path) -> str:
    """The Optuna storage URL: ``storage``, else $DEEPATLAS_STUDY_STORAGE, else ``<runs_dir>/studies.db``."""
    storage = storage or os.environ.get("DEEPATLAS_STUDY_STORAGE")
    if storage:
        _check_driver(storage)
        return storage
    runs_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(runs_dir / 'studies.db').resolve()}"


def open_storage(url: str, attempts: int = 6) -> Any:
    """Optuna's database storage at ``url``. Workers that start together on an empty database race to
    create its tables (the loser gets a duplicate-key error): creating them is retried. A server that
    cannot be reached is a clear error naming the URL (password hidden)."""
    import optuna
    import sqlalchemy.exc

    def create() -> Any:
        try:
            return optuna.storages.RDBStorage(url)
        except sqlalchemy.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            raise ConfigError(f"--storage {redact(url)}: cannot open the study storage: {reason}") from None

    for attempt in range(attempts - 1):
        try:
            return create()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 * (attempt + 1) + 0.1 * (os.getpid() % 7))  # staggered by process
    return create()


def _check_driver(url: str) -> None:
    """A PostgreSQL URL without its driver installed: say what to install (SQLAlchemy's default is psycopg2)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("postgresql", "postgres", "postgresql+psycopg2"):
        return
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"--storage {redact(url)}: PostgreSQL needs its driver: pip install 'deepatlas[postgres]' (psycopg2-binary)"
        ) from None


def redact(url: str) -> str:
    """A storage URL without its password (``postgresql://user:***@host/db``)."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


# Keys about where and how visibly a run trains, not what it learns: workers and resumes may differ.
_PLACE_KEYS = {"train.device", "train.threads", "train.log_every", "train.checkpoint_every", "data.num_workers",
               "data.eval_batch_size", "data.root"}


def _setup(config: Config, spec: SearchSpec) -> dict[str, Any]:
    """What a study is about: the base config and the search; a resumed study must match it."""
    base = config.to_dict()
    base.pop("search", None)
    base.pop("description", None)
    flat = {k: v for k, v in flatten(base).items() if k not in _PLACE_KEYS}
    return json.loads(json.dumps({"config": flat, "search": spec.to_dict()}, default=str))


def _open_study(name: str, url: str, spec: SearchSpec, setup: dict[str, Any]) -> Any:
    import optuna

    study = optuna.create_study(storage=open_storage(url), study_name=name, directions=spec.directions, load_if_exists=True)
    directions = [d.name.lower() for d in study.directions]
    if directions != spec.directions:
        raise ConfigError(
            f"--study {name}: exists in {redact(url)} with directions {directions}, not {spec.directions}; "
            "choose another study name."
        )
    old = study.user_attrs.get("deepatlas")
    if old is None:
        study.set_user_attr("deepatlas", setup)
        study.set_user_attr("objectives", [o.name for o in spec.objectives])
    elif old != setup:
        raise ConfigError(f"--study {name}: exists in {redact(url)} for {_difference(old, setup)}; "
                          "resume it with the same recipe, overrides and search, or choose another --study name.")
    return study


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("search") != new.get("search"):
        return f"another search ({old.get('search')})"
    a, b = old.get("config", {}), new.get("config", {})
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return "another config (" + ", ".join(f"{k}={a.get(k)!r} there, {b.get(k)!r} now" for k in keys[:3]) + ")"


def _fail_stale_trials(study: Any, root: Path) -> None:
    """Trials left RUNNING by a process of this host that no longer exists (killed) become FAIL, and
    their runs, left ``created`` or ``running`` by the same process, become ``failed``."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("hostname") == host and isinstance(attrs.get("pid"), int) and not _alive(attrs["pid"]):
            log.warning("trial %d: its process %d is gone; marked FAIL", trial.number, attrs["pid"])
            study.tell(trial.number, state=TrialState.FAIL)
            if attrs.get("run_id"):
                _fail_stale_run(str(attrs["run_id"]), root, trial.number, attrs["pid"])


def _fail_stale_run(run_id: str, root: Path, number: int, pid: int) -> None:
    """Mark the run of a killed trial ``failed``; a run another store holds, or one that already
    finished, is left as it is."""
    from ..errors import RunError
    from ..tracking import RunStore

    try:
        run = RunStore(root).open(run_id)
    except RunError:
        log.info("trial %d: its run %s is not in %s; left as it is", number, run_id, root)
        return
    if run.summary.get("status") in ("created", "running"):
        run.update_summary(status="failed", reason=f"its tuning worker (pid {pid}) died; trial {number} marked FAIL",
                           pid=None)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process runs one trial at a time, and none yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- samplers and pruners


def make_sampler(name: str, spec: SearchSpec, seed: int) -> Any:
    """An Optuna sampler by name, seeded."""
    import importlib.util

    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return _grid_sampler()({p.name: p.grid_values() for p in spec.space}, seed=seed)
    if name == "cmaes":
        if spec.multi_objective:
            raise ConfigError("--sampler cmaes: optimises one objective; use nsga2 or tpe with search.objectives.")
        if importlib.util.find_spec("cmaes") is None:
            raise ConfigError("--sampler cmaes: needs the cmaes package (pip install cmaes).")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise ConfigError(f"--sampler: {name!r} is not a sampler (allowed: {one_of(SAMPLERS)})." + suggest(name, SAMPLERS))


@functools.cache
def _grid_sampler() -> type:
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid, for ask/tell: the driver checks ``is_exhausted`` before each trial, as there is
        no ``optimize`` loop for the grid's own ``study.stop()`` to end."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            pass

    return GridSampler


def make_pruner(name: str, spec: SearchSpec, config: Config) -> Any:
    """An Optuna pruner by name; its steps are epochs."""
    import optuna

    if name not in PRUNERS:
        raise ConfigError(f"--pruner: {name!r} is not a pruner (allowed: {one_of(PRUNERS)})." + suggest(name, PRUNERS))
    if name == "none":
        return optuna.pruners.NopPruner()
    if spec.multi_objective or spec.objectives[0].is_cost:
        raise ConfigError(f"--pruner {name}: pruning compares a validation metric of one objective; use --pruner none.")
    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    epochs_searched = any(p.name == "train.epochs" for p in spec.space)
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto" if epochs_searched else config.train.epochs)


# --------------------------------------------------------------------------- one trial


class _StopSignals:
    """SIGINT and SIGTERM while a study runs: the first asks it to stop, a second stops at once.

    While a trial trains, the trainer's own handler takes these signals (the run checkpoints after the
    step and returns ``interrupted``) and restores this one afterwards; this one covers the rest of a
    trial (asking Optuna, loading data, building the model, the test evaluation) and the time between
    trials, where the default action would kill the process and leave the trial RUNNING.
    """

    def __init__(self) -> None:
        self.name: str | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def first(name: str) -> None:
            self.name = name
            log.warning("%s: the study stops after this trial's current step (send again to stop at once)", name)

        with stop_signals(first, lambda: self.name is not None):
            yield


class _Driver:
    """Runs trials of one study, one at a time."""

    def __init__(self, study: Any, spec: SearchSpec, recipe: Any, overrides: list[str], runs_dir: Path,
                 url: str, progress: bool | None) -> None:
        self.study, self.spec, self.recipe, self.overrides = study, spec, recipe, overrides
        self.runs_dir, self.url, self.progress = runs_dir, url, progress
        self.signals = _StopSignals()
        self.interrupted = False
        self.stopped_by: str | None = None  # the signal that stopped the study
        self.interrupted_trial: tuple[int, str | None] | None = None  # (trial number, run id)
        self.finished = 0  # trials of this call that ran to an end (complete, pruned or failed)

    def run(self, trials: int, timeout: float | None) -> None:
        """Up to ``trials`` trials; none started after ``timeout`` seconds, after a signal or a full grid."""
        start = time.monotonic()
        with self.signals.installed():
            for _ in range(trials):
                if timeout is not None and time.monotonic() - start >= timeout:
                    log.info("timeout of %ss reached: no new trial", timeout)
                    return
                if hasattr(self.study.sampler, "is_exhausted") and self.study.sampler.is_exhausted(self.study):
                    log.info("the grid is exhausted")
                    return
                if self.signals.name is None:
                    self.run_trial()
                    self.finished += self.interrupted_trial is None
                if self.interrupted_trial is not None or self.signals.name is not None:
                    self.stopped_by = self.stopped_by or self.signals.name
                    self.interrupted = True
                    return

    def run_trial(self) -> None:
        from optuna.trial import TrialState

        from .. import api

        trial = self.study.ask()
        values = sample(self.spec.space, trial)
        overrides = to_overrides(values)
        for key, value in (("overrides", overrides), ("hostname", socket.gethostname()), ("pid", os.getpid())):
            trial.set_user_attr(key, value)
        link = TrialLink(trial, {"study": self.study.study_name, "storage": redact(self.url), "params": values,
                                 "overrides": overrides})
        first = self.spec.objectives[0]
        callbacks: list[Any] = [link, StopWhenAsked(lambda: self.signals.name)]
        if not self.spec.multi_objective and not first.is_cost:
            callbacks.append(PruningCallback(trial, first.name))
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={format_value(v)}" for k, v in values.items())
        log.info("trial %d: %s", trial.number, shown)  # rounded for reading; the run gets the exact values
        from ..engine import distributed

        everything = _trial_overrides(self.overrides, overrides)
        if distributed.world().active:  # every rank trains this trial; rank 0 keeps the callbacks
            distributed.broadcast(everything)
        try:
            run = api.train(self.recipe, everything, runs_dir=self.runs_dir, callbacks=callbacks, progress=self.progress)
        except KeyboardInterrupt:  # a second signal outside the trainer: stop at once, but leave no RUNNING trial
            self._interrupt(trial, link, self.signals.name or "SIGINT", at_once=True)
            return
        except MetricNotFound as exc:
            self._fail(trial, link, f"{type(exc).__name__}: {exc}")
            raise
        except Exception as exc:  # a failed trial is data, not the end of the study
            self._fail(trial, link, f"{type(exc).__name__}: {exc}")
            return
        summary = run.summary
        trial.set_user_attr("status", summary.get("status"))
        for key, value in trial_compute(summary).items():
            trial.set_user_attr(key, value)
        status = summary.get("status")
        if status == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
            link.finish(state="pruned", reason=summary.get("reason"))
            log.info("trial %d pruned: %s", trial.number, summary.get("reason"))
            return
        if status == "interrupted":
            found = re.search(r"stopped by (SIG[A-Z]+)", summary.get("reason") or "")
            self._interrupt(trial, link, found.group(1) if found else (self.signals.name or "a signal"), at_once=False)
            return
        if status != "completed":
            self._fail(trial, link, f"run {status}: {summary.get('reason')}")
            return
        try:
            objective = objective_values(run, self.spec.objectives)
        except MetricNotFound as exc:
            self._fail(trial, link, str(exc))
            raise
        except Exception as exc:
            self._fail(trial, link, f"{type(exc).__name__}: {exc}")
            return
        self.study.tell(trial, objective)
        link.finish(state="complete", values=objective)
        log.info("trial %d: %s", trial.number, ", ".join(f"{o.name} {v:.6g}" for o, v in zip(self.spec.objectives, objective, strict=True)))

    def _interrupt(self, trial: Any, link: TrialLink, name: str, at_once: bool) -> None:
        """The trial's run was stopped by a signal: FAIL in the study, marked ``interrupted`` (the signal's
        name) in its user attributes, ``interrupted`` in the run store; the study stops."""
        from ..tracking import Run, RunStore

        self.stopped_by = name
        self.interrupted_trial = (trial.number, link.run_path.name if link.run_path is not None else None)
        trial.set_user_attr("interrupted", name)
        if link.run_path is not None and at_once:
            run = Run(link.run_path, RunStore(self.runs_dir))
            if run.summary.get("status") in ("created", "running"):
                run.update_summary(status="interrupted", reason=f"stopped at once by a second {name}", pid=None)
        self._fail(trial, link, f"interrupted by {name}" + (" (stopped at once)" if at_once else ""))

    def _fail(self, trial: Any, link: TrialLink, error: str) -> None:
        from optuna.trial import TrialState

        log.warning("trial %d failed: %s", trial.number, error)
        trial.set_user_attr("error", error[:2000])
        if link.run_path is not None:
            from ..tracking import Run

            for key, value in trial_compute(Run(link.run_path).summary).items():
                trial.set_user_attr(key, value)
        self.study.tell(trial, state=TrialState.FAIL)
        link.finish(state="fail", error=error)


def trial_compute(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The compute a run used, from its summary: train FLOPs (per example x examples seen), CPU and
    wall seconds, and epochs done of planned (to scale a pruned run to its full length)."""
    flops = summary.get("flops") or {}
    progress = summary.get("progress") or {}
    times = summary.get("time") or {}
    energy = summary.get("energy") or {}
    samples = progress.get("samples")
    per_sample = flops.get("train_per_sample")
    return {
        "train_flops": per_sample * samples if per_sample is not None and samples is not None else None,
        "cpu_s": times.get("cpu_s"),
        "wall_s": times.get("wall_s"),
        "energy_j": energy.get("joules"),
        "co2e_g": energy.get("co2e_g"),
        "samples": samples,
        "epochs": progress.get("epoch"),
        "epochs_total": progress.get("epochs"),
        "data_fingerprints": {k: v for k, v in ((summary.get("data") or {}).get("fingerprints") or {}).items()
                              if k in ("train", "val")},
    }


# --------------------------------------------------------------------------- summaries


def trial_row(trial: Any) -> dict[str, Any]:
    """One trial as a plain row: number, state, values, params, run id, compute, error."""
    attrs = trial.user_attrs
    return {
        "number": trial.number,
        "state": _STATES.get(trial.state.name, trial.state.name.lower()),
        "values": list(trial.values) if trial.values is not None else None,
        "params": dict(trial.params),
        "overrides": attrs.get("overrides", []),
        "run_id": attrs.get("run_id"),
        "compute": {k: attrs.get(k) for k in ("train_flops", "cpu_s", "wall_s", "energy_j", "co2e_g", "epochs", "epochs_total")},
        "error": attrs.get("error"),
        "data_fingerprints": attrs.get("data_fingerprints"),
    }


def study_compute(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Compute of a study, and what pruning saved: a pruned trial's use scaled to its planned epochs,
    minus what it used (an estimate: later epochs cost as much as earlier ones)."""
    total = {"train_flops": 0.0, "cpu_s": 0.0, "wall_s": 0.0, "energy_j": 0.0, "co2e_g": 0.0}
    would, used = dict.fromkeys(total, 0.0), dict.fromkeys(total, 0.0)
    pruned = 0
    for row in rows:
        c = row.get("compute") or {}
        for key in total:
            total[key] += c.get(key) or 0.0
        if row.get("state") == "pruned" and c.get("epochs") and c.get("epochs_total"):
            pruned += 1
            scale = c["epochs_total"] / c["epochs"]
            for key in total:
                used[key] += c.get(key) or 0.0
                would[key] += (c.get(key) or 0.0) * scale
    saved = {k: would[k] - used[k] for k in total}
    share = {k: saved[k] / (total[k] + saved[k]) if total[k] + saved[k] > 0 else 0.0 for k in total}
    return {"total": total, "pruned_trials": pruned, "pruned_used": used, "saved": saved, "saved_share": share}


def study_folder(runs_dir: Path, name: str) -> Path:
    """``<runs_dir>/studies/<name>/`` (the name made safe for a folder)."""
    safe = re.sub(r"[^\w.-]+", "_", name).strip("._") or "study"
    return runs_dir / "studies" / safe


def summarize(study: Any, url: str, runs_dir: Path) -> StudyResult:
    """The study as a :class:`StudyResult`."""
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    names = study.user_attrs.get("objectives") or [f"objective {i}" for i in range(len(study.directions))]
    objectives = [{"name": n, "direction": d.name.lower()} for n, d in zip(names, study.directions, strict=True)]
    by_number = {r["number"]: r for r in rows}
    complete = [r for r in rows if r["state"] == "complete"]
    if not complete:
        best = []
    elif len(objectives) == 1:
        best = [by_number[study.best_trial.number]]
    else:
        best = [by_number[t.number] for t in study.best_trials]
    return StudyResult(
        name=study.study_name, storage=redact(url), objectives=objectives, trials=rows, best=best,
        compute=study_compute(rows), folder=str(study_folder(runs_dir, study.study_name)),
    )
