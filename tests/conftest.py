"""Process-wide state of a test session: one XLA compilation cache for every process, and
what one test must not leak into the next."""

import os
from pathlib import Path

import jax
import pytest
from absl import logging
from jax.experimental.compilation_cache import compilation_cache

CACHE_MAX_BYTES = 16 << 30  # never reached by a test session; set for the lock it turns on


@pytest.fixture(scope="session", autouse=True)
def xla_cache(tmp_path_factory) -> Path:
    """One persistent XLA compilation cache for the whole session, in this process and in
    every subprocess a test starts (through the environment): each tiny model's programs
    compile once per session, not once per process or per fresh jit closure. Under
    pytest-xdist the workers share it too (their base temporary folders are siblings). A
    size limit turns on JAX's file lock (`filelock`, in the test extra) around every cache
    read and write, so no process reads an entry another is still writing.
    JAXCOLOR_TEST_XLA_CACHE keeps it between sessions while working on the tests."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    directory = Path(os.environ.get("JAXCOLOR_TEST_XLA_CACHE") or shared / "xla_cache")
    directory.mkdir(parents=True, exist_ok=True)
    settings = {"JAX_COMPILATION_CACHE_DIR": str(directory),
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2",
                "JAX_COMPILATION_CACHE_MAX_SIZE": str(CACHE_MAX_BYTES)}
    previous = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    compilation_cache.set_cache_dir(str(directory))
    compilation_cache.reset_cache()  # the cache is otherwise fixed at the first compile
    yield directory
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _absl_verbosity():
    """The CLI quietens absl to ERROR for its process (Orbax logs every read-only manager);
    tests call the CLI in-process, and a later test's log assertions must still see
    warnings."""
    previous = logging.get_verbosity()
    yield
    logging.set_verbosity(previous)
