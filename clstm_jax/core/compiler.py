"""How the project's programs are compiled: `jit` is `jax.jit` with the project's XLA options.

On CPU, JAX 0.10's XLA hands dots and convolutions to YNNPACK fusions by
default. On this model XLA's own (Eigen) kernels are faster: at C = 64,
`lax.conv`'s forward pass 1.3x, its input gradient 2.2x, its kernel gradient
3.2x, the shifted path's input gradient 1.5x (benchmarks/conv_pieces.py,
docs/performance.md).
So every program the project compiles on CPU turns them off
(`xla_cpu_experimental_ynn_fusion_type` empty). The values do not change beyond
float32 rounding (tests/test_compiler.py). An XLA that does not know the option
compiles without it.
"""

from __future__ import annotations

import functools

import jax

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def options() -> dict | None:
    """The compiler options for the default backend: CPU_OPTIONS on a CPU whose XLA knows them, else None."""
    if jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS).lower(1.0).compile()
    except jax.errors.JaxRuntimeError as error:  # "No such compile option": an XLA of another version
        if "compile option" not in str(error):
            raise
        return None
    return CPU_OPTIONS


def jit(fn, **kwargs):
    """jax.jit(fn, **kwargs) compiled with `options()`."""
    return jax.jit(fn, compiler_options=options(), **kwargs)
