"""Restore a trained run for analysis: `load_run(path)` gives its config, model names and parameters."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import lzma
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from clstm_jax.config import Config, from_record, parse_value
from clstm_jax.core import compiler, interrupts
from clstm_jax.core.errors import RunError
from clstm_jax.core.snr import snr_value
from clstm_jax.data.features import BinStats, load_bin_stats
from clstm_jax.data.paths import cache_dir
from clstm_jax.model.families import apply, by_group, group_of
from clstm_jax.model.masks import Masks
from clstm_jax.model.spec import ModelSpec
from clstm_jax.training import checkpoint
from clstm_jax.training.run_dir import RunFiles
from clstm_jax.training.stacking import Models, group_states, init_params, initial_state, model_constants

SPEC_FIELDS = ("fusion", "modalities", "audio_snr", "visual_snr", "seed", "family")
PUBLISHED_SUFFIX = ".tar.xz"  # a published run: one compressed file (clstm_jax/study/publish.py)
PUBLISHED_PARAMS = "best_params.npz"  # in a published run, instead of checkpoints/: each model's best parameters


@functools.cache
def apply_program():
    """`apply` jitted with the project's compiler options, shared by every RunModel (one compilation per input
    shape). Built at first use, not at import: the options depend on the backend, chosen by then."""
    return compiler.jit(apply, static_argnums=(4, 5))


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
        return apply_program()(self.params, self.masks, image, spectrogram, self.config.model, group_of(self.spec))


@dataclass(frozen=True)
class Run:
    """A run directory restored: config, models (in training order) and the stacked parameters.

    params are each model's best-validation parameters (what `evaluate` scores), and models their
    constants (masks, SNRs, noise keys): both {family group: stacked on a leading model axis}, the groups
    in the models' order (clstm_jax/model/families.py). `step` is the training step of the checkpoint.
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

    def select(self, selection: str | None) -> int:
        """The position of the model a command line names: none (the first model), a model's name, or
        field=value pairs separated by commas, `a` and `v` for the SNRs as in model names ("fusion=fc,seed=1")."""
        if not selection or selection in self.names:
            return self.names.index(selection) if selection else 0
        aliases = {"a": "audio_snr", "v": "visual_snr"}
        fields = {}
        for part in selection.split(","):
            key, _, value = part.partition("=")
            fields[aliases.get(key, key)] = parse_value(value)  # numbers as numbers, "orig" and names as text
        return self.index(**fields)

    def index(self, name: str | None = None, **fields) -> int:
        """The position of the one model with this name, or whose spec has these field values.

        fields: fusion, modalities, audio_snr, visual_snr (a number or "orig"), seed, family.
        """
        unknown = sorted(set(fields) - set(SPEC_FIELDS))
        if unknown:
            raise RunError(f"unknown model field(s) {', '.join(unknown)}; expected some of {', '.join(SPEC_FIELDS)}")
        try:
            wanted = {k: snr_value(v, k) if k.endswith("_snr") else v for k, v in fields.items()}
        except ValueError as err:
            raise RunError(str(err)) from None
        matches = [
            i for i, spec in enumerate(self.specs)
            if (name is None or spec.name == name) and all(getattr(spec, k) == v for k, v in wanted.items())
        ]
        asked = name or ", ".join(f"{k}={v}" for k, v in fields.items())
        if not matches:
            raise RunError(f"{asked}: no model in {self.path} matches; its models: {', '.join(self.names)}")
        if len(matches) > 1:
            differ = {k: sorted({str(getattr(self.specs[i], k)) for i in matches}) for k in SPEC_FIELDS}
            fields_apart = [k for k, v in differ.items() if len(v) > 1]
            hint = ", ".join(f"{k} ({', '.join(differ[k])})" for k in fields_apart)
            raise RunError(f"{asked}: {len(matches)} models match ({', '.join(self.names[i] for i in matches)}); "
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
        raise RunError(f"{run_dir}: not a run directory (no config.json); train one with `clstm-jax sweep` or `study`")
    return from_record(json.loads(files.config.read_text()), str(files.config))


def read_specs(run_dir: Path) -> tuple[ModelSpec, ...]:
    """The run's models, in training order (models.json)."""
    rows = json.loads(RunFiles(run_dir).models.read_text())
    return tuple(ModelSpec(**{k: row[k] for k in SPEC_FIELDS if k in row}) for row in rows)  # no family: masked


@interrupts.deferred()  # orbax runs an asyncio loop here: an interrupt waits for it (clstm_jax/core/interrupts.py)
def restore_state(run_dir: Path, config: Config, specs: tuple[ModelSpec, ...]) -> dict:
    """The newest checkpointed sweep state on one device, whatever devices or processes wrote it."""
    like = jax.eval_shape(lambda: initial_state(config, init_params(config, list(specs))))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), like)
    mngr = checkpoint.manager(run_dir)
    state = checkpoint.restore_latest(mngr, like)
    mngr.close()
    if state is None:
        raise RunError(f"{run_dir}: no checkpoint yet; the run has not trained (resume it with `clstm-jax sweep`)")
    return state


def load_run(path: str | Path) -> Run:
    """Restore a run: resolved config, model specs and each model's best parameters.

    path: a run directory, or a published run (one `.tar.xz` from `clstm-jax publish`), unpacked once into
    the per-user cache (`unpack`)."""
    run_dir = unpack(Path(path)) if Path(path).is_file() else Path(path)
    config = read_config(run_dir)
    specs = read_specs(run_dir)
    if (run_dir / PUBLISHED_PARAMS).exists():
        best, step = read_published_params(run_dir / PUBLISHED_PARAMS, config, specs)
    else:
        state = restore_state(run_dir, config, specs)
        best, step = {group: gs["best_params"] for group, gs in group_states(state).items()}, int(state["step"])
    return Run(run_dir, config, specs, best, model_constants(config, list(specs)), step, read_feature_stats(run_dir, config))


def unpack(archive: Path) -> Path:
    """A published run's directory in the per-user cache (`published/<name>-<sha256 prefix>`), unpacked
    there the first time; a file that is not a published run is refused in one line."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    name = archive.name.removesuffix(PUBLISHED_SUFFIX)
    target = cache_dir() / "published" / f"{name}-{digest}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".unpacking-") as aside:
        try:
            with tarfile.open(archive, "r:xz") as tar:
                tar.extractall(aside, filter="data")
        except (tarfile.TarError, lzma.LZMAError, EOFError) as err:
            raise RunError(f"{archive}: not a published run ({err}); expected a run directory or a "
                              f"{PUBLISHED_SUFFIX} written by `clstm-jax publish`") from None
        if not (Path(aside) / PUBLISHED_PARAMS).exists():
            raise RunError(f"{archive}: not a published run (no {PUBLISHED_PARAMS} inside); expected a "
                              f"{PUBLISHED_SUFFIX} written by `clstm-jax publish`")
        with contextlib.suppress(OSError):  # another process unpacked it first: theirs is the same
            os.rename(aside, target)
    return target


def read_published_params(path: Path, config: Config, specs: tuple[ModelSpec, ...]) -> tuple[dict, int]:
    """({group: stacked best parameters}, step) from a published run's best_params.npz, checked leaf by
    leaf against the shapes and dtypes the config and models give."""
    like = jax.eval_shape(lambda: init_params(config, list(specs)))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    with np.load(path) as stored:
        arrays = []
        for key_path, leaf in leaves:
            key = jax.tree_util.keystr(key_path)
            if key not in stored or stored[key].shape != leaf.shape or stored[key].dtype != leaf.dtype:
                found = f"{stored[key].dtype}{list(stored[key].shape)}" if key in stored else "nothing"
                raise RunError(f"{path}: parameter {key} holds {found}; expected {leaf.dtype}{list(leaf.shape)} "
                                  "for the run's config and models")
            arrays.append(jax.numpy.asarray(stored[key]))
        step = int(stored["step"])
    return jax.tree_util.tree_unflatten(treedef, arrays), step


def read_feature_stats(run_dir: Path, config: Config) -> BinStats | None:
    """The per-bin statistics the run was trained with (RUN/feature_stats.npz), when its features are standardised."""
    if config.features.normalization != "standardize":
        return None
    path = RunFiles(run_dir).feature_stats
    if not path.exists():
        raise RunError(f"{path}: missing; this run standardises its spectrograms with the statistics its sweep "
                          "stored there (resume the sweep to write them)")
    return load_bin_stats(path)
