"""Process-wide state that one test must not leak into the next."""

import pytest
from absl import logging


@pytest.fixture(autouse=True)
def _absl_verbosity():
    """The CLI quietens absl to ERROR for its process (Orbax logs every read-only manager);
    tests call the CLI in-process, and a later test's log assertions must still see
    warnings."""
    previous = logging.get_verbosity()
    yield
    logging.set_verbosity(previous)
