"""Energy-speed-accuracy of the ESA ladder (Lan et al., Nature Phys. 8, 422 (2012)) with the
birth-death closed form of Wang, Lan, Tang (arXiv 1505.07526): adaptation error against
dissipation (exact ladder, rate factor 25, and the fast-switching closed form), dissipation per
unit adaptation speed against ln(1/error), and the closed-form error against the methylation
range (it falls steeply over the first levels, then levels off at a floor set by gamma and by
the discreteness of the methylation steps). Ligand step 0 -> 200 uM; rates in Markov time
units.
"""

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from synapse_dyn.analysis.thermodynamics import esa
from synapse_dyn.io import describe

STEP, RATE_FACTOR = 200.0, 25.0
RANGE_GAMMAS = np.array([1e-1, 1e-2, 1e-4, 1e-8])


def compute(quick: bool = False, progress: bool = True) -> xr.Dataset:
    gammas = np.logspace(0, -10, 11 if quick else 41)
    ds = esa.adaptation_tradeoff(gammas, STEP, RATE_FACTOR)
    ranges = np.arange(3, 9 if quick else 17)
    error = np.empty((ranges.size, RANGE_GAMMAS.size))
    for i, levels in enumerate(ranges):
        for j, gamma in enumerate(RANGE_GAMMAS):
            before, after = (
                float(np.sum(esa.birth_death_ladder(s, gamma, int(levels))["occupation"][:levels]))
                for s in (0.0, STEP)
            )
            error[i, j] = abs(after - before) / before
    ds = ds.assign(
        error_by_range=(
            ("methylation_range", "range_gamma"),
            error,
            {"units": "1", "long_name": "adaptation error of the closed form"},
        )
    ).assign_coords(
        methylation_range=(
            "methylation_range",
            ranges,
            {"units": "1", "long_name": "number of methylation levels"},
        ),
        range_gamma=("range_gamma", RANGE_GAMMAS, {"units": "1", "long_name": "gamma"}),
    )
    config = {"figure": "esa", "step": STEP, "rate_factor": RATE_FACTOR, "quick": quick}
    return describe(ds, "Energy-speed-accuracy of the ESA ladder", config)


def plot(ds: xr.Dataset):
    figure, axes = plt.subplots(1, 3, figsize=(11.0, 3.2), layout="constrained")
    axes[0].scatter(ds.dissipation, ds.error, s=10, label=f"ladder, RF = {RATE_FACTOR:g}")
    axes[0].plot(ds.dissipation_closed_form, ds.error_closed_form, "k-", label="closed form")
    axes[0].set(xlabel="dissipation (kT / Markov time)", ylabel="adaptation error", yscale="log")
    axes[0].legend(fontsize=7, frameon=False)
    axes[1].scatter(np.log(1 / ds.error), ds.cost_per_speed, s=10)
    axes[1].set(xlabel="ln(1 / error)", ylabel="dissipation / speed (kT)")
    for gamma in ds.range_gamma.values:
        axes[2].plot(
            ds.methylation_range,
            ds.error_by_range.sel(range_gamma=gamma),
            "o-",
            ms=3,
            label=f"gamma = {gamma:g}",
        )
    axes[2].set(xlabel="methylation levels", ylabel="adaptation error (closed form)", yscale="log")
    axes[2].legend(fontsize=7, frameon=False)
    return figure
