"""Test-wide JAX settings: 64-bit floats (set on import of synapse_dyn) and strict rank
promotion, so silent broadcasting bugs fail loudly."""

import jax
import pytest

import synapse_dyn  # noqa: F401  (enables x64)

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _matplotlib_agg(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
