"""The training config (TOML): data mix, input size, architecture, schedule, augmentation.

Every section is a frozen dataclass; an unknown key or a value of the wrong type is a ConfigError that
names the key, so a typo in a config meant to run for hours fails in the first second.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from device.contract import InputSpec
from device.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ARCHITECTURES = ("length_digits", "ctc")  # the heads trainer/models.py builds; named here so a config parses without Keras
VAL_SEED = 20240  # validation and evaluation sets are drawn with this seed, so every run is compared alike


@dataclass(frozen=True)
class DataConfig:
    mix: dict = field(default_factory=lambda: {"rendered": 1.0})  # source name -> share of each batch
    options: dict = field(default_factory=dict)  # source name -> its options, e.g. rendered = {difficulty = "easy"}
    val_sets: tuple = ("rendered",)  # sources whose "val" split is the validation for early stopping
    val_size: int = 512  # samples per validation set
    val_weights: dict = field(default_factory=dict)  # set -> weight in the early-stopping score (default 1)
    cache: str = ""  # folder of pre-rendered shards (trainer/shards.py); "" renders on the fly
    cache_samples: int = 0  # samples rendered into the cache before training starts
    cache_refresh: int = 0  # fresh shards rendered into the cache at the start of each epoch
    cache_workers: int = 2


STEMS = ("pool", "strided")


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "ctc"  # "ctc" or "length_digits" (trainer/models.py)
    width: float = 1.0  # channel multiplier
    stem: str = "pool"  # "pool": first conv at full resolution, then 2x2 max-pool; "strided": that conv at stride 2
    stem_channels: int = 0  # the first conv's filters (0: from width)
    dropout: float = 0.3
    height: int = InputSpec().height
    input_width: int = InputSpec().width
    init: str = ""  # a .keras model of the same architecture whose weights start the run ("" = random)


@dataclass(frozen=True)
class ScheduleConfig:
    batch_size: int = 64
    steps_per_epoch: int = 200
    epochs: int = 30
    learning_rate: float = 2e-3
    warmup_epochs: int = 1
    min_lr_fraction: float = 0.05  # cosine decay ends at this fraction of learning_rate
    weight_decay: float = 1e-4
    patience: int = 8  # epochs without a better validation score before stopping
    time_limit_minutes: float = 0.0  # stop cleanly after this long (0 = no limit)


@dataclass(frozen=True)
class AugmentConfig:
    invert: float = 0.0  # probability of swapping dark and light
    shift: int = 0  # random translation up to this many pixels (edge-padded)
    noise: float = 0.0  # sigma of added grey-level noise


@dataclass(frozen=True)
class TrainConfig:
    name: str
    seed: int = 1
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    augment: AugmentConfig = AugmentConfig()

    @property
    def spec(self) -> InputSpec:
        return InputSpec(height=self.model.height, width=self.model.input_width)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "schedule": ScheduleConfig, "augment": AugmentConfig}


def _coerce(cls, where: str, values: dict):
    """Build one section, rejecting unknown keys and values of the wrong type by name."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: want a table, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls() if where != "config" else None
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(fields))})")
        want = type(getattr(defaults, key)) if defaults is not None else None
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is tuple and isinstance(value, list):
            value = tuple(value)
        if want is not None and not isinstance(value, want) or isinstance(value, bool) and want is not bool:
            raise ConfigError(f"{where}.{key}: want {want.__name__ if want else '?'}, got {value!r}")
        out[key] = value
    return cls(**out)


def config_from_dict(data: dict, default_name: str = "run") -> TrainConfig:
    """A parsed TOML document -> TrainConfig; names the first bad key."""
    data = dict(data)
    top = {"name": data.pop("name", default_name), "seed": data.pop("seed", 1)}
    if not isinstance(top["name"], str) or not top["name"]:
        raise ConfigError(f"name: want a non-empty string, got {top['name']!r}")
    if not isinstance(top["seed"], int) or isinstance(top["seed"], bool):
        raise ConfigError(f"seed: want an integer, got {top['seed']!r}")
    for key, value in data.items():
        if key not in _SECTIONS:
            raise ConfigError(f"unknown key {key!r} (known: name, seed, {', '.join(_SECTIONS)})")
        top[key] = _coerce(_SECTIONS[key], key, value)
    config = TrainConfig(**top)
    _validate(config)
    return config


def _validate(config: TrainConfig) -> None:
    if config.model.architecture not in ARCHITECTURES:
        raise ConfigError(f"model.architecture: {config.model.architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    if config.model.stem not in STEMS:
        raise ConfigError(f"model.stem: {config.model.stem!r} is not one of {', '.join(STEMS)}")
    if config.model.stem_channels < 0:
        raise ConfigError(f"model.stem_channels: want 0 (from width) or a number of filters, got {config.model.stem_channels}")
    if not config.data.mix or any(not isinstance(w, (int, float)) or w < 0 for w in config.data.mix.values()):
        raise ConfigError(f"data.mix: want source = non-negative weight, got {config.data.mix!r}")
    for key in ("batch_size", "steps_per_epoch", "epochs"):
        if getattr(config.schedule, key) < 1:
            raise ConfigError(f"schedule.{key}: want at least 1")
    if not 0.0 <= config.augment.invert <= 1.0:
        raise ConfigError(f"augment.invert: want a probability 0..1, got {config.augment.invert}")


def load_config(path: Path) -> TrainConfig:
    """Read a training config file; a missing file or bad TOML is a one-line ConfigError."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read training config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"training config {path} is not valid TOML: {exc}") from None
    return config_from_dict(data, default_name=path.stem)
