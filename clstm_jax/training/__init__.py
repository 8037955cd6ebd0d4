"""Training: many models trained side by side in one program, resumable bit for bit.

`step` (loss and one Adam step), `keys` (every random stream from the root seed), `stacking` (models
stacked on a leading axis), `programs` (the compiled many-model programs, chunked to fit `memory`),
`device_data` (data on the device, checked against the run), `validation`, `checkpoint` (orbax),
`run_dir` (a run directory's files and identity), `compilation_cache` and `sweep` (the training job).
May import: core, data, model, config.
"""
