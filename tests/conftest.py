"""Settings for the whole test suite.

The key that signs env states (minipg/run/env_state.py) lives in a temporary config directory
for the whole session, child processes included: the tests never read or write the real one in
the user's home. It is set before collection, so that environments copied from os.environ at
import time (for child processes) carry it too.
"""
import os
import shutil
import tempfile

_PREVIOUS = {}


def pytest_configure(config):
    _PREVIOUS["MINIPG_CONFIG_DIR"] = os.environ.get("MINIPG_CONFIG_DIR")
    _PREVIOUS["folder"] = tempfile.mkdtemp(prefix="minipg-test-config-")
    os.environ["MINIPG_CONFIG_DIR"] = _PREVIOUS["folder"]


def pytest_unconfigure(config):
    if "folder" not in _PREVIOUS:
        return
    shutil.rmtree(_PREVIOUS.pop("folder"), ignore_errors=True)
    previous = _PREVIOUS.pop("MINIPG_CONFIG_DIR")
    if previous is None:
        os.environ.pop("MINIPG_CONFIG_DIR", None)
    else:
        os.environ["MINIPG_CONFIG_DIR"] = previous
