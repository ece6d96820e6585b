"""Energy to accuracy of network learning (docs/thermodynamics.md, "Energy to accuracy"): test
loss against the cumulative heat dissipated by TCL, explicit EP and coupled learning, each
holding the network for the same durations per cycle, on three tasks (one row each):
regression on a resistor network, Iris on a diode network, digits on a Hopfield network
(heat of Hopfield's analog circuit); beside each, the energy every method needs to reach 0.85
of the initial test loss (mean and standard error over seeds).
"""

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import xarray as xr

from synapse_dyn import training
from synapse_dyn.analysis.thermodynamics import energy_accuracy
from synapse_dyn.io import describe

TARGET = 0.85  # fraction of the initial test loss
COLOURS = {"tcl": "C0", "ep": "C1", "cpl": "C2"}
TASKS = {  # name: long name
    "resistor_regression": "regression on a resistor network",
    "diode_iris": "Iris on a diode network",
    "hopfield_digits": "digits on a Hopfield network",
}


def configs(quick: bool) -> dict[str, training.TrainConfig]:
    """One configuration per task. Every method's phases take the TCL protocol's durations
    (``TrainConfig`` defaults: the rest must be long for the input switch to stay inside the
    dead zone, else TCL learns from the switch)."""
    epochs, batch = (3, 8) if quick else (12, 8)
    return {
        "resistor_regression": training.TrainConfig(
            substrate="resistor",
            task="regression",
            n_nodes=16 if quick else 32,
            n_train=16 if quick else 64,
            n_test=32 if quick else 100,
            batch_size=batch,
            epochs=epochs,
            learning_rate=5.0,
            beta=0.5,
            eta=0.5,
            # twice the default: at 10, one synapse of 83 on the first batch of seeds 4 and 6
            # sat in the cancellation regime (contrast > threshold_scale x rms), and simulate
            # warned the user of the figure
            threshold_scale=20.0,
        ),
        "diode_iris": training.TrainConfig(
            substrate="diode",
            task="iris",
            hidden=[8] if quick else [32],
            input_gain=4.0,
            free_sweeps=8,
            nudged_sweeps=8,
            batch_size=batch,
            epochs=epochs,
            learning_rate=0.5,
            beta=1.0,
            eta=0.5,
        ),
        "hopfield_digits": training.TrainConfig(
            substrate="hopfield",
            task="digits",
            hidden=[16] if quick else [64],
            test_fraction=0.9 if quick else 0.3,  # quick: 180 training digits
            free_sweeps=20,
            nudged_sweeps=8,
            batch_size=16,
            epochs=epochs,
            learning_rate=0.1,
            beta=0.5,
            eta=0.5,
        ),
    }


def compute(quick: bool = False, progress: bool = True) -> xr.Dataset:
    # quick: two seeds whose resistor graphs have the same edge count (one compilation per
    # task; the layered networks' structure does not depend on the seed)
    seeds = np.array([2, 4]) if quick else np.arange(8)
    tasks = configs(quick)
    runs = xr.concat(
        [
            energy_accuracy.energy_to_accuracy(config, seeds, target_fraction=TARGET)
            for config in tasks.values()
        ],
        "task",
        combine_attrs="drop_conflicts",
    )
    runs = runs.assign_coords(
        task=("task", list(tasks), {"units": "1", "long_name": "task and network"}),
        task_long_name=("task", list(TASKS.values()), {"units": "1", "long_name": "task"}),
    )
    settings = {
        "target_fraction": TARGET,
        "seeds": seeds.tolist(),
        **{
            f"{name}.{key}": value
            for name, config in tasks.items()
            for key, value in config.__dict__.items()
            if not isinstance(value, list)
        },
    }
    return describe(runs, "Energy to accuracy: TCL, EP and coupled learning", settings)


def plot(ds: xr.Dataset):
    figure, axes = plt.subplots(
        ds.sizes["task"], 2, figsize=(8.0, 2.9 * ds.sizes["task"]), layout="constrained"
    )
    axes = np.atleast_2d(axes)
    position = np.arange(ds.sizes["method"])
    for row, task in zip(axes, ds.task.values, strict=True):
        runs = ds.sel(task=task)
        for method in runs.method.values:
            # sel(method=...) would be the lookup keyword of Dataset.sel; epoch 0 spent nothing
            run = runs.sel({"method": method}).isel(epoch=slice(1, None))
            for k, seed in enumerate(run.seed.values):
                row[0].plot(
                    run.energy.sel(seed=seed),
                    run.test_loss.sel(seed=seed),
                    "o-",
                    ms=3,
                    color=COLOURS[str(method)],
                    alpha=0.6,
                    label=str(method) if k == 0 else None,
                )
        initial = float(runs.test_loss.isel(epoch=0).mean())
        row[0].axhline(initial, color="0.5", ls=":", lw=1, label="initial (mean)")
        row[0].axhline(TARGET * initial, color="0.5", ls="--", lw=1, label=f"{TARGET:g} x initial")
        row[0].set(
            xlabel="cumulative energy (energy x time)",
            ylabel="test loss",
            xscale="log",
            yscale="log",
            title=str(runs.task_long_name.values),
        )
        # labelled minor ticks of a log axis spanning less than a decade overlap
        row[0].xaxis.set_minor_formatter(mticker.NullFormatter())
        row[0].legend(fontsize=6, frameon=False)
        row[1].bar(
            position,
            runs.energy_to_target_mean,
            yerr=runs.energy_to_target_error,
            color=[COLOURS[str(m)] for m in runs.method.values],
        )
        row[1].set_xticks(position, [str(m) for m in runs.method.values])
        row[1].set(ylabel=f"energy to {TARGET:g} x initial loss")
    return figure
