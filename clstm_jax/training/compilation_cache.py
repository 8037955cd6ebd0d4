"""The persistent XLA compilation cache: every command reuses what an earlier process compiled.

On by default, in the per-user cache directory (`$XDG_CACHE_HOME/clstm_jax/xla`, else
`~/.cache/clstm_jax/xla`). `CLSTM_JAX_COMPILATION_CACHE` chooses another directory, or turns the cache off
(`0`, `off`, `false`, `no`); so does the config value `runtime.compilation_cache = false`. A cache directory
set through JAX itself (`JAX_COMPILATION_CACHE_DIR`) is kept. Programs that compile in under a second are
not stored (JAX's `jax_persistent_cache_min_compile_time_secs`).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from clstm_jax.data.paths import cache_dir as user_cache_dir

ENV_VAR = "CLSTM_JAX_COMPILATION_CACHE"
OFF = ("0", "off", "false", "no")


def configure(enabled: bool = True) -> Path | None:
    """Turn the cache on (in the directory the environment chooses) or off; returns the directory in use.

    Call it before the process compiles anything: JAX decides at its first compilation."""
    chosen = os.environ.get(ENV_VAR, "").strip()
    if not enabled or chosen.lower() in OFF:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    if chosen:
        jax.config.update("jax_compilation_cache_dir", str(Path(chosen).expanduser()))
    elif not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(user_cache_dir() / "xla"))
    return Path(jax.config.jax_compilation_cache_dir)
