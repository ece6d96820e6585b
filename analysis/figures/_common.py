"""Settings shared by the synapse-level figures (tcl_model.md, Sec. 3): the E. coli kernel
with B = 20 (tau_K = 0.05) and a unit-amplitude, zero-mean sawtooth shape."""

import warnings

import numpy as np

from synapse_dyn.protocols import Sawtooth
from synapse_dyn.synapses import EColiKernel

TAU_K = 0.05


def kernel(area: float = 0.0) -> EColiKernel:
    return EColiKernel(area=area, rate=1.0 / TAU_K)


def unit_sawtooth(tau_fast, tau_slow, reverse: bool = False) -> Sawtooth:
    """Sawtooth from -1/2 to +1/2: the signal is mean + A * shape."""
    return Sawtooth(tau_fast, tau_slow, free=-0.5, clamped=0.5, reverse=reverse)


def random_protocols(n: int, fast_step: float, fast_count: int, seed: int):
    """The authors' random protocols: tau_fast a random multiple k fast_step, 1 <= k <
    fast_count, and tau_slow a random multiple of 0.2 in [0.2, 49.8]."""
    rng = np.random.default_rng(seed)
    tau_fast = rng.integers(1, fast_count, n) * fast_step
    tau_slow = rng.integers(1, 250, n) * 0.2
    return tau_fast, tau_slow


def quietly(function, *args, **kwargs):
    """Run a sweep that deliberately includes fast ramps shorter than 10 tau_K."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fast ramp.*")
        return function(*args, **kwargs)
