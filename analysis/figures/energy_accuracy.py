"""Energy to accuracy of network learning (docs/thermodynamics.md, "Energy to accuracy"):
test loss against the cumulative energy spent by TCL, explicit EP and coupled learning on
resistor regression, each holding the network for the same durations per cycle; beside it
the energy each needs to reach 0.85 of the initial test loss (mean and standard error over seeds).
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from synapse_dyn import training
from synapse_dyn.analysis.thermodynamics import energy_accuracy

TARGET = 0.85  # fraction of the initial test loss
COLOURS = {"tcl": "C0", "ep": "C1", "cpl": "C2"}


def config(quick: bool) -> training.TrainConfig:
    """Resistor regression; the TCL protocol's durations (``TrainConfig`` defaults: the rest
    must be long for the input switch to stay inside the dead zone, else TCL learns from the
    switch) set every method's phases."""
    return training.TrainConfig(
        substrate="resistor",
        task="regression",
        n_nodes=16 if quick else 32,
        n_train=16 if quick else 64,
        n_test=32 if quick else 100,
        batch_size=8,
        epochs=3 if quick else 12,
        learning_rate=5.0,
        beta=0.5,
        eta=0.5,
    )


def compute(quick: bool = False, progress: bool = True) -> xr.Dataset:
    # quick: two seeds whose random graphs have the same edge count (one compilation)
    seeds = np.array([2, 4]) if quick else np.arange(8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # simulate's protocol notes, per seed
        return energy_accuracy.energy_to_accuracy(config(quick), seeds, target_fraction=TARGET)


def plot(ds: xr.Dataset):
    figure, axes = plt.subplots(1, 2, figsize=(8.0, 3.2), layout="constrained")
    for method in ds.method.values:
        run = ds.sel(method=method)
        for k, seed in enumerate(run.seed.values):
            axes[0].plot(
                run.energy.sel(seed=seed),
                run.test_loss.sel(seed=seed),
                "o-",
                ms=3,
                color=COLOURS[str(method)],
                alpha=0.6,
                label=str(method) if k == 0 else None,
            )
    axes[0].set(xlabel="cumulative energy (energy x time)", ylabel="test loss", yscale="log")
    axes[0].legend(fontsize=7, frameon=False)
    position = np.arange(ds.sizes["method"])
    axes[1].bar(
        position,
        ds.energy_to_target_mean,
        yerr=ds.energy_to_target_error,
        color=[COLOURS[str(m)] for m in ds.method.values],
    )
    axes[1].set_xticks(position, [str(m) for m in ds.method.values])
    axes[1].set(ylabel=f"energy to {TARGET:g} of the initial loss")
    return figure
