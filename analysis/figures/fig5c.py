"""Fig. 5C: imperfect adaptation (kernel area I = 0.05) with a background current 25 offsets
the update: the intercept of the contrastive segment grows with the fast ramp time,
offset ~ I * mean * tau_fast (tcl_model.md, Fig. 5 recipe)."""

import matplotlib.pyplot as plt
import numpy as np

from synapse_dyn.analysis import sweeps
from synapse_dyn.analysis.response import learning_range
from synapse_dyn.experiments import SynapseExperiment
from synapse_dyn.io import describe

from ._common import TAU_K, random_protocols

AMPLITUDE_MAX = 100.0
AREA = 0.05
MEAN = 25.0


def compute(
    quick: bool = False,
    progress: bool = True,
    tau_fast=None,
    tau_slow=None,
    client=None,
    store=None,
    resume: bool = False,
):
    """Random protocols (tau_fast in 0.2..4.8 by 0.2, tau_slow in 0.2..49.8), or the given ones,
    through the sweep machinery (``client``, ``store`` and ``resume`` as in ``fig4c.compute``)."""
    if tau_fast is None:
        tau_fast, tau_slow = random_protocols(40 if quick else 500, 0.2, 25, seed=5)
    tau_fast, tau_slow = np.broadcast_arrays(
        np.asarray(tau_fast, float), np.asarray(tau_slow, float)
    )
    synapse = SynapseExperiment(
        tau_kernel=TAU_K,
        kernel_area=AREA,
        mean_current=MEAN,
        amplitude_stop=0.75 * AMPLITUDE_MAX,
        n_amplitudes=400,
    )
    n_grid = 2**13 if quick else 2**15
    options = dict(client=client, store=store, resume=resume, progress=progress)
    curves = sweeps.protocol_curves(
        synapse, tau_fast, tau_slow, AMPLITUDE_MAX, n_grid, title="fig5c protocols", **options
    )
    ds = learning_range(curves, AMPLITUDE_MAX)
    config = {
        "figure": "fig5c",
        "kernel_area": AREA,
        "mean_current": MEAN,
        "tau_kernel": TAU_K,
        "n_protocols": int(tau_fast.size),
    }
    return describe(ds, "Fig. 5C: offset error from imperfect adaptation", config)


def plot(ds):
    relative = ds.offset / ds.amplitude_max
    shown = (relative > 0) & (relative <= 0.5)  # the paper's filter
    figure, axis = plt.subplots(figsize=(4.5, 3.6))
    points = axis.scatter(
        (ds.tau_fast / TAU_K)[shown],
        relative[shown],
        c=(ds.period / TAU_K)[shown],
        cmap="viridis",
        s=10,
    )
    ramp = np.linspace(0, float(ds.tau_fast.max()), 2)
    axis.plot(
        ramp / TAU_K,
        AREA * MEAN * ramp / AMPLITUDE_MAX,
        "k--",
        lw=1,
        label="I * mean * tau_fast / A_max",
    )
    axis.set(xlabel="tau_fast / tau_K", ylabel="offset / A_max")
    figure.colorbar(points, label="T / tau_K")
    axis.legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure
