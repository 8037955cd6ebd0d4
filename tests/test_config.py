import math
from pathlib import Path

import pytest

from clstm_jax.config import Config, expand, load_config, parse_value, valid_keys
from clstm_jax.core.errors import ConfigError
from clstm_jax.model.spec import ModelSpec


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def experiment(tmp_path):
    write(tmp_path / "small.toml", "[model]\nchannels = 8\n[train]\nbatch_size = 4\nlength = 40\n")
    return write(
        tmp_path / "grid.toml",
        'preset = "small"\n[sweep]\naudio_snr = [2, 1]\nvisual_snr = ["orig", 0.25]\n[train]\nlength = 80\n',
    )


def test_defaults_preset_file_and_overrides_in_order(experiment):
    config = load_config(experiment)
    assert config.model.channels == 8  # from the preset
    assert config.train.batch_size == 4 and config.train.length == 80  # the experiment file wins over the preset
    assert config.sweep.audio_snr == (2.0, 1.0) and config.sweep.visual_snr == ("orig", 0.25)
    assert config.train.learning_rate == 1e-3  # untouched default
    config = load_config(experiment, ["train.length=8", "model.conv=lax", "sweep.fusion=initial,fc"])
    assert (config.train.length, config.model.conv, config.sweep.fusion) == (8, "lax", ("initial", "fc"))


def test_steps_in_both_readings_of_the_papers_length():
    examples = load_config(None, ["train.batch_size=128", "train.length=87516"])
    batches = load_config(None, ["train.batch_size=128", "train.length=87516", "train.length_unit=batches"])
    assert examples.train.steps == math.ceil(87516 / 128) == 684
    assert batches.train.steps == 87516  # = one pass over 11,202,076 pairs


def test_unknown_key_lists_the_valid_ones(experiment):
    with pytest.raises(ConfigError, match=r"unknown config key 'train.batchsize' \(in --set train.batchsize=4\); valid keys: preset, data.data_dir") as err:
        load_config(experiment, ["train.batchsize=4"])
    assert "train.batch_size" in str(err.value) and "sweep.visual_snr" in str(err.value)
    write(experiment, "[modle]\nchannels = 4\n")
    with pytest.raises(ConfigError, match="unknown config key 'modle'"):
        load_config(experiment)


@pytest.mark.parametrize(
    "override,message",
    [
        ("sweep.audio_snr=-1", r"sweep.audio_snr = -1.0: expected a positive number"),
        ("sweep.visual_snr=0", r"sweep.visual_snr = 0.0: expected a positive number"),
        ("sweep.audio_snr=[]", r"sweep.audio_snr = \[\]: expected a non-empty list of SNRs"),
        ("sweep.fusion=late", r"sweep.fusion = 'late': expected one of initial, second, fc"),
        ("train.batch_size=0", r"train.batch_size = 0: expected a positive integer"),
        ("train.batch_size=2.5", r"train.batch_size = 2.5: expected an integer"),
        ("train.length_unit=epochs", r"train.length_unit = 'epochs': expected one of examples, batches"),
        ("train.model_chunk=-1", r"train.model_chunk = -1: expected 0 \(all models at once\), a positive integer or 'auto'"),
        ("train.model_chunk=most", r"train.model_chunk = 'most': expected an integer or 'auto'"),
        ("evaluate.batch=0", r"evaluate.batch = 0: expected a positive integer"),
        ("train.memory_budget_gb=-1", r"train.memory_budget_gb = -1.0: expected 0 \(the device's\) or a positive size"),
        ("model.conv=fft", r"model.conv = 'fft': expected one of auto, lax, shifted"),
        ("sweep.audio_snr=loud", r"sweep.audio_snr = 'loud': expected a positive number or 'orig'"),
        ("preset=huge", r"preset = 'huge': no file .*huge.toml; presets beside it: small$"),  # grid.toml is an experiment
        ("train.learning_rate=inf", r"train.learning_rate = inf: expected a finite number"),
        ("model.forget_bias=nan", r"model.forget_bias = nan: expected a finite number"),
        ("features.normalization=zscore", r"features.normalization = 'zscore': expected one of none, max, standardize, utterance$"),
        ("features.compression=3", r"features.compression = 3: expected one of none, log1p, log$"),
        ("evaluate.point_examples=0", r"evaluate.point_examples = 0: expected a positive integer"),
        ("study.families=[]", r"study.families = \[\]: expected a non-empty list of masked, matched, a2"),
        ("study.families=streams", r"study.families = 'streams': expected one of masked, matched, a2"),
        ("study.scope=all", r"study.scope = 'all': expected one of paper, fusion"),
    ],
)
def test_invalid_values_name_key_value_and_what_is_allowed(experiment, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(experiment, [override])


def test_set_values_parse_as_toml_or_bare_text():
    assert parse_value("16") == 16 and parse_value("0.5") == 0.5 and parse_value("[1, 2]") == [1, 2]
    assert parse_value("initial") == "initial" and parse_value("orig,0.5") == ["orig", 0.5]
    assert parse_value("true") is True


def test_sweep_expands_to_named_models_in_a_fixed_order(experiment):
    config = load_config(experiment, ["sweep.fusion=initial,fc", "sweep.seeds=[0, 1]"])
    models = expand(config.sweep)
    assert len(models) == 2 * 1 * 2 * 2 * 2
    assert models[0] == ModelSpec("initial", "both", 2.0, math.inf, 0)
    assert models[0].name == "fusion=initial,modalities=both,a=2,v=orig,seed=0"
    assert models[-1].name == "fusion=fc,modalities=both,a=1,v=0.25,seed=1"
    assert len({m.name for m in models}) == len(models)


def test_every_key_is_listed():
    keys = valid_keys()
    assert "train.batch_size" in keys and "features.compression" in keys and "model.remat" in keys
    assert isinstance(load_config(None), Config)


def test_experiment_files_name_their_models_from_one_design():
    from clstm_jax.config.experiments import APPENDIX, FUSION_POINT, GRID_AUDIO, GRID_VISUAL, UNIMODAL, sweep_models

    sweeps = Path(__file__).resolve().parents[1] / "sweeps"
    models = {name: sweep_models(load_config(sweeps / f"{name}.toml")) for name in
              ("fusion", "appendix_fusion", "snr_grid", "unimodal_visual", "unimodal_audio", "study")}
    assert {(m.fusion, m.audio_snr, m.visual_snr) for m in models["fusion"]} == {
        (f, *FUSION_POINT) for f in ("initial", "second", "fc")}
    assert {(m.audio_snr, m.visual_snr) for m in models["appendix_fusion"]} == set(APPENDIX.values())
    assert len(models["appendix_fusion"]) == 12
    assert {(m.audio_snr, m.visual_snr) for m in models["snr_grid"]} == {(a, v) for a in GRID_AUDIO for v in GRID_VISUAL}
    assert [m.visual_snr for m in models["unimodal_visual"]] == list(UNIMODAL["visual"])
    assert {m.modalities for m in models["unimodal_audio"]} == {"audio"}
    study = models["study"]
    assert len(study) == len(set(study)) == 42  # 3 fusions x 3 seeds + 3 x 4 appendix + 16 - 1 shared + 5 + 5
    assert sorted({m.seed for m in study if (m.audio_snr, m.visual_snr) == FUSION_POINT and m.modalities == "both"}) == [0, 1, 2]
    three = sweep_models(load_config(sweeps / "study-families.toml"))  # the fusion scope, in three families
    assert len(three) == len(set(three)) == 16 and {m.seed for m in three} == {0, 1}
    assert {(m.family, m.fusion) for m in three if m.modalities == "both"} == {
        ("masked", "initial"), *((f, late) for f in ("masked", "matched", "a2") for late in ("second", "fc"))}
    assert {(m.audio_snr, m.visual_snr) for m in three} == {FUSION_POINT, (FUSION_POINT[0], math.inf),
                                                            (math.inf, FUSION_POINT[1])}
    with pytest.raises(ConfigError, match=r"sweep.family is set, but the study's families are study.families"):
        load_config(sweeps / "study.toml", ["sweep.family=matched"])
    for text in (sweeps / name for name in ("fusion.toml", "snr_grid.toml", "appendix_fusion.toml", "study.toml",
                                            "study-families.toml")):
        assert "_snr" not in text.read_text().split("[sweep]")[-1]  # no SNR list written in a sweep file


def test_experiment_and_axes_cannot_both_be_set(tmp_path):
    path = write(tmp_path / "e.toml", '[sweep]\nexperiment = "snr_grid"\n')
    with pytest.raises(ConfigError, match=r"sweep.audio_snr is set, but sweep.experiment = 'snr_grid' fixes the models"):
        load_config(path, ["sweep.audio_snr=[1]"])
    with pytest.raises(ConfigError, match=r"sweep.experiment = 'grid': expected one of fusion, appendix_fusion, snr_grid"):
        load_config(path, ["sweep.experiment=grid"])
    assert load_config(path, ["sweep.experiment=", "sweep.audio_snr=[1]"]).sweep.audio_snr == (1,)
    with pytest.raises(ConfigError, match=r"study.margin = -1.0: expected accuracy points"):
        load_config(path, ["study.margin=-1"])


def test_config_files_that_cannot_be_read_are_named(tmp_path):
    (tmp_path / "configs").mkdir()
    with pytest.raises(ConfigError, match=r"configs: is a directory; expected a TOML config file"):
        load_config(tmp_path / "configs")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes("# caf\xe9\n[train]\nlength = 4\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.toml: not UTF-8 text \(byte 5: invalid continuation byte\)"):
        load_config(latin1)


def test_the_study_refuses_sweep_settings_because_its_models_are_fixed(tmp_path):
    from clstm_jax.study.pipeline import run_study

    study = Path(__file__).resolve().parents[1] / "sweeps" / "study.toml"
    with pytest.raises(ConfigError, match=r"sweep.seeds set, but the study's models are fixed .*study.seeds, study.families and study.scope"):
        run_study(load_config(study, ["preset=tiny", "sweep.seeds=[5]"]), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"sweep.experiment set, but the study's models are fixed"):
        run_study(load_config(study.parent / "fusion.toml", ["preset=tiny"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_literal_fields_are_checked_when_built_directly_too():
    """The config dataclasses check their Literal-typed fields on construction (one function: choices.check_fields)."""
    from clstm_jax.config import SweepConfig, TrainConfig
    from clstm_jax.data.features import FeatureConfig

    with pytest.raises(ValueError, match=r"^train.length_unit = 'epochs': expected one of examples, batches$"):
        TrainConfig(length_unit="epochs")
    with pytest.raises(ValueError, match=r"^sweep.modalities = 'video': expected one of both, visual, audio$"):
        SweepConfig(modalities=("both", "video"))
    with pytest.raises(ValueError, match=r"^features.window = 'box': expected one of hann, rect$"):
        FeatureConfig(window="box")
    assert SweepConfig(fusion=("initial", "second", "fc")).fusion == ("initial", "second", "fc")


def test_the_experiment_names_a_config_accepts_are_the_experiments_defined():
    """config checks sweep.experiment against a Literal (it may not import the experiments above it); the two agree."""
    from clstm_jax.config.experiments import EXPERIMENTS
    from clstm_jax.core.choices import Experiment, choices

    assert sorted(choices(Experiment)) == sorted([*EXPERIMENTS, ""])
