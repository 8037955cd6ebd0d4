from pathlib import Path

import pytest

from clstm_jax.core.errors import DataError
from clstm_jax.data.paths import ENV_VAR, choose_data_dir, resolve_data_dir


def test_flag_beats_environment_beats_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert choose_data_dir(None)[0] == tmp_path / "cache" / "clstm_jax"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert choose_data_dir(None)[0] == tmp_path / "env"
    assert choose_data_dir(tmp_path / "flag")[0] == tmp_path / "flag"


def test_resolves_a_complete_directory(data_dir):
    assert resolve_data_dir(data_dir) == Path(data_dir)


def test_missing_data_names_the_place_the_parts_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DataError) as err:
        resolve_data_dir(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "--data-dir" in message
    assert "mnist/train-images-idx3-ubyte[.gz]" in message and "fsdd/recordings/" in message
    assert f"clstm-jax data fetch --data-dir {tmp_path}" in message


def test_environment_choice_is_named_in_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"\$CLSTM_JAX_DATA"):
        resolve_data_dir(None)
