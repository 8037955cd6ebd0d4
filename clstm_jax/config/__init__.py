"""Typed, frozen configuration: TOML files, a preset, and strict `--set key=value` overrides.

Resolution order (later wins): the defaults below, the preset file
(`<preset>.toml` beside the experiment file), the experiment file, then each
`--set section.key=value`. Unknown keys and values of the wrong type or out of
range are errors that name the key, the value and what is allowed; they are
raised before any data is loaded or any file is written. Each section checks its own
fields (Literal types, `check_fields`); `validate` holds the rules across fields and ranges.
`experiments` holds the paper's experimental design: each named experiment's models.
May import: core, data, model.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from clstm_jax.core.choices import (
    Auto,
    Experiment,
    Family,
    Fusion,
    LengthUnit,
    Modality,
    StudyScope,
    check_choice,
    check_fields,
    choices,
)
from clstm_jax.core.errors import ConfigError
from clstm_jax.core.snr import snr_value
from clstm_jax.data.features import FeatureConfig
from clstm_jax.model.clstm import ModelConfig
from clstm_jax.model.spec import ModelSpec


@dataclass(frozen=True)
class DataConfig:
    """Which data, and how it is split."""

    data_dir: str = ""  # data directory; "" = --data-dir, else $CLSTM_JAX_DATA, else the per-user cache
    speakers: tuple[str, ...] = ()  # FSDD speakers; () = all on disk (the paper's five: see docs/data.md)
    split_seed: int = 0  # seed of the 8:1:1 shuffles of MNIST and FSDD
    verify: bool = True  # refuse files whose SHA-256 is not the published MNIST's and FSDD v1.0.10's; false for your own recordings (the run records it)
    pad_length: int = 0  # samples per recording, end-aligned; 0 = the longest recording loaded; longer recordings keep their last pad_length samples (docs/data.md)

    def __post_init__(self):
        check_fields(self, "data")


@dataclass(frozen=True)
class TrainConfig:
    """How long and how each model trains."""

    batch_size: int = 32  # same-label pairs per step, shared by every model of a sweep
    length: int = 87_516  # training length per model, in `length_unit`s (paper: 87,516)
    length_unit: LengthUnit = "examples"  # "examples" (steps = ceil(length / batch_size)) or "batches" (steps = length)
    learning_rate: float = 1e-3  # Adam learning rate (paper: 1e-3)
    validate_every: int = 100  # steps between validations (and best-state updates)
    validation_examples: int = 1024  # fixed validation subset, at each model's own training SNR
    checkpoint_every: int = 500  # steps between checkpoints (and always at the end)
    seed: int = 0  # root of every key: parameters, pairs, noise (fold_in per model and step)
    model_chunk: int | Auto = 0  # models computed side by side (vmap) per device; the rest loop (lax.map). 0 = all: best on GPU; on CPU small chunks are faster (docs/performance.md); "auto" = the widest that fits memory_budget_gb
    memory_budget_gb: float = 0.0  # device memory a program may use when a size is "auto"; 0 = the device's (GPU) or half the RAM (CPU)

    def __post_init__(self):
        check_fields(self, "train")

    @property
    def steps(self) -> int:
        return self.length if self.length_unit == "batches" else math.ceil(self.length / self.batch_size)


@dataclass(frozen=True)
class SweepConfig:
    """The models of a sweep: a named experiment of `clstm_jax.config.experiments`, or the product of the grid axes."""

    experiment: Experiment = ""  # fusion, appendix_fusion, snr_grid, unimodal_visual, unimodal_audio, study; "" = the axes below
    # model families: masked (one C-LSTM, C/2 channels per modality below the fusion layer), matched (C each:
    # width-matched), a2 (the paper's A.2 stream networks); also applies to an experiment's late-fusion models.
    # Initial fusion is one network in every family, trained once (clstm_jax/model/families.py)
    family: tuple[Family, ...] = ("masked",)
    fusion: tuple[Fusion, ...] = ("initial",)  # fusion depths: initial, second, fc
    modalities: tuple[Modality, ...] = ("both",)  # both, visual, audio (unimodal zero the other input)
    audio_snr: tuple[float | str, ...] = (0.5,)  # training audio SNRs (linear power ratios, or "orig")
    visual_snr: tuple[float | str, ...] = (0.25,)  # training visual SNRs
    seeds: tuple[int, ...] = (0,)  # model seeds (parameter init and noise streams)

    def __post_init__(self):
        check_fields(self, "sweep")


PAPER_TEST_SNRS = ("orig", 16, 8, 4, 2, 1, 0.5, 0.25, 0.125, 0.0625)


@dataclass(frozen=True)
class EvaluateConfig:
    """The test-SNR grid and the fixed test subset every model is evaluated on."""

    snrs: tuple[float | str, ...] = PAPER_TEST_SNRS  # test SNRs of both modalities (the grid is their square)
    examples: int = 512  # test pairs in the fixed subset shared by every model and grid point
    # test pairs where the study reads single points on their own (modality use, Fig. 7's audio swap): the
    # first `point_examples` of the same seeded draw, so its first `examples` are the grid's own pairs
    point_examples: int = 512
    batch: int | Auto = 512  # (example, grid point) items per program call; bounds memory, not results; "auto" = the widest that fits train.memory_budget_gb (at most 1024)
    seed: int = 0  # picks the subset and its noise: keys fixed per (example, grid point)

    def __post_init__(self):
        check_fields(self, "evaluate")


@dataclass(frozen=True)
class StudyConfig:
    """What `clstm-jax study` adds to the paper's experiments."""

    seeds: tuple[int, ...] = (0, 1, 2)  # seeds of the main fusion comparison (at fusion_point); other models use the first
    # (audio, visual) training SNRs of the fusion comparison that the 4.3 claims and Fig. 3 read: the paper's
    # (4.3, chosen in 4.5; clstm_jax/config/experiments.py FUSION_POINT) unless a study moves it; a point of evaluate.snrs
    fusion_point: tuple[float, ...] = (0.5, 0.25)
    # accuracy points: an "always >=" claim holds when no loss larger than this is left open; a claim tested by a
    # difference reads "equivalent within" it when the difference lies significantly inside +-margin (docs/study.md)
    margin: float = 2.0
    # families of the fusion comparison's late models (as sweep.family): each judges the 4.3 claims and draws its Fig. 3
    families: tuple[Family, ...] = ("masked",)
    # paper: every experiment of the paper; fusion: the fusion comparison only (its models at the fusion point, with
    # the two unimodal models trained there), judged on the claims those models decide (docs/study.md)
    scope: StudyScope = "paper"

    def __post_init__(self):
        check_fields(self, "study")


@dataclass(frozen=True)
class RuntimeConfig:
    """How a job runs, not what it computes: a resume may change these (run_dir.claim_run_dir ignores them)."""

    tensorboard: bool = True  # TensorBoard event files beside metrics.jsonl (RUN/tensorboard), and the report's figures
    compilation_cache: bool = True  # the persistent XLA compilation cache (clstm_jax/training/compilation_cache.py); also $CLSTM_JAX_COMPILATION_CACHE

    def __post_init__(self):
        check_fields(self, "runtime")


@dataclass(frozen=True)
class Config:
    """Everything a run needs; written resolved into the run directory."""

    preset: str = ""  # size preset file (tiny, cpu, paper) applied under the experiment file; "" = none
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    study: StudyConfig = field(default_factory=StudyConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


SECTION_TYPES = {
    "data": DataConfig, "features": FeatureConfig, "model": ModelConfig, "train": TrainConfig,
    "sweep": SweepConfig, "evaluate": EvaluateConfig, "study": StudyConfig, "runtime": RuntimeConfig,
}


def valid_keys() -> list[str]:
    keys = ["preset"]
    for section, cls in SECTION_TYPES.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def field_type(section: str, name: str):
    hints = typing.get_type_hints(SECTION_TYPES[section])
    return hints[name]


def coerce(key: str, value, annotation):
    """value checked (and converted where lossless) against a field's type annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        try:
            check_choice(key, value, annotation)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return value
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(coerce(key, item, item_type) for item in items)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return coerce(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{key} = {value!r}: expected {annotation_name(annotation)}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key} = {value!r}: expected nothing")
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} = {value!r}: expected a finite number")
    if annotation is bool or isinstance(value, bool):
        if annotation is bool and isinstance(value, bool):
            return value
        raise ConfigError(f"{key} = {value!r}: expected {annotation_name(annotation)}")
    if isinstance(value, annotation):
        return value
    raise ConfigError(f"{key} = {value!r}: expected {annotation_name(annotation)}")


def annotation_name(annotation) -> str:
    if typing.get_origin(annotation) is tuple:
        return f"a list of {annotation_name(typing.get_args(annotation)[0])}"
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(annotation_name(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(annotation))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(annotation, str(annotation))


def parse_value(text: str):
    """A --set value: TOML syntax (numbers, [lists], "strings", true/false), else the bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if "," in text:
            return [parse_value(part.strip()) for part in text.split(",")]
        return text


def apply_table(target: dict, table: dict, origin: str) -> None:
    """Merge a parsed TOML table into {section: {key: value}}, checking keys and types."""
    for key, value in table.items():
        if key == "preset":
            target["preset"] = coerce("preset", value, str)
            continue
        if key not in SECTION_TYPES or not isinstance(value, dict):
            raise unknown_key(key, origin)
        names = {f.name for f in dataclasses.fields(SECTION_TYPES[key])}
        for name, item in value.items():
            if name not in names:
                raise unknown_key(f"{key}.{name}", origin)
            target.setdefault(key, {})[name] = coerce(f"{key}.{name}", item, field_type(key, name))


def unknown_key(key: str, origin: str) -> ConfigError:
    return ConfigError(f"unknown config key {key!r} (in {origin}); valid keys: {', '.join(valid_keys())}")


def parse_override(text: str) -> dict:
    """'section.key=value' -> a one-entry table."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set train.batch_size=16")
    key, value = (part.strip() for part in text.split("=", 1))
    if key == "preset":
        return {"preset": parse_value(value) if value else ""}
    if "." not in key:
        raise unknown_key(key, "--set")
    section, name = key.split(".", 1)
    return {section: {name: parse_value(value)}}


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; expected a TOML config file such as sweeps/fusion.toml") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); expected a TOML file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None


def build(values: dict) -> Config:
    """Construct the frozen Config from {section: {key: value}}, then check every value's range."""
    sections = {}
    for section, cls in SECTION_TYPES.items():
        try:
            sections[section] = cls(**values.get(section, {}))
        except ValueError as err:  # FeatureConfig / ModelConfig check their own ranges
            raise ConfigError(str(err)) from None
    config = Config(preset=values.get("preset", ""), **sections)
    validate(config)
    return config


def from_record(record: dict, origin: str) -> Config:
    """The Config of a stored record (a run's config.json). Keys added to the code since the record was
    written take their defaults, which keep the behaviour of the code that wrote it (a rule for new keys)."""
    values: dict = {}
    apply_table(values, record, origin)
    return build(values)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """The resolved Config: defaults < preset file < experiment file < overrides."""
    values: dict = {}
    file_table = read_toml(Path(path)) if path else {}
    override_tables = [parse_override(text) for text in overrides]
    preset = file_table.get("preset", "")
    for table in override_tables:
        preset = table.get("preset", preset)
    if preset:
        preset_path = (Path(path).parent if path else Path("sweeps")) / f"{preset}.toml"
        if not preset_path.is_file():
            available = sorted(p.stem for p in preset_path.parent.glob("*.toml") if is_preset(p))
            raise ConfigError(f"preset = {preset!r}: no file {preset_path}; presets beside it: {', '.join(available)}")
        preset_table = read_toml(preset_path)
        preset_table.pop("preset", None)
        apply_table(values, preset_table, str(preset_path))
    apply_table(values, file_table, str(path))
    for text, table in zip(overrides, override_tables):
        apply_table(values, table, f"--set {text}")
    values["preset"] = preset
    return build(values)


def is_preset(path: Path) -> bool:
    """A size preset is a TOML file that names no preset and no models (no `preset` key, no [sweep] table)."""
    try:
        table = read_toml(path)
    except ConfigError:
        return False
    return "preset" not in table and "sweep" not in table


def positive(key: str, value, kind: str = "a positive integer") -> None:
    if not value > 0:
        raise ConfigError(f"{key} = {value!r}: expected {kind}")


def validate(config: Config) -> None:
    """Range checks that types alone do not catch."""
    train, sweep = config.train, config.sweep
    for name in ("batch_size", "length", "validate_every", "validation_examples", "checkpoint_every"):
        positive(f"train.{name}", getattr(train, name))
    positive("train.learning_rate", train.learning_rate, "a positive number")
    if train.memory_budget_gb < 0:
        raise ConfigError(f"train.memory_budget_gb = {train.memory_budget_gb!r}: expected 0 (the device's) or a positive size")
    if train.model_chunk != "auto" and train.model_chunk < 0:
        raise ConfigError(f"train.model_chunk = {train.model_chunk}: expected 0 (all models at once), a positive integer or 'auto'")
    if config.data.pad_length < 0:
        raise ConfigError(f"data.pad_length = {config.data.pad_length}: expected 0 (the longest recording) or a length")
    for section, axis in (("sweep", "family"), ("sweep", "fusion"), ("sweep", "modalities"), ("study", "families")):
        if not getattr(getattr(config, section), axis):
            allowed = choices(typing.get_type_hints(SECTION_TYPES[section])[axis])
            raise ConfigError(f"{section}.{axis} = []: expected a non-empty list of {', '.join(allowed)}")
    for axis in ("audio_snr", "visual_snr"):
        values = getattr(sweep, axis)
        if not values:
            raise ConfigError(f"sweep.{axis} = []: expected a non-empty list of SNRs (positive numbers or 'orig')")
        for value in values:
            snr_value(value, f"sweep.{axis}")
    if sweep.experiment:
        for axis in ("fusion", "modalities", "audio_snr", "visual_snr"):
            if getattr(sweep, axis) != getattr(SweepConfig(), axis):
                raise ConfigError(f"sweep.{axis} is set, but sweep.experiment = {sweep.experiment!r} fixes the models; "
                                  "set sweep.experiment = '' to sweep the axes instead")
    if sweep.experiment == "study" and sweep.family != SweepConfig().family:
        raise ConfigError("sweep.family is set, but the study's families are study.families; set that instead")
    for key, families in (("sweep.family", sweep.family), ("study.families", config.study.families)):
        if "matched" in families and config.model.visual_channels is not None:
            raise ConfigError(f"model.visual_channels = {config.model.visual_channels} with {key} 'matched': expected "
                              "no visual_channels (the width-matched family gives each modality all C channels)")
    if not 0 <= config.study.margin < 100:
        raise ConfigError(f"study.margin = {config.study.margin!r}: expected accuracy points, 0 <= margin < 100")
    for key, seeds in (("sweep.seeds", sweep.seeds), ("study.seeds", config.study.seeds)):
        if not seeds:
            raise ConfigError(f"{key} = []: expected a non-empty list of integers")
    for name in ("examples", "point_examples", "batch"):
        if getattr(config.evaluate, name) != "auto":
            positive(f"evaluate.{name}", getattr(config.evaluate, name))
    if not config.evaluate.snrs:
        raise ConfigError("evaluate.snrs = []: expected a non-empty list of SNRs (positive numbers or 'orig')")
    for value in config.evaluate.snrs:
        snr_value(value, "evaluate.snrs")
    point, grid = config.study.fusion_point, {snr_value(x, "evaluate.snrs") for x in config.evaluate.snrs}
    if len(point) != 2 or not all(x > 0 and math.isfinite(x) for x in point) or not set(point) <= grid:
        raise ConfigError(f"study.fusion_point = {list(point)}: expected [audio, visual], two positive SNRs of "
                          "evaluate.snrs (the claims read the comparison's own training point on the test grid)")



def check_study(config: Config) -> None:
    """The rule `clstm-jax study` adds: its models are fixed (experiments.study_models), so no sweep key may
    choose others (a config with the default sweep, or `sweep.experiment = "study"` alone, is a study's)."""
    fixed = SweepConfig(experiment="study")
    set_keys = [f"sweep.{f.name}" for f in dataclasses.fields(SweepConfig)
                if getattr(config.sweep, f.name) != getattr(fixed, f.name)]
    if set_keys and config.sweep != SweepConfig():
        raise ConfigError(f"{', '.join(set_keys)} set, but the study's models are fixed (experiments.study_models; "
                          "study.seeds, study.families and study.scope choose among them); use `clstm-jax sweep` for "
                          "other models")

def expand(sweep: SweepConfig) -> list[ModelSpec]:
    """The product of the grid axes, in a fixed order (family, fusion, modalities, audio, visual, seed),
    each model once (initial fusion is the same model in every family)."""
    return list(dict.fromkeys(
        ModelSpec(fusion, modalities, snr_value(a, "sweep.audio_snr"), snr_value(v, "sweep.visual_snr"), seed, family)
        for family, fusion, modalities, a, v, seed in itertools.product(
            sweep.family, sweep.fusion, sweep.modalities, sweep.audio_snr, sweep.visual_snr, sweep.seeds
        )
    ))
