"""`python -m clstm_jax`: the `clstm-jax` command line."""

from clstm_jax.interrupts import command

command()
