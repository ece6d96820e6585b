"""Test-wide JAX settings: 64-bit floats and strict rank promotion, so silent broadcasting
bugs fail loudly."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _matplotlib_agg(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
