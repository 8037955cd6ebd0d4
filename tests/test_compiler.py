"""The project's compiler options reach the programs it compiles, and change no values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clstm_jax.core import compiler
from clstm_jax.model.clstm import ModelConfig, apply, init
from clstm_jax.model.masks import make_masks

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are the CPU backend's")


def test_cpu_programs_compile_without_ynnpack_fusions():
    x = jnp.ones((64, 64))
    product = lambda a: a @ a
    assert compiler.options() == compiler.CPU_OPTIONS
    assert "__ynn_fusion" not in compiler.jit(product).lower(x).compile().as_text()


def test_the_options_leave_the_model_values_alone():
    cfg = ModelConfig(channels=4, frames=3, bins=7, dense=8, conv="hybrid")
    params = init(jax.random.key(0), cfg)
    masks = make_masks(params, cfg.visual_group, "initial")
    rng = np.random.default_rng(0)
    image, spectrogram = rng.random((2, 28, 28), np.float32), rng.random((2, 3, 7), np.float32)
    default = jax.jit(apply, static_argnums=4)(params, masks, image, spectrogram, cfg)
    ours = compiler.jit(apply, static_argnums=4)(params, masks, image, spectrogram, cfg)
    np.testing.assert_allclose(ours, default, rtol=1e-5, atol=1e-6)
