"""Fig. 4C: learning range ln(A_max/A_min) against ln(tau_slow/tau_fast) over random
protocols (E. coli kernel, I = 0, B = 20, theta_g = 100/tau_slow so A_max = 100).

The ideal bound is A_max/A_min = tau_slow/tau_fast; protocols whose fast ramp is long
compared with the kernel time reach it, short ones fall below (the kernel smooths the ramp).

Two measures of A_min are recorded: the paper's recipe (start of the third segment of a
continuous three-segment fit, ``learning_range``) and the learning onset, the first contrast
with dw/A above ONSET_FRACTION (linear interpolation between amplitudes, ``onset_range`` =
A_max / A_onset). Just above threshold dw/A climbs to the contrastive line slowly, so the fit
puts A_min well above the onset: at tau_fast/tau_K >= 10 the onset range is at least 0.99 of
ln(tau_slow/tau_fast) (tests/test_analysis.py), the fitted one is not.
"""

import matplotlib.pyplot as plt
import numpy as np

from synapse_dyn.analysis import sweeps
from synapse_dyn.analysis.response import learning_range
from synapse_dyn.experiments import SynapseExperiment
from synapse_dyn.io import describe

from ._common import TAU_K, random_protocols

AMPLITUDE_MAX = 100.0
ONSET_FRACTION = 0.1  # dw/A above which a contrast counts as learnt (the onset)


def compute(
    quick: bool = False,
    progress: bool = True,
    n_protocols: int | None = None,
    client=None,
    store=None,
    resume: bool = False,
):
    """Random protocols through the sweep machinery (``analysis.sweeps``): in this process,
    or on a Dask ``client``; ``store`` (a zarr path) keeps finished chunks, ``resume`` reuses
    them."""
    n = n_protocols or (60 if quick else 1000)
    n_amplitudes = 400
    tau_fast, tau_slow = random_protocols(n, 0.1, 50, seed=4)
    synapse = SynapseExperiment(
        tau_kernel=TAU_K, amplitude_stop=0.75 * AMPLITUDE_MAX, n_amplitudes=n_amplitudes
    )
    n_grid = 2**13 if quick else 2**15
    options = dict(client=client, store=store, resume=resume, progress=progress)
    curves = sweeps.protocol_curves(
        synapse, tau_fast, tau_slow, AMPLITUDE_MAX, n_grid, title="fig4c protocols", **options
    )
    ds = learning_onset(learning_range(curves, AMPLITUDE_MAX))
    config = {
        "figure": "fig4c",
        "n_protocols": n,
        "n_amplitudes": n_amplitudes,
        "tau_kernel": TAU_K,
        "seed": 4,
        "onset_fraction": ONSET_FRACTION,
    }
    return describe(ds, "Fig. 4C: learning range versus protocol time asymmetry", config)


def learning_onset(ds):
    """A_onset, the first amplitude where dw/A exceeds ONSET_FRACTION (linear interpolation
    of dw/A between the neighbouring amplitudes; A_max where it never does), and the onset
    range A_max / A_onset."""
    amplitude = ds.amplitude.values
    ratio = np.atleast_2d(ds.dw.values) / np.where(amplitude > 0, amplitude, np.inf)
    above = ratio > ONSET_FRACTION
    first = np.argmax(above, axis=-1)
    rows = np.arange(ratio.shape[0])
    low = np.maximum(first - 1, 0)
    y0, y1 = ratio[rows, low], ratio[rows, first]
    weight = np.where(y1 > y0, (ONSET_FRACTION - y0) / np.where(y1 > y0, y1 - y0, 1.0), 1.0)
    onset = amplitude[low] + np.clip(weight, 0, 1) * (amplitude[first] - amplitude[low])
    onset = np.where(above.any(axis=-1), onset, ds.amplitude_max.values)
    dims = ds.amplitude_max.dims
    return ds.assign(
        amplitude_onset=(
            dims,
            onset.reshape(ds.amplitude_max.shape),
            {
                "units": "current",
                "long_name": f"learning onset: first A with dw/A > {ONSET_FRACTION:g}",
            },
        ),
        onset_range=(
            dims,
            (ds.amplitude_max.values / onset.reshape(ds.amplitude_max.shape)),
            {"units": "1", "long_name": "onset range A_max / A_onset"},
        ),
    )


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
