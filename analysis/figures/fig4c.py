"""Fig. 4C: learning range ln(A_max/A_min) against ln(tau_slow/tau_fast) over random
protocols (E. coli kernel, I = 0, B = 20, theta_g = 100/tau_slow so A_max = 100).

The ideal bound is A_max/A_min = tau_slow/tau_fast; protocols whose fast ramp is long
compared with the kernel time reach it, short ones fall below (the kernel smooths the ramp).
"""

import matplotlib.pyplot as plt
import numpy as np

from analysis.response import learning_range, response_curves
from synapse_dyn.io import describe
from synapse_dyn.synapses import DeadZone

from ._common import TAU_K, kernel, quietly, random_protocols, unit_sawtooth

AMPLITUDE_MAX = 100.0


def compute(quick: bool = False, progress: bool = True, n_protocols: int | None = None):
    n = n_protocols or (60 if quick else 1000)
    n_amplitudes = 400
    tau_fast, tau_slow = random_protocols(n, 0.1, 50, seed=4)
    amplitudes = np.linspace(0, 0.75 * AMPLITUDE_MAX, n_amplitudes, endpoint=False)
    curves = quietly(
        response_curves,
        kernel(),
        DeadZone(AMPLITUDE_MAX / tau_slow),
        unit_sawtooth(tau_fast, tau_slow),
        amplitudes,
        n_grid=2**13 if quick else 2**15,
        progress=progress,
    )
    ds = learning_range(curves, AMPLITUDE_MAX)
    config = {"figure": "fig4c", "n_protocols": n, "n_amplitudes": n_amplitudes, "tau_kernel": TAU_K, "seed": 4}
    return describe(ds, "Fig. 4C: learning range versus protocol time asymmetry", config)


def plot(ds):
    x = np.log(ds.tau_slow / ds.tau_fast)
    y = np.log(ds.learning_range)
    colour = np.log10(ds.tau_fast / ds.attrs["kernel_timescale"])
    figure, axis = plt.subplots(figsize=(4.5, 3.6))
    points = axis.scatter(x, y, c=colour, cmap="binary", s=8, edgecolors="0.4", linewidths=0.2)
    line = np.linspace(0, 6, 2)
    axis.plot(line, line, "r--", lw=1, label="ideal bound, A_max/A_min = tau_slow/tau_fast")
    axis.set(xlim=(0, 6), ylim=(0, 6), xlabel="ln(tau_slow / tau_fast)", ylabel="ln(A_max / A_min)")
    figure.colorbar(points, label="log10(tau_fast / tau_K)")
    axis.legend(loc="upper left", fontsize=7, frameon=False)
    figure.tight_layout()
    return figure
