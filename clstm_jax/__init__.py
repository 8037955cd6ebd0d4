"""clstm_jax: early audio-visual fusion in a convolutional LSTM, in JAX."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`clstm_jax.load_run` without importing JAX for every `import clstm_jax` (the CLI starts fast)."""
    if name == "load_run":
        from clstm_jax.evaluation.run import load_run

        return load_run
    raise AttributeError(f"module 'clstm_jax' has no attribute {name!r}")
