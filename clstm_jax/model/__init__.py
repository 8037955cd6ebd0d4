"""Model: the networks as pure functions of a parameter tree, and which model a sweep trains.

`clstm` (the C-LSTM: init and apply, `lax.scan` over time), `masks` (fusion depth as parameter masks),
`streams` (the paper's A.2 stream networks), `families` (masked, width-matched and A.2 models behind one
init/apply), `multi_model` (the model axis: vmap, sharding mesh) and `spec` (one model of a sweep, named).
May import: core, data.
"""
