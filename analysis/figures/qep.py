"""Quantum equilibrium propagation (Scellier, arXiv 2406.00879) on transverse-field Ising
networks: (a) bias of the EP estimators against beta, (b) the bias-variance trade-off with
projective shots, (c) training on Iris (versicolor vs virginica) by QEP against exact-gradient
training, (d) the diabatic error of a nudge ramped in physical time against the ramp time.

Energies in units of the coupling scale J (so beta, fields and Gamma are in J), times in
hbar / J; the loss <C> = sum_o (1 + y_o^2)/2 - y_o <Z_o> is dimensionless, gradients dL/dtheta
are in 1 / J. Estimator errors are relative, |g_hat - g| / |g|, with g the exact gradient
(adjoint perturbation theory, checked against finite differences in tests/test_quantum.py).
"""

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import xarray as xr

from synapse_dyn import rules
from synapse_dyn._progress import tqdm
from synapse_dyn.io import describe
from synapse_dyn.networks import quantum as q
from synapse_dyn.networks import random_graph
from synapse_dyn.networks.quantum import dynamics
from synapse_dyn.protocols import PiecewiseLinear

VARIANTS = ("positive", "negative", "centered")
RULES = ("exact", "centered", "positive")


def _flat(g):
    """The parameters' leaves concatenated along their last axis."""
    return np.concatenate([np.asarray(g[k]) for k in q.ising.PARAMETERS], axis=-1)


def estimator_network():
    """The 8-qubit network of panels (a, b): random planar graph, inputs on qubits 0 and 1,
    outputs on 6 and 7, one sample."""
    network = q.TransverseFieldIsing(random_graph(8, seed=1), [0, 1], [6, 7])
    return network, network.init(seed=0), np.array([[0.3, -0.5]]), np.array([[1.0, -1.0]])


def compute(quick: bool = False, progress: bool = True, seed: int = 0) -> xr.Dataset:
    """The four panels' data (quick: fewer points, repeats and epochs)."""
    steps = tqdm(total=4, desc="qep", disable=not progress)
    network, w, x, y = estimator_network()
    exact = _flat(q.exact_gradient(network, w, x, y))
    scale = np.linalg.norm(exact)

    betas = np.geomspace(0.005, 0.4, 6 if quick else 14)
    bias = [
        [
            np.linalg.norm(_flat(q.ep_gradient(network, w, x, y, rules.EP(b, v))) - exact) / scale
            for b in betas
        ]
        for v in VARIANTS
    ]
    steps.update()

    shots = np.array([100, 1000, 10_000] if quick else [100, 1000, 10_000, 100_000])
    shot_betas = np.array([0.03, 0.1, 0.3])
    repeats = 50 if quick else 200
    noisy = np.empty((len(VARIANTS), shot_betas.size, shots.size))
    for i, v in enumerate(VARIANTS):
        for j, b in enumerate(shot_betas):
            for k, n in enumerate(shots):
                g = _flat(
                    q.ep_gradient(network, w, x, y, rules.EP(b, v), int(n), seed + k, repeats)
                )
                noisy[i, j, k] = np.sqrt(np.mean(np.sum((g - exact) ** 2, -1))) / scale
    steps.update()

    train, test = q.iris_two_class(seed=seed)
    iris_net = q.TransverseFieldIsing(
        q.from_couplings(1.0 - np.eye(4))[0], [0, 1], [3], min_transverse_field=0.5
    )
    epochs = 8 if quick else 40
    histories = [
        q.train(
            iris_net,
            iris_net.init(seed=seed),
            train,
            None if r == "exact" else rules.EP(0.05, r),
            learning_rate=0.06,
            epochs=epochs,
            batch_size=len(train[0]),
            test=test,
        )[1]
        for r in RULES
    ]
    steps.update()

    ramp_net = q.TransverseFieldIsing(random_graph(6, seed=3), [0], [5])
    gammas = np.array([0.7, 1.0, 1.5])
    durations = np.geomspace(2.0, 64.0, 6 if quick else 24)
    xr_, yr_, beta_ramp = np.array([0.3]), np.array([1.0]), 0.1
    infidelity = np.empty((gammas.size, durations.size))
    predicted = np.empty_like(infidelity)
    gaps = np.empty(gammas.size)
    for i, gamma in enumerate(gammas):
        wr = {**ramp_net.init(seed=1), "Gamma": np.full(6, gamma)}
        gaps[i] = ramp_net.solve(wr, xr_).gap
        predicted[i] = dynamics.linear_ramp_prediction(
            ramp_net, wr, xr_, yr_, beta_ramp, durations
        )[0]
        for j, t in enumerate(durations):
            ramp = PiecewiseLinear(np.array([0.0, t]), np.array([0.0, beta_ramp]), periodic=False)
            infidelity[i, j] = dynamics.diabatic_error(ramp_net, wr, xr_, yr_, ramp, t)[
                "infidelity"
            ]
    steps.update()
    steps.close()

    one = {"units": "1"}
    ds = xr.Dataset(
        {
            "estimator_error": (
                ("variant", "beta"),
                np.array(bias),
                {
                    **one,
                    "long_name": "relative error |g_hat - g| / |g| of the exact-state EP estimate",
                },
            ),
            "shot_error": (
                ("variant", "shot_beta", "shots"),
                noisy,
                {
                    **one,
                    "long_name": f"RMS relative error of shot-based EP ({repeats} repeats)",
                },
            ),
            "train_loss": (
                ("rule", "epoch"),
                np.array([h["train_loss"] for h in histories]),
                {**one, "long_name": "training loss <C> (mean over samples)"},
            ),
            "test_accuracy": (
                ("rule", "epoch"),
                np.array([h["test_accuracy"] for h in histories]),
                {**one, "long_name": "test accuracy (sign of <Z_o>)"},
            ),
            "infidelity": (
                ("gamma", "duration"),
                infidelity,
                {
                    **one,
                    "long_name": "diabatic error 1 - |<g(beta_f)|psi(T)>|^2 (Schrodinger)",
                },
            ),
            "predicted_infidelity": (
                ("gamma", "duration"),
                predicted,
                {**one, "long_name": "first-order adiabatic prediction for the linear ramp"},
            ),
            "gap": (
                "gamma",
                gaps,
                {"units": "J", "long_name": "spectral gap E_1 - E_0 of the free Hamiltonian"},
            ),
        },
        coords={
            "variant": ("variant", list(VARIANTS), {**one, "long_name": "EP estimator"}),
            "beta": ("beta", betas, {"units": "J", "long_name": "nudge strength beta"}),
            "shot_beta": (
                "shot_beta",
                shot_betas,
                {"units": "J", "long_name": "nudge strength beta (shot panel)"},
            ),
            "shots": ("shots", shots, {**one, "long_name": "projective shots per basis and phase"}),
            "rule": (
                "rule",
                list(RULES),
                {**one, "long_name": "gradient: exact or EP variant (beta = 0.05 J)"},
            ),
            "epoch": (
                "epoch",
                np.arange(epochs + 1),
                {**one, "long_name": "epoch (full-batch steps)"},
            ),
            "gamma": (
                "gamma",
                gammas,
                {"units": "J", "long_name": "uniform transverse field Gamma"},
            ),
            "duration": (
                "duration",
                durations,
                {"units": "hbar / J", "long_name": "ramp time T of the linear nudge ramp"},
            ),
        },
    )
    config = {
        "figure": "qep",
        "quick": quick,
        "seed": seed,
        "shot_repeats": repeats,
        "ramp_beta": beta_ramp,
        "training": "4-qubit all-to-all TFIM, lr 0.06, full batch, Gamma >= 0.5",
    }
    return describe(
        ds, "Quantum equilibrium propagation on transverse-field Ising networks", config
    )


def plot(ds: xr.Dataset) -> plt.Figure:
    figure, axes = plt.subplots(2, 2, figsize=(10, 8))
    ax = axes[0, 0]
    for v in ds.variant.values:
        ax.loglog(ds.beta, ds.estimator_error.sel(variant=v), "o-", label=str(v))
    ax.set(
        xlabel="beta (J)", ylabel="|g_hat - g| / |g|", title="(a) estimator bias (8 qubits, exact)"
    )
    ax.legend()
    ax = axes[0, 1]
    for b, color in zip(ds.shot_beta.values, ("C0", "C1", "C2"), strict=False):
        for v, style in (("positive", "o-"), ("centered", "s--")):
            ax.loglog(
                ds.shots,
                ds.shot_error.sel(variant=v, shot_beta=b),
                style,
                color=color,
                label=f"{v}, beta = {b:g}",
            )
    ax.set(
        xlabel="shots per basis and phase",
        ylabel="RMS relative error",
        title="(b) bias vs shot noise",
    )
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    for r in ds.rule.values:
        ax.plot(ds.epoch, ds.test_accuracy.sel(rule=r), label=f"test accuracy, {r}")
        ax.plot(ds.epoch, ds.train_loss.sel(rule=r), ":", label=f"train loss, {r}")
    ax.set(xlabel="epoch", title="(c) Iris versicolor vs virginica, 4-qubit TFIM")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    for i, g in enumerate(ds.gamma.values):
        line = ax.loglog(
            ds.duration,
            ds.infidelity[i],
            "o",
            label=f"Gamma = {g:g} J (gap {float(ds.gap[i]):.2f} J)",
        )
        ax.loglog(ds.duration, ds.predicted_infidelity[i], "-", color=line[0].get_color())
    ax.set(
        xlabel="ramp time T (hbar / J)",
        ylabel="1 - fidelity",
        title="(d) linear nudge ramp: points simulated, lines theory",
    )
    ax.set_xticks([2, 4, 8, 16, 32, 64])
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.legend(fontsize=7)
    figure.tight_layout()
    return figure
