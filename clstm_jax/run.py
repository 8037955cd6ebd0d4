"""Restore a trained run for analysis: `load_run(path)` gives its config, model names and parameters."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from clstm_jax import checkpoint, compiler, interrupts
from clstm_jax.config import Config, ConfigError, ModelSpec, from_record
from clstm_jax.data.features import BinStats, load_bin_stats, parse_snr
from clstm_jax.families import apply, by_group, group_of
from clstm_jax.masks import Masks
from clstm_jax.run_dir import RunFiles
from clstm_jax.stacking import group_states, init_params, initial_state, model_constants, Models

SPEC_FIELDS = ("fusion", "modalities", "audio_snr", "visual_snr", "seed", "family")


@functools.cache
def apply_program():
    """`apply` jitted with the project's compiler options, shared by every RunModel (one compilation per input
    shape). Built at first use, not at import: the options depend on the backend, chosen by then."""
    return compiler.jit(apply, static_argnums=4)


@dataclass(frozen=True)
class RunModel:
    """One model of a run: its spec, its (best-validation) parameters and masks."""

    spec: ModelSpec
    params: dict
    masks: Masks
    config: Config

    @property
    def name(self) -> str:
        return self.spec.name

    def logits(self, image: jax.Array, spectrogram: jax.Array) -> jax.Array:
        """(B, 28, 28) images and (B, frames, bins) spectrograms -> per-step logits (B, frames, 10)."""
        return apply_program()(self.params, self.masks, image, spectrogram, self.config.model)


@dataclass(frozen=True)
class Run:
    """A run directory restored: config, models (in training order) and the stacked parameters.

    params are each model's best-validation parameters (what `evaluate` scores), and models their
    constants (masks, SNRs, noise keys): both {family group: stacked on a leading model axis}, the groups
    in the models' order (clstm_jax/families.py). `step` is the training step of the checkpoint.
    """

    path: Path
    config: Config
    specs: tuple[ModelSpec, ...]
    params: dict
    models: dict[str, Models]
    step: int
    feature_stats: BinStats | None = None  # the training split's per-bin statistics, when the features are standardised

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    @property
    def complete(self) -> bool:
        return self.step >= self.config.train.steps

    def metrics(self) -> dict[str, np.ndarray]:
        """The run's metrics.jsonl as arrays, for a notebook: "step" (n,), "loss" (the mean training loss since
        the previous validation) and "validation_accuracy", each (n, models) in the order of `names`, and
        "step_seconds" (n,), the median seconds of a training step, nan where not recorded."""
        path = RunFiles(self.path).metrics
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        per_model = lambda key: np.array([[r[key][name] for name in self.names] for r in records], float).reshape(-1, len(self.names))
        return {"step": np.array([r["step"] for r in records], int), "loss": per_model("loss"),
                "validation_accuracy": per_model("validation_accuracy"),
                "step_seconds": np.array([r.get("step_seconds", np.nan) for r in records], float)}

    def index(self, name: str | None = None, **fields) -> int:
        """The position of the one model with this name, or whose spec has these field values.

        fields: fusion, modalities, audio_snr, visual_snr (a number or "orig"), seed, family.
        """
        unknown = sorted(set(fields) - set(SPEC_FIELDS))
        if unknown:
            raise ConfigError(f"unknown model field(s) {', '.join(unknown)}; expected some of {', '.join(SPEC_FIELDS)}")
        try:
            wanted = {k: parse_snr(v) if k.endswith("_snr") else v for k, v in fields.items()}
        except ValueError as err:
            raise ConfigError(str(err)) from None
        matches = [
            i for i, spec in enumerate(self.specs)
            if (name is None or spec.name == name) and all(getattr(spec, k) == v for k, v in wanted.items())
        ]
        asked = name or ", ".join(f"{k}={v}" for k, v in fields.items())
        if not matches:
            raise ConfigError(f"{asked}: no model in {self.path} matches; its models: {', '.join(self.names)}")
        if len(matches) > 1:
            differ = {k: sorted({str(getattr(self.specs[i], k)) for i in matches}) for k in SPEC_FIELDS}
            fields_apart = [k for k, v in differ.items() if len(v) > 1]
            hint = ", ".join(f"{k} ({', '.join(differ[k])})" for k in fields_apart)
            raise ConfigError(f"{asked}: {len(matches)} models match ({', '.join(self.names[i] for i in matches)}); "
                             f"they differ in {hint}: add one to choose, e.g. {fields_apart[0]}={differ[fields_apart[0]][0]}")
        return matches[0]

    def model(self, name: str | None = None, **fields) -> RunModel:
        """One model, by name or fields (see `index`)."""
        i = self.index(name, **fields)
        group = group_of(self.specs[i])
        j = by_group(list(self.specs))[group].index(self.specs[i])  # its place in its group's stack
        one = lambda tree: jax.tree.map(lambda x: x[j], tree)
        return RunModel(self.specs[i], one(self.params[group]), one(self.models[group].masks), self.config)


def read_config(run_dir: Path) -> Config:
    """The resolved config stored in a run directory."""
    files = RunFiles(run_dir)
    if not files.config.exists():
        raise ConfigError(f"{run_dir}: not a run directory (no config.json); train one with `clstm-jax sweep` or `study`")
    return from_record(json.loads(files.config.read_text()), str(files.config))


def read_specs(run_dir: Path) -> tuple[ModelSpec, ...]:
    """The run's models, in training order (models.json)."""
    rows = json.loads(RunFiles(run_dir).models.read_text())
    return tuple(ModelSpec(**{k: row[k] for k in SPEC_FIELDS if k in row}) for row in rows)  # no family: masked


@interrupts.deferred()  # orbax runs an asyncio loop here: an interrupt waits for it (clstm_jax/interrupts.py)
def restore_state(run_dir: Path, config: Config, specs: tuple[ModelSpec, ...]) -> dict:
    """The newest checkpointed sweep state on one device, whatever devices or processes wrote it."""
    like = jax.eval_shape(lambda: initial_state(config, init_params(config, list(specs))))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), like)
    mngr = checkpoint.manager(run_dir)
    state = checkpoint.restore_latest(mngr, like)
    mngr.close()
    if state is None:
        raise ConfigError(f"{run_dir}: no checkpoint yet; the run has not trained (resume it with `clstm-jax sweep`)")
    return state


def load_run(path: str | Path) -> Run:
    """Restore a run directory: resolved config, model specs and each model's best parameters."""
    run_dir = Path(path)
    config = read_config(run_dir)
    specs = read_specs(run_dir)
    state = restore_state(run_dir, config, specs)
    best = {group: gs["best_params"] for group, gs in group_states(state).items()}
    return Run(run_dir, config, specs, best, model_constants(config, list(specs)), int(state["step"]), read_feature_stats(run_dir, config))


def read_feature_stats(run_dir: Path, config: Config) -> BinStats | None:
    """The per-bin statistics the run was trained with (RUN/feature_stats.npz), when its features are standardised."""
    if config.features.normalization != "standardize":
        return None
    path = RunFiles(run_dir).feature_stats
    if not path.exists():
        raise ConfigError(f"{path}: missing; this run standardises its spectrograms with the statistics its sweep "
                          "stored there (resume the sweep to write them)")
    return load_bin_stats(path)
