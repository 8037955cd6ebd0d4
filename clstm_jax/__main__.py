"""`python -m clstm_jax` and the `clstm-jax` program: the command line, with signals handled from before
its first import to its exit (clstm_jax/core/interrupts.py)."""

import os
import sys

from clstm_jax.core import interrupts


def command() -> None:
    """The `clstm-jax` program: the CLI with signals handled from before its first import to its exit."""
    interrupts.install()
    try:
        with interrupts.deferred():  # an interrupt inside an extension's initialisation (jaxlib's) aborted the process
            from clstm_jax.cli import main
        code = main()
    except KeyboardInterrupt as err:  # before cli.main's own handler took over (while importing)
        interrupts.keep_until_exit(err)
        print(interrupts.message(err), file=sys.stderr)
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    if code in (2, 130):  # a fault or an interrupt: no teardown for abandoned orbax coroutines to print from
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    command()
