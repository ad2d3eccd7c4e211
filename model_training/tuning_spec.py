"""The tuning spec: one YAML file that drives both SageMaker hyperparameter tuning and the local Optuna tuner.

Validated on load: an unknown key, a range outside what :class:`~model_training.hparams.HParams` accepts, or a
combination SageMaker would reject (Grid with continuous ranges, Hyperband with early stopping, spot without enough
wait time) raises :class:`TuningSpecError` naming the field. See ``tuning/rnn.yaml`` for a commented example.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model_training.hparams import BOUNDS, HParams
from tone.errors import ToneError
from tone.scoring.kinds import MODEL_KINDS, ModelKind

Strategy = Literal["Bayesian", "Random", "Hyperband", "Grid"]
Scaling = Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]
INTEGER_FIELDS = ("epochs", "batch_size", "max_length", "hidden_size", "seed", "patience", "lexicon", "vader_stack")


class TuningSpecError(ToneError):
    """The tuning spec is invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Objective(_Strict):
    """What the tuner maximises, and how it reads it from the training job's log (SageMaker's metric regex)."""

    metric: str = "val_macro_f1"
    type: Literal["Maximize", "Minimize"] = "Maximize"
    # The entry point prints ``epoch=N ... val_macro_f1=0.71`` per epoch and ``best_val_macro_f1=...`` last; like
    # SageMaker, the tuner takes the last match as the job's final objective value.
    regex: str = r"val_macro_f1=([0-9]*\.?[0-9]+)"

    @model_validator(mode="after")
    def _one_group(self) -> Objective:
        try:
            groups = re.compile(self.regex).groups
        except re.error as exc:
            msg = f"regex does not compile: {exc}"
            raise ValueError(msg) from None
        if groups != 1:
            msg = f"regex needs exactly one capture group for the value, has {groups}"
            raise ValueError(msg)
        return self


class ContinuousRange(_Strict):
    """A float range."""

    type: Literal["continuous"]
    min: float
    max: float
    scaling: Scaling = "Auto"


class IntegerRange(_Strict):
    """An integer range."""

    type: Literal["integer"]
    min: int
    max: int
    scaling: Scaling = "Auto"


class CategoricalRange(_Strict):
    """A list of values (strings or numbers; SageMaker passes them as strings)."""

    type: Literal["categorical"]
    values: list[str | int | float] = Field(min_length=1, max_length=30)


ParameterRange = Annotated[ContinuousRange | IntegerRange | CategoricalRange, Field(discriminator="type")]


class WarmStart(_Strict):
    """Warm-start from earlier tuning jobs (SageMaker: at most 5 parents)."""

    type: Literal["IdenticalDataAndAlgorithm", "TransferLearning"] = "IdenticalDataAndAlgorithm"
    parents: list[str] = Field(default_factory=list, max_length=5)


class HyperbandConfig(_Strict):
    """Resources (epochs) for the Hyperband strategy / pruner."""

    min_resource: int = Field(1, ge=1)
    max_resource: int = Field(10, ge=1)


class Resources(_Strict):
    """Where each training job runs on SageMaker."""

    instance_type: str = "ml.c5.2xlarge"
    instance_count: int = Field(1, ge=1, le=20)
    volume_gb: int = Field(30, ge=1, le=16384)
    max_runtime_s: int = Field(3600, ge=60, le=28 * 24 * 3600)


class Spot(_Strict):
    """Managed spot training; checkpoints let an interrupted job resume instead of starting over."""

    enabled: bool = False
    max_wait_s: int = Field(7200, ge=60)
    checkpoint_s3_uri: str | None = None  # default: s3://<bucket>/<name>/checkpoints


class Framework(_Strict):
    """The SageMaker PyTorch training container."""

    pytorch_version: str = "2.5"
    py_version: str = "py311"
    image_uri: str | None = None  # overrides the lookup (e.g. a private ECR image)


class TuningSpec(_Strict):
    """The whole spec."""

    name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")  # a SageMaker tuning job name is <= 32 chars
    model: ModelKind = "rnn"
    data: str = "vader-tweets"
    objective: Objective = Objective()
    strategy: Strategy = "Bayesian"
    max_jobs: int | None = Field(None, ge=1, le=750)
    max_parallel_jobs: int = Field(1, ge=1, le=100)
    early_stopping: Literal["Auto", "Off"] = "Off"
    random_seed: int | None = Field(None, ge=0)
    parameters: dict[str, ParameterRange] = Field(min_length=1)
    static: dict[str, str | int | float] = Field(default_factory=dict)
    warm_start: WarmStart | None = None
    hyperband: HyperbandConfig = HyperbandConfig()
    resources: Resources = Resources()
    spot: Spot = Spot()
    framework: Framework = Framework()

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare Off / On as booleans.
        if isinstance(value, bool):
            return "Auto" if value else "Off"
        return value

    @model_validator(mode="after")
    def _check_parameters(self) -> TuningSpec:
        known = {f for f in HParams.__dataclass_fields__ if f != "model"}
        for name, rng in self.parameters.items():
            where = f"parameters.{name}"
            if name not in known:
                _invalid(f"{where}: not a training hyperparameter; known: {', '.join(sorted(known))}")
            if isinstance(rng, CategoricalRange):
                for value in rng.values:
                    _check_value(name, value, f"{where}.values")
            else:
                _check_range(name, rng, where)
        for name, value in self.static.items():
            if name not in known:
                _invalid(f"static.{name}: not a training hyperparameter; known: {', '.join(sorted(known))}")
            if name in self.parameters:
                _invalid(f"static.{name}: also given a range under parameters; keep one")
            _check_value(name, value, f"static.{name}")
        return self

    @model_validator(mode="after")
    def _check_strategy(self) -> TuningSpec:
        if self.strategy == "Grid":
            if not all(isinstance(r, CategoricalRange) for r in self.parameters.values()):
                _invalid("strategy Grid: SageMaker grid search takes categorical parameters only")
            if self.max_jobs is not None and self.max_jobs > self.grid_size():
                _invalid(f"max_jobs: {self.max_jobs} is more than the grid's {self.grid_size()} points")
        elif self.max_jobs is None:
            _invalid(f"max_jobs: required with strategy {self.strategy}")
        if self.strategy == "Hyperband" and self.early_stopping != "Off":
            _invalid("early_stopping: must be Off with strategy Hyperband (it stops jobs itself)")
        if self.hyperband.min_resource > self.hyperband.max_resource:
            _invalid("hyperband.min_resource: must be <= hyperband.max_resource")
        if self.max_parallel_jobs > (self.max_jobs or self.grid_size()):
            _invalid("max_parallel_jobs: more than the number of jobs")
        if self.spot.enabled and self.spot.max_wait_s < self.resources.max_runtime_s:
            _invalid("spot.max_wait_s: must be >= resources.max_runtime_s (SageMaker's rule)")
        return self

    def grid_size(self) -> int:
        """Number of grid points (product of categorical value counts)."""
        size = 1
        for rng in self.parameters.values():
            size *= len(rng.values) if isinstance(rng, CategoricalRange) else 1
        return size

    @property
    def n_trials(self) -> int:
        """How many training jobs run (max_jobs, or the grid size)."""
        return self.max_jobs or self.grid_size()

    def static_hyperparameters(self) -> dict[str, str]:
        """Static values as SageMaker passes them (strings), including the model kind."""
        return {"model": self.model, **{k: str(v) for k, v in self.static.items()}}

    def hparams(self, values: dict[str, Any]) -> HParams:
        """HParams for one trial: the static values plus the trial's sampled ones."""
        return HParams.from_hyperparameters({**self.static_hyperparameters(), **{k: str(v) for k, v in values.items()}})


def _invalid(msg: str) -> NoReturn:
    raise ValueError(msg)


def _check_range(name: str, rng: ContinuousRange | IntegerRange, where: str) -> None:
    if name in INTEGER_FIELDS and isinstance(rng, ContinuousRange):
        _invalid(f"{where}: {name} is an integer; use type: integer")
    if not math.isfinite(rng.min) or not math.isfinite(rng.max) or rng.min >= rng.max:
        _invalid(f"{where}: min must be < max, got {rng.min} .. {rng.max}")
    low, high = BOUNDS.get(name, (-math.inf, math.inf))
    if rng.min < low or rng.max > high:
        _invalid(f"{where}: {rng.min} .. {rng.max} leaves the allowed [{low}, {high}]")
    if rng.scaling == "Logarithmic" and rng.min <= 0:
        _invalid(f"{where}: Logarithmic scaling needs min > 0")
    if rng.scaling == "ReverseLogarithmic" and (rng.max >= 1 or isinstance(rng, IntegerRange)):
        _invalid(f"{where}: ReverseLogarithmic needs a continuous range within [0, 1)")


def _check_value(name: str, value: Any, where: str) -> None:
    try:
        HParams.from_hyperparameters({name: str(value)})
    except ValueError as exc:
        _invalid(f"{where}: {exc}")


def _field_path(loc: tuple[Any, ...]) -> str:
    # Drop pydantic's discriminator tags ("continuous") so the path reads like the YAML: parameters.lr.min
    return ".".join(str(p) for p in loc if p not in ("continuous", "integer", "categorical"))


def load_spec(path: str | Path) -> TuningSpec:
    """Read and validate a YAML tuning spec."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"tuning spec {path} does not exist (the repo ships tuning/rnn.yaml)"
        raise TuningSpecError(msg) from None
    except yaml.YAMLError as exc:
        msg = f"tuning spec {path} is not valid YAML: {exc}"
        raise TuningSpecError(msg) from None
    return parse_spec(raw, source=str(path))


def parse_spec(raw: Any, *, source: str = "tuning spec") -> TuningSpec:
    """Validate an already-parsed mapping."""
    if not isinstance(raw, dict):
        msg = f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        raise TuningSpecError(msg)
    if raw.get("model", "rnn") not in MODEL_KINDS:
        msg = f"{source}: model: must be one of {', '.join(MODEL_KINDS)}, got {raw.get('model')!r}"
        raise TuningSpecError(msg)
    try:
        return TuningSpec.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            text = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{_field_path(err['loc'])}: {text}" if err["loc"] else text)
        msg = f"{source} is invalid:\n  " + "\n  ".join(lines)
        raise TuningSpecError(msg) from None
