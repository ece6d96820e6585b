"""Test-wide settings: 64-bit floats and strict rank promotion in JAX, so silent broadcasting
bugs fail loudly; child processes and the compilation cache as described below."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# Child Pythons (the CLI run as a program, scripts) import the installed package, not the source
# folder the tests run from: with a non-editable install, that folder lacks the mapped
# protocols/ and analysis/ packages.
os.environ["PYTHONSAFEPATH"] = "1"
# The CLI's persistent compilation cache stays off in tests (test_perf_paths tests it in its own
# folder): a test's compilations neither read another's nor land in the user's cache folder.
os.environ["SYNAPSE_DYN_JAX_CACHE"] = ""


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """JAX keeps every compiled program of a process; an xdist worker runs many modules and grew
    to 8-12 GB (a CI worker died). Each module's programs are released after it."""
    yield
    jax.clear_caches()


@pytest.fixture(autouse=True)
def _matplotlib_agg(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
