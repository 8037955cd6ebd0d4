"""`python -m clstm_jax`: the `clstm-jax` command line."""

import sys

from clstm_jax.cli import main

sys.exit(main())
