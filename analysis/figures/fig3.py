"""Fig. 3: a layered Hopfield network trained by Temporal Contrastive Learning, against
explicit equilibrium propagation with the same network, data, initial parameters and
hyperparameters (random-sign nudge beta, batch size, learning-rate schedule). Train and test
classification error per epoch.

TCL (``TrainConfig(rule="tcl")``, docs/tcl.md): each mini-batch is shown for one sawtooth cycle
of the nudge (fast ramp 0 -> +-beta, slow ramp back), then a rest at zero nudge while the
inputs move slowly to the next mini-batch's; every parameter tensor has E. coli memory
synapses whose dead-zone threshold is set from the tensor's typical contrast at
initialisation, theta = 10 rms(beta g_EP) / tau_slow; the network is quasi-static.

Default data: the shipped 8x8 digits. ``mnist_path``: the paper's setting (784-500-10,
10,000 training and 2,000 held-out images, batch 20, beta 0.5, 50 epochs).
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from synapse_dyn.io import describe
from synapse_dyn.training import TrainConfig, train


def settings(quick: bool, mnist_path: str | None = None) -> TrainConfig:
    """The shared experiment: network, data, nudge, batch and learning-rate schedule."""
    if mnist_path:
        return TrainConfig(
            substrate="hopfield",
            task="mnist",
            mnist_path=mnist_path,
            n_train=10_000,
            n_test=2_000,
            hidden=[500],
            rule="ep",
            variant="random",
            beta=0.5,
            batch_size=20,
            free_sweeps=20,
            nudged_sweeps=4,
            learning_rate=0.1,
            lr_decay=1.0,
            epochs=50,
        )
    return TrainConfig(
        substrate="hopfield",
        task="digits",
        rule="ep",
        variant="random",
        beta=0.5,
        hidden=[64],
        batch_size=16,
        free_sweeps=20,
        nudged_sweeps=8,
        learning_rate=0.1,
        lr_decay=0.95,
        epochs=2 if quick else 10,
        test_fraction=0.2,
    )


def compute(quick: bool = False, progress: bool = True, mnist_path: str | None = None):
    config = settings(quick, mnist_path)
    runs = {
        "tcl": train(dataclasses.replace(config, rule="tcl"), progress),
        "ep": train(config, progress),
    }
    error = {
        split: np.stack([1 - run[f"{split}_accuracy"].values for run in runs.values()])
        for split in ("train", "test")
    }
    long_names = {"train": "training classification error", "test": "held-out classification error"}
    ds = xr.Dataset(
        {
            f"{split}_error": (
                ("rule", "epoch"),
                error[split],
                {"units": "1", "long_name": long_names[split]},
            )
            for split in error
        },
        coords={
            "rule": ("rule", list(runs), {"units": "1", "long_name": "learning rule"}),
            "epoch": (
                "epoch",
                np.arange(config.epochs + 1),
                {"units": "1", "long_name": "epoch (0 = before training)"},
            ),
        },
    )
    title = "Fig. 3: TCL versus explicit EP on a layered Hopfield network"
    return describe(ds, title, {"figure": "fig3", **dataclasses.asdict(config)})


def plot(ds):
    figure, axis = plt.subplots(figsize=(4, 3))
    styles = {"tcl": "k", "ep": "tab:blue"}
    for rule in ds.rule.values:
        for split, style in (("train", "-"), ("test", "--")):
            error = ds[f"{split}_error"].sel(rule=rule)
            label = f"{rule.upper()} {split}"
            axis.plot(ds.epoch, error, color=styles[rule], ls=style, label=label)
    axis.set(yscale="log", xlabel="epoch", ylabel="classification error")
    axis.legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure
