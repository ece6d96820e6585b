"""Fig. 3: a layered Hopfield network trained by Temporal Contrastive Learning, against
explicit equilibrium propagation with the same network, data, initial parameters and
hyperparameters (random-sign nudge beta, batch size, learning-rate schedule). Train and test
classification error per epoch.

TCL: each mini-batch is shown for one sawtooth cycle of the nudge (fast ramp 0 -> +-beta,
slow ramp back), then rests at zero nudge for tau_rest while the inputs move slowly to the
next mini-batch's (a sudden switch would pass the synapses' threshold); every parameter tensor has E. coli memory synapses whose dead-zone threshold
is set from the tensor's typical contrast at initialisation, theta = 10 rms(beta g_EP) /
tau_slow, so the contrastive regime spans 0.1 to 10 times that contrast. The network is
quasi-static (``simulate(mode="quasistatic")``).

Default data: the shipped 8x8 digits. ``mnist_path``: the paper's setting (784-500-10,
10,000 training and 2,000 held-out images, batch 20, beta 0.5, 50 epochs).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

import protocols
from synapse_dyn import rules
from synapse_dyn.io import describe
from synapse_dyn.simulate import Schedule, simulate
from synapse_dyn.synapses import DeadZone, EColiCascade, Synapse
from synapse_dyn.training import TrainConfig, build, metrics, train

TAU_FAST, TAU_SLOW, TAU_KERNEL, TAU_REST = 1.0, 99.0, 0.05, 2000.0


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


def _synapse(threshold, rate):
    return Synapse(EColiCascade(TAU_KERNEL), DeadZone(threshold), rate)


def train_tcl(config: TrainConfig, progress: bool = True) -> list[dict]:
    """Per-epoch metrics of TCL training (epoch 0 = initial parameters)."""
    network, w, task = build(config)
    rule = rules.EP(config.beta, "random")
    x, y = jnp.asarray(task.x_train), jnp.asarray(task.y_train)
    explicit = rules.update(
        network, w, (x[: config.batch_size], y[: config.batch_size]), rule, key=jax.random.key(0)
    )
    thresholds = jax.tree.map(
        lambda g: 10 * float(jnp.sqrt(jnp.mean((config.beta * g) ** 2))) / TAU_SLOW, explicit
    )
    period = TAU_FAST + TAU_SLOW + TAU_REST
    sawtooth = protocols.Sawtooth(TAU_FAST, TAU_SLOW)
    protocol = protocols.Repeat(
        protocols.Sequence([sawtooth, protocols.Constant(0.0)], [sawtooth.period, TAU_REST]), period
    )
    cycles = len(task.x_train) // config.batch_size
    order = np.random.default_rng(config.seed).permutation(len(task.x_train))
    schedule = Schedule(x[order], y[order], config.batch_size, blend=TAU_REST / period)
    history, state = [metrics(network, w, task, rule.cost)], None
    for epoch in tqdm(range(config.epochs), desc="hopfield/tcl", disable=not progress):
        rate = config.learning_rate * config.lr_decay**epoch
        synapses = jax.tree.map(functools.partial(_synapse, rate=rate), thresholds)
        run = simulate(
            synapses,
            protocol,
            t0=epoch * cycles * period,
            t1=(epoch + 1) * cycles * period,
            network=network,
            rule=rule,
            schedule=schedule,
            w0=w,
            state0=state,
            seed=config.seed,
        )
        state = run.state
        history.append(metrics(network, state[2], task, rule.cost))
    return history


def compute(quick: bool = False, progress: bool = True, mnist_path: str | None = None):
    config = settings(quick, mnist_path)
    ep = train(config, progress=progress)
    tcl = train_tcl(config, progress=progress)
    error = {
        split: np.stack(
            [
                1 - np.array([h[f"{split}_accuracy"] for h in tcl]),
                1 - ep[f"{split}_accuracy"].values,
            ]
        )
        for split in ("train", "test")
    }
    ds = xr.Dataset(
        {
            "train_error": (
                ("rule", "epoch"),
                error["train"],
                {"units": "1", "long_name": "training classification error"},
            ),
            "test_error": (
                ("rule", "epoch"),
                error["test"],
                {"units": "1", "long_name": "held-out classification error"},
            ),
        },
        coords={
            "rule": ("rule", ["tcl", "ep"], {"units": "1", "long_name": "learning rule"}),
            "epoch": (
                "epoch",
                np.arange(config.epochs + 1),
                {"units": "1", "long_name": "epoch (0 = before training)"},
            ),
        },
    )
    setup = {
        **dataclasses.asdict(config),
        "tau_fast": TAU_FAST,
        "tau_slow": TAU_SLOW,
        "tau_kernel": TAU_KERNEL,
        "tau_rest": TAU_REST,
    }
    return describe(
        ds,
        "Fig. 3: TCL versus explicit EP on a layered Hopfield network",
        {"figure": "fig3", **setup},
    )


def plot(ds):
    figure, axis = plt.subplots(figsize=(4, 3))
    styles = {"tcl": "k", "ep": "tab:blue"}
    for rule in ds.rule.values:
        axis.plot(
            ds.epoch,
            ds.train_error.sel(rule=rule),
            color=styles[rule],
            ls="-",
            label=f"{rule.upper()} train",
        )
        axis.plot(
            ds.epoch,
            ds.test_error.sel(rule=rule),
            color=styles[rule],
            ls="--",
            label=f"{rule.upper()} test",
        )
    axis.set(yscale="log", xlabel="epoch", ylabel="classification error")
    axis.legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure
