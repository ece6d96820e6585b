"""Kernel-timescale figure (the authors' "Fig. 8"): the update relative to the contrast,
dw/A, against tau_fast/tau_K for A = 20, period 20 and the threshold midway between the
slow and fast slopes, theta = (A/20 + A/tau_fast)/2. The update approaches A only when
the fast ramp is long compared with the kernel."""

import matplotlib.pyplot as plt
import numpy as np

from synapse_dyn.analysis.response import response_curves
from synapse_dyn.io import describe
from synapse_dyn.synapses import DeadZone

from ._common import TAU_K, kernel, quietly, unit_sawtooth

AMPLITUDE = 20.0
PERIOD = 20.0


def compute(quick: bool = False, progress: bool = True, tau_fast=None):
    tau_fast = (
        np.linspace(0.01, 8, 20 if quick else 79)
        if tau_fast is None
        else np.asarray(tau_fast, float)
    )
    threshold = (AMPLITUDE / PERIOD + AMPLITUDE / tau_fast) / 2
    curves = quietly(
        response_curves,
        kernel(),
        DeadZone(threshold),
        unit_sawtooth(tau_fast, PERIOD - tau_fast),
        [AMPLITUDE],
        n_grid=2**15,
        progress=progress,
    )
    ds = curves.isel(amplitude=0, drop=True)
    ds["dw_over_amplitude"] = (ds.dw / AMPLITUDE).assign_attrs(
        units="1", long_name="update per cycle / contrast, dw/A"
    )
    ds["tau_fast_over_tau_kernel"] = (ds.tau_fast / TAU_K).assign_attrs(
        units="1", long_name="tau_fast / tau_K"
    )
    ds = ds.drop_vars("regime")
    config = {
        "figure": "figS_timescale",
        "amplitude": AMPLITUDE,
        "period": PERIOD,
        "tau_kernel": TAU_K,
    }
    return describe(ds, "Update versus fast-ramp time over kernel time", config)


def plot(ds):
    figure, axis = plt.subplots(figsize=(4.5, 3.2))
    axis.plot(ds.tau_fast_over_tau_kernel, ds.dw_over_amplitude, "o-", ms=3)
    axis.axhline(1.0, color="r", ls="--", lw=1, label="ideal contrastive update")
    axis.set(xlabel="tau_fast / tau_K", ylabel="dw / A", ylim=(0, 1.05))
    axis.legend(fontsize=7, frameon=False, loc="lower right")
    figure.tight_layout()
    return figure
