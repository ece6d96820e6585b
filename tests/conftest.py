"""Test-wide JAX settings: 64-bit floats and strict rank promotion, so silent broadcasting
bugs fail loudly."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# Child Pythons (the CLI run as a program, scripts) import the installed package, not the source
# folder the tests run from: with a non-editable install, that folder lacks the mapped
# protocols/ and analysis/ packages.
os.environ["PYTHONSAFEPATH"] = "1"


@pytest.fixture(autouse=True)
def _matplotlib_agg(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
