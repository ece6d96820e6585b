"""Input gain and amplification in deep resistive networks: test accuracy against the input
gain A for plain DRNs and for the same networks with a VCVS after every layer (the circuit of
Scellier and Mishra's theorem, ``circuits.drn_circuit(..., amplifiers=True)``).

Plain DRN: ``DiodeNetwork`` (inputs at A [x, -x], hidden layers half excitatory, half
inhibitory, crossbar conductances, bias currents), trained by truncated backpropagation
through its block-coordinate-descent sweeps. Amplified DRN: the same parameters, every node
driving a VCVS of gain a_i = sum_j G[i, j] whose output feeds the next layer (and is the read-out
for the outputs); the VCVS draw no current, so the steady state is feed-forward,
u_k = clip(G_k u_{k-1} + b_k, lo_k, hi_k) with bounds 0 or +-inf, trained by backpropagation
through it (exact). Both: digits, MSE on one-hot targets, Adam (a step size independent of the
gradient's scale, so the gain's effect is the networks' and not the optimiser's), same
initialisation and batch order.

The plain DRN's layers average (convex combinations), so its outputs reach the targets'
scale only with a large input gain; the amplified DRN's layers compute G u + b, so its
output scale is proportional to A (about sqrt(fan_in) / 2 per layer at initialisation): it
works at gains of order one, and a large gain must be undone by shrinking conductances.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import xarray as xr

from synapse_dyn import networks as nw
from synapse_dyn import rules, tasks
from synapse_dyn._checks import require_x64
from synapse_dyn._progress import tqdm
from synapse_dyn.io import describe

from . import drn_table

MODELS = ("plain DRN", "DRN with VCVS")


class Amplified(eqx.Module):
    """A ``DiodeNetwork``'s parameters in the amplified circuit (module docstring)."""

    network: nw.DiodeNetwork

    def outputs(self, w, x):
        u = self.network.sources(x)
        bounds = self.network.layer_bounds()
        for G, b, (lo, hi) in zip(w["weights"], w["biases"], bounds, strict=True):
            u = jnp.clip(G @ u + b, lo, hi)
        return u

    def predict(self, w, x):
        return jax.vmap(lambda i: self.outputs(w, i))(x)

    def gradient(self, w, x, y):
        loss = lambda w_: 0.5 * jnp.mean(jnp.sum((self.predict(w_, x) - y) ** 2, axis=1))
        return jax.grad(loss)(w)

    def project(self, w):
        return self.network.project(w)


def compute(
    quick: bool = False,
    progress: bool = True,
    seeds: int | None = None,
    steps: int | None = None,
) -> xr.Dataset:
    """Test error against input gain, 1 and 2 hidden layers of 32 nodes, 700 Adam steps (8
    epochs of digits; quick: 1 hidden layer of 16, 3 gains, 1 seed, 150 steps)."""
    require_x64("drn_gain")
    gains = [1.0, 10.0, 100.0] if quick else [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]
    depths = [1] if quick else [1, 2]
    seeds = (1 if quick else 3) if seeds is None else seeds
    steps = (150 if quick else 700) if steps is None else steps
    hidden, learning_rate, batch_size = (16 if quick else 32), 3e-3, 16
    optimizer = optax.adam(learning_rate)
    shape = (len(depths), len(gains), len(MODELS), seeds)
    error = np.full(shape, np.nan)
    runs = list(np.ndindex(*shape))
    for j, g, m, s in tqdm(runs, desc="drn_gain", disable=not progress):
        task = tasks.digits(seed=s)
        sizes = (task.n_inputs, *[hidden] * depths[j], task.n_outputs)
        sweeps = drn_table.SHIPPED.sweeps[depths[j] - 1]
        network = nw.DiodeNetwork(sizes, gains[g], sweeps, sweeps)
        model = drn_table._DRN(network, rules.TBP()) if m == 0 else Amplified(network)
        params = network.init(jax.random.key(s))
        _, error[j, g, m, s], _ = drn_table.fit(
            model, params, task, steps, optimizer, batch_size, s
        )
    ds = xr.Dataset(
        {
            "test_error": (
                ("depth", "gain", "model", "seed"),
                100 * error,
                {"units": "%", "long_name": "test error on digits (argmax of outputs != label)"},
            )
        },
        coords={
            "depth": ("depth", depths, {"units": "1", "long_name": "hidden layers"}),
            "gain": ("gain", gains, {"units": "1", "long_name": "input gain A"}),
            "model": ("model", list(MODELS), {"units": "1", "long_name": "circuit"}),
            "seed": ("seed", np.arange(seeds), {"units": "1", "long_name": "seed"}),
        },
    )
    config = {
        "figure": "drn_gain",
        "task": "digits",
        "hidden": hidden,
        "steps": steps,
        "optimizer": "adam",
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "sweeps": drn_table.SHIPPED.sweeps,
        "plain_rule": "truncated backpropagation",
        "amplified_rule": "backpropagation through the feed-forward steady state",
    }
    return describe(ds, "Input gain with and without inter-layer amplifiers (VCVS)", config)


def plot(ds: xr.Dataset):
    figure, axes = plt.subplots(
        1, ds.sizes["depth"], figsize=(3.6 * ds.sizes["depth"], 3.0), squeeze=False
    )
    for axis, depth in zip(axes[0], ds.depth.values, strict=True):
        for model, marker in zip(ds.model.values, "os", strict=True):
            error = ds.test_error.sel(depth=depth, model=model)
            axis.errorbar(
                ds.gain, error.mean("seed"), yerr=error.std("seed"), marker=marker, label=model
            )
        axis.set(
            xscale="log",
            xlabel="input gain A",
            ylabel="test error (%)",
            title=f"{depth} hidden layer{'s' if depth > 1 else ''}",
        )
    axes[0, 0].legend(fontsize=8)
    figure.tight_layout()
    return figure
