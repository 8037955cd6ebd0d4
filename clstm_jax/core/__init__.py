"""Core: the building blocks every layer may use, and which import nothing else of the project.

The error types a user sees as one line (`errors`), enum-like settings as Literal types (`choices`),
SNRs (`snr`), output written aside and moved into place (`output`), Ctrl-C and SIGTERM handling
(`interrupts`), compile-and-time (`compiler`), the environment a result was made in (`environment`),
multi-process helpers (`distributed`), statistics (`stats`) and TensorBoard files (`tensorboard`).
May import: nothing of clstm_jax outside core.
"""
