"""Agnostic equilibrium propagation (docs/aeqprop.md). Left: test accuracy of the three
AEqProp modes against explicit EP with the same nudges and the same learning rate
alpha = epsilon (beta_2 - beta_1), and the exact gradient, on the digits (Hopfield 64-64-10)
and on Iris (diode network). A run whose joint relaxation diverges (the knobs cannot hold the
parameters, epsilon lambda >= 1) is shown up to that point and flagged in ``diverged``. Right:
the work done by the knobs per example against epsilon and beta, from physical-time runs
(``simulate``) of a small resistor network."""

import dataclasses

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from synapse_dyn import experiments, networks, rules
from synapse_dyn._runtime_checks import RuntimeCheckError
from synapse_dyn.io import describe
from synapse_dyn.simulate import Schedule, simulate
from synapse_dyn.simulate.agnostic import AgnosticProtocol
from synapse_dyn.training import TrainConfig, train

# The two tasks' settings, as in examples/hopfield_aeqprop.toml and examples/diode_aeqprop.toml
# (written here so an installed copy, without the repository's examples, draws the figure).
DIGITS = {
    "kind": "train",
    "substrate": "hopfield",
    "rule": "aeqprop",
    "mode": "centered",
    "beta": 1.0,
    "epsilon": 0.05,
    "cost": "mse",
    "task": "digits",
    "test_fraction": 0.2,
    "hidden": [64],
    "free_sweeps": 20,
    "nudged_sweeps": 8,
    "init_gain": 0.5,
    "lr_decay": 0.95,
    "batch_size": 16,
    "seed": 0,
}
IRIS = {
    "kind": "train",
    "substrate": "diode",
    "rule": "aeqprop",
    "mode": "centered",
    "beta": 2.0,
    "epsilon": 0.06,
    "cost": "mse",
    "task": "iris",
    "hidden": [32],
    "input_gain": 2.0,
    "free_sweeps": 8,
    "nudged_sweeps": 8,
    "lr_decay": 0.99,
    "batch_size": 4,
    "seed": 1,
}
MODES = {"optimistic": "positive", "pessimistic": "negative", "centered": "centered"}
METHODS = [f"aeqprop {m}" for m in MODES] + [f"ep {v}" for v in MODES.values()] + ["exact"]


def _configs(task: str, quick: bool):
    """(base AEqProp configuration, epochs) of a task."""
    if task == "digits":
        base = experiments.from_table(DIGITS, "digits")
        epochs = 3 if quick else 15
    else:
        base = experiments.from_table(IRIS, "iris")
        epochs = 3 if quick else 200
    if quick:
        base = dataclasses.replace(base, test_fraction=0.5)
    return dataclasses.replace(base, epochs=epochs)


def _method(base: TrainConfig, method: str) -> TrainConfig:
    """Every method nudges with magnitude b = base.beta / 2 (AEqProp centered at beta: -b, +b;
    one-sided at beta = b, which keeps the negative nudge below the outputs' curvature 1) and
    steps with the learning rate epsilon (beta_2 - beta_1) of the matching AEqProp mode."""
    half = base.beta / 2
    if method.startswith("aeqprop"):
        mode = method.split()[1]
        return dataclasses.replace(base, mode=mode, beta=base.beta if mode == "centered" else half)
    if method.startswith("ep"):
        variant = method.split()[1]
        rate = base.epsilon * (base.beta if variant == "centered" else half)
        return dataclasses.replace(base, rule="ep", variant=variant, beta=half, learning_rate=rate)
    return dataclasses.replace(base, rule="exact", learning_rate=base.epsilon * base.beta)


def _curve(config: TrainConfig, progress: bool):
    """(test accuracy per epoch, diverged): a diverging AEqProp run is retried with fewer
    epochs until it completes, so the curve shows where it stops."""
    epochs = config.epochs
    while epochs > 0:
        try:
            accuracy = train(dataclasses.replace(config, epochs=epochs), progress)
            values = accuracy["test_accuracy"].values
            return np.pad(values, (0, config.epochs - epochs), constant_values=np.nan), (
                epochs < config.epochs
            )
        except (RuntimeCheckError, FloatingPointError):
            epochs = epochs // 2
    return np.full(config.epochs + 1, np.nan), True


def _knob_work(quick: bool):
    """Mean knob work per example (physical time, resistor network of 10 nodes, phases ten
    relaxation times long) over a grid of epsilon and beta, centered mode."""
    graph = networks.random_graph(10, seed=3)
    network = networks.ResistorNetwork(graph, [0, 1], [3, 4], ground_nodes=[2])
    w = network.init(jax.random.key(0))
    n = 2 if quick else 4
    x = jax.random.uniform(jax.random.key(1), (n, 2), minval=-1, maxval=1)
    y = jax.random.uniform(jax.random.key(2), (n, 2), minval=-0.5, maxval=0.5)
    protocol = AgnosticProtocol(10.0, 10.0, 10.0, 2.5, 1.0)
    epsilons = np.array([0.03, 0.3]) if quick else np.geomspace(0.01, 1.0, 5)
    betas = np.array([0.25, 1.0]) if quick else np.array([0.25, 0.5, 1.0])
    work = np.zeros((len(epsilons), len(betas)))
    for i, epsilon in enumerate(epsilons):
        for j, beta in enumerate(betas):
            run = simulate(
                None,
                protocol,
                t1=n * protocol.period,
                network=network,
                rule=rules.AgnosticEP(beta, epsilon, "centered"),
                task=Schedule(x, y),
                w0=w,
                rtol=1e-8,
                atol=1e-10,
            )
            work[i, j] = float(np.mean(run.knob_work + run.reset_work))
    return epsilons, betas, work


def compute(quick: bool = False, progress: bool = True) -> xr.Dataset:
    tasks = ["digits", "iris"]
    curves, diverged = {}, {}
    for task in tasks:
        base = _configs(task, quick)
        for method in METHODS:
            curves[task, method], diverged[task, method] = _curve(_method(base, method), progress)
    length = max(len(c) for c in curves.values())
    padded = {k: np.pad(c, (0, length - len(c)), constant_values=np.nan) for k, c in curves.items()}
    accuracy = np.array([[padded[t, m] for m in METHODS] for t in tasks])
    flags = np.array([[float(diverged[t, m]) for m in METHODS] for t in tasks])
    epsilons, betas, work = _knob_work(quick)
    ds = xr.Dataset(
        {
            "test_accuracy": (
                ("task", "rule", "epoch"),
                accuracy,
                {"units": "1", "long_name": "test accuracy"},
            ),
            "diverged": (
                ("task", "rule"),
                flags,
                {
                    "units": "1",
                    "long_name": "1 if the joint relaxation diverged (curve cut there)",
                },
            ),
            "knob_work": (
                ("epsilon", "beta"),
                work,
                {
                    "units": "energy units of the substrate",
                    "long_name": "work done by the knobs per example (incl. the reset jump)",
                },
            ),
        },
        coords={
            "task": ("task", tasks, {"units": "1", "long_name": "data set"}),
            "rule": ("rule", METHODS, {"units": "1", "long_name": "learning rule"}),
            "epoch": ("epoch", np.arange(length), {"units": "1", "long_name": "training epoch"}),
            "epsilon": ("epsilon", epsilons, {"units": "1", "long_name": "knob compliance"}),
            "beta": ("beta", betas, {"units": "1", "long_name": "AEqProp nudge beta"}),
        },
    )
    config = {"figure": "aeqprop", "quick": quick, "methods": METHODS}
    return describe(ds, "Agnostic EP against explicit EP and the exact gradient", config)


def plot(ds: xr.Dataset):
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    styles = {"aeqprop": "-", "ep": "--", "exact": ":"}
    for axis, task in zip(axes[:2], ds.task.values, strict=True):
        for rule in ds.rule.values:
            curve = ds.test_accuracy.sel(task=task, rule=rule)
            axis.plot(ds.epoch, curve, styles[rule.split()[0]], label=rule, lw=1.2)
        axis.set(xlabel="epoch", ylabel="test accuracy", title=str(task), ylim=(0, 1))
    axes[0].legend(fontsize=6, frameon=False)
    for beta in ds.beta.values:
        axes[2].plot(ds.epsilon, ds.knob_work.sel(beta=beta), "o-", label=f"beta = {beta:g}")
    axes[2].set(xscale="log", xlabel="epsilon", ylabel="knob work per example")
    axes[2].legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure
