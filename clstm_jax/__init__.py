"""clstm_jax: early audio-visual fusion in a convolutional LSTM, in JAX."""

__version__ = "0.1.0"
