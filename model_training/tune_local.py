"""`tone tune local`: the tuning spec run as real trials with Optuna, each trial the SageMaker entry point itself.

Mapping from the spec (what SageMaker would do -> what runs here):

- strategy Bayesian -> Optuna TPE sampler; Random -> random sampler; Grid -> grid sampler over the categorical
  values; Hyperband -> random sampler with Optuna's Hyperband pruner (SageMaker's Hyperband is random search with
  successive halving on the same per-epoch metric);
- early_stopping Auto -> the Hyperband pruner too, fed by the per-epoch objective lines the entry point prints;
- max_jobs / max_parallel_jobs -> trials / concurrent trials (threads, each supervising one training process);
- warm_start parents -> earlier local studies (same Optuna SQLite file): their best trials are enqueued first;
- the objective regex -> applied to each trial's stdout; the last match is the final value, as on SageMaker.

Each trial is a subprocess ``python -m model_training.sm_entry --name value ...`` with ``SM_MODEL_DIR``,
``SM_CHANNEL_TRAIN`` and ``SM_OUTPUT_DATA_DIR`` set, so a trial is exactly what a SageMaker training job runs.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model_training.tuning_spec import CategoricalRange, ContinuousRange, IntegerRange, TuningSpec
from tone import envvars
from tone.settings import Settings

EPOCH = re.compile(r"\bepoch=(\d+)\b")


class TrialFailedError(RuntimeError):
    """A training process exited non-zero or printed no objective value."""


@dataclass
class TrialRow:
    """One trial, as reported in the results table and results.json."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    epochs: int
    seconds: float
    model_dir: str
    intermediate: dict[int, float] = field(default_factory=dict)


@dataclass
class LocalTuningResult:
    """What a local tuning run produced."""

    study: str
    workdir: Path
    trials: list[TrialRow]
    best: TrialRow | None
    plot: Path
    published: str | None = None


def prepare_channel(data: str, settings: Settings, directory: Path) -> Path:
    """Write the dataset as one JSONL file (id, text, label, weight) into a channel directory; returns the file."""
    from tone.datasets import load_dataset

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tweets.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for ex in load_dataset(data, settings.data_dir):
            fh.write(json.dumps({"id": ex.id, "text": ex.text, "label": ex.label, "weight": ex.weight}) + "\n")
    return path


def _sampler(spec: TuningSpec) -> Any:
    import optuna

    seed = spec.random_seed
    if spec.strategy == "Bayesian":
        return optuna.samplers.TPESampler(seed=seed)
    if spec.strategy == "Grid":
        space = {name: list(r.values) for name, r in spec.parameters.items() if isinstance(r, CategoricalRange)}
        return optuna.samplers.GridSampler(space, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _pruner(spec: TuningSpec) -> Any:
    import optuna

    if spec.strategy == "Hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.hyperband.min_resource, max_resource=spec.hyperband.max_resource
        )
    if spec.early_stopping == "Auto":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()


def suggest(trial: Any, spec: TuningSpec) -> dict[str, Any]:
    """Sample one trial's hyperparameters from the spec's ranges."""
    values: dict[str, Any] = {}
    for name, rng in spec.parameters.items():
        if isinstance(rng, CategoricalRange):
            values[name] = trial.suggest_categorical(name, rng.values)
        elif isinstance(rng, IntegerRange):
            values[name] = trial.suggest_int(name, rng.min, rng.max, log=rng.scaling == "Logarithmic")
        elif isinstance(rng, ContinuousRange) and rng.scaling == "ReverseLogarithmic":
            # Dense near max (e.g. a momentum near 1): sample 1 - x log-uniformly, as SageMaker describes it.
            values[name] = 1.0 - trial.suggest_float(f"1-{name}", 1.0 - rng.max, 1.0 - rng.min, log=True)
        else:
            values[name] = trial.suggest_float(name, rng.min, rng.max, log=rng.scaling == "Logarithmic")
    return values


class LocalTuner:
    """Runs a spec's trials; see the module docstring."""

    def __init__(
        self,
        spec: TuningSpec,
        settings: Settings,
        *,
        workdir: Path,
        data: str | None = None,
        parallel: int | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        """Prepare a run in ``workdir`` (an Optuna SQLite file there keeps every study for warm starts)."""
        self.spec = spec
        self.settings = settings
        self.workdir = Path(workdir)
        self.data = data or spec.data
        self.parallel = parallel or spec.max_parallel_jobs
        self.say = say
        self.study_name = f"{spec.name}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
        self.rows: dict[int, TrialRow] = {}
        self._lock = threading.Lock()

    def _storage(self) -> str:
        return f"sqlite:///{self.workdir / 'optuna.db'}"

    def _env(self, trial_dir: Path, channel: Path) -> dict[str, str]:
        env = dict(os.environ)
        threads = max(1, (os.cpu_count() or 1) // self.parallel)
        env |= {
            "SM_MODEL_DIR": str(trial_dir / "model"),
            "SM_CHANNEL_TRAIN": str(channel),
            "SM_OUTPUT_DATA_DIR": str(trial_dir / "output"),
            "SM_HPS": "{}",
            envvars.TRAIN_CHECKPOINT_DIR: str(trial_dir / "checkpoints"),
            envvars.TORCH_THREADS: str(threads),
            "OMP_NUM_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
        }
        return env

    def _objective(self, trial: Any, channel: Path) -> float:
        import optuna

        values = suggest(trial, self.spec)
        hp = self.spec.hparams(values)  # validates the combination before a process starts
        trial_dir = self.workdir / self.study_name / f"trial-{trial.number:03d}"
        trial_dir.mkdir(parents=True, exist_ok=True)
        args = [f"--{k}={v}" for k, v in {**self.spec.static_hyperparameters(), **values}.items()]
        row = TrialRow(trial.number, "RUNNING", None, values, 0, 0.0, str(trial_dir / "model"))
        with self._lock:
            self.rows[trial.number] = row
        self.say(f"trial {trial.number}: {json.dumps(values)} ({hp.epochs_} epochs max)")
        regex = re.compile(self.spec.objective.regex)
        t0 = time.monotonic()
        tail: deque[str] = deque(maxlen=20)
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, arguments from a validated spec
            [sys.executable, "-m", "model_training.sm_entry", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self._env(trial_dir, channel),
            cwd=trial_dir,
        )
        assert proc.stdout is not None
        value: float | None = None
        with (trial_dir / "train.log").open("w", encoding="utf-8") as log:
            for line in proc.stdout:
                log.write(line)
                tail.append(line.rstrip())
                match = regex.search(line)
                if match is None:
                    continue
                value = float(match.group(1))
                epoch = EPOCH.search(line)
                if epoch is None:
                    continue
                step = int(epoch.group(1))
                row.intermediate[step] = value
                row.epochs = step
                trial.report(value, step)
                if trial.should_prune():
                    proc.kill()
                    proc.wait()
                    row.state, row.value, row.seconds = "PRUNED", value, time.monotonic() - t0
                    self.say(f"trial {trial.number}: pruned after epoch {step} at {value:.4f}")
                    raise optuna.TrialPruned
        code = proc.wait()
        row.seconds = time.monotonic() - t0
        if code != 0 or value is None:
            row.state = "FAIL"
            reason = f"exit code {code}" if code else "no objective value matched the regex"
            self.say(f"trial {trial.number}: FAILED ({reason}); last lines:\n  " + "\n  ".join(tail))
            raise TrialFailedError(reason)
        row.state, row.value = "COMPLETE", value
        self.say(f"trial {trial.number}: {self.spec.objective.metric}={value:.4f} in {row.seconds:.0f} s")
        return value

    def run(self) -> LocalTuningResult:
        """Run every trial and write results.json and objective.png; returns the result (no publishing)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.workdir.mkdir(parents=True, exist_ok=True)
        channel = self.workdir / self.study_name / "data" / "train"
        prepare_channel(self.data, self.settings, channel)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self._storage(),
            direction="maximize" if self.spec.objective.type == "Maximize" else "minimize",
            sampler=_sampler(self.spec),
            pruner=_pruner(self.spec),
        )
        self._warm_start(study)
        self.say(
            f"study {self.study_name}: {self.spec.n_trials} trials, {self.parallel} at a time, "
            f"strategy {self.spec.strategy}, early stopping {self.spec.early_stopping}"
        )
        study.optimize(
            lambda t: self._objective(t, channel),
            n_trials=self.spec.n_trials,
            n_jobs=self.parallel,
            catch=(TrialFailedError,),
        )
        trials = [self.rows[n] for n in sorted(self.rows)]
        done = [r for r in trials if r.state == "COMPLETE" and r.value is not None]
        best = None
        if done:
            pick = max if self.spec.objective.type == "Maximize" else min
            best = pick(done, key=lambda r: r.value if r.value is not None else -math.inf)
        out = self.workdir / self.study_name
        (out / "results.json").write_text(
            json.dumps(
                {"study": self.study_name, "spec": self.spec.model_dump(), "trials": [asdict(r) for r in trials]},
                indent=2,
                default=str,
            )
        )
        plot = plot_objective(trials, self.spec, out / "objective.png", title=self.study_name)
        return LocalTuningResult(self.study_name, out, trials, best, plot)

    def _warm_start(self, study: Any) -> None:
        import optuna

        if self.spec.warm_start is None:
            return
        for parent in self.spec.warm_start.parents:
            try:
                old = optuna.load_study(study_name=parent, storage=self._storage())
            except KeyError:
                self.say(f"warm start: no earlier study {parent!r} in {self.workdir / 'optuna.db'}; skipped")
                continue
            complete = [t for t in old.trials if t.state == optuna.trial.TrialState.COMPLETE]
            reverse = self.spec.objective.type == "Maximize"
            for t in sorted(complete, key=lambda t: float(t.value or 0.0), reverse=reverse)[:3]:
                study.enqueue_trial(t.params, skip_if_exists=True)
            self.say(f"warm start: enqueued the best {min(3, len(complete))} trials of {parent}")


def plot_objective(trials: list[TrialRow], spec: TuningSpec, path: Path, *, title: str) -> Path:
    """PNG: the objective of each trial (pruned ones at their last reported value) and the best so far."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    colors = {"COMPLETE": "tab:blue", "PRUNED": "tab:orange", "FAIL": "tab:red", "RUNNING": "tab:gray"}
    for state, color in colors.items():
        xs = [r.number for r in trials if r.state == state and r.value is not None]
        ys = [r.value for r in trials if r.state == state and r.value is not None]
        if xs:
            ax.scatter(xs, ys, color=color, label=state.lower(), zorder=3)
    best_so_far: list[float] = []
    xs_best: list[int] = []
    better = max if spec.objective.type == "Maximize" else min
    for r in trials:
        if r.state == "COMPLETE" and r.value is not None:
            best_so_far.append(better(best_so_far[-1], r.value) if best_so_far else r.value)
            xs_best.append(r.number)
    if best_so_far:
        ax.step(xs_best, best_so_far, where="post", color="black", alpha=0.6, label="best so far")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(spec.objective.metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
