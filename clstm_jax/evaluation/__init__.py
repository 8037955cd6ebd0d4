"""Evaluation: trained models read back and measured.

`run` (`load_run`: a run directory or published run with its best parameters), `evaluate` (the
vectorised test-SNR grid), `modality_use` (each model with one input swapped or zeroed), `inspection`
(one model's predictions and activations) and `resumable` (evaluations kept chunk by chunk).
May import: core, data, model, config, training.
"""
