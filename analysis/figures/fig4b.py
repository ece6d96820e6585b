"""Fig. 4B: the update per cycle against the contrast A for a few protocols, with the three
regimes: no update (A < A_min), contrastive update dw ~ A, and cancellation (A > A_max).
E. coli kernel (I = 0, B = 20), theta_g = 100/tau_slow so that A_max = 100."""

import numpy as np

from synapse_dyn.analysis.plots import response_panels
from synapse_dyn.analysis.response import response_curves
from synapse_dyn.io import describe
from synapse_dyn.synapses import DeadZone

from ._common import TAU_K, kernel, quietly, unit_sawtooth

AMPLITUDE_MAX = 100.0
TAU_FAST = np.array([1.0, 1.0, 1.0])
TAU_SLOW = np.array([4.0, 9.0, 19.0])


def compute(quick: bool = False, progress: bool = True):
    amplitudes = np.linspace(0, 1.25 * AMPLITUDE_MAX, 125 if quick else 500, endpoint=False)
    ds = quietly(
        response_curves,
        kernel(),
        DeadZone(AMPLITUDE_MAX / TAU_SLOW),
        unit_sawtooth(TAU_FAST, TAU_SLOW),
        amplitudes,
        n_grid=2**13 if quick else 2**15,
        progress=progress,
    )
    config = {"figure": "fig4b", "tau_fast": TAU_FAST, "tau_slow": TAU_SLOW, "tau_kernel": TAU_K}
    return describe(ds, "Fig. 4B: update per cycle versus contrast", config)


def plot(ds):
    return response_panels(ds)
