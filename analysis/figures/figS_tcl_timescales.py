"""When does TCL reproduce the explicit rule? Agreement of the update accumulated over one
sawtooth cycle with explicit EP (cosine similarity, magnitude ratio) and with the exact
gradient, on a random resistor network, as the timescale ordering
tau_K << tau_fast << tau_slow (and tau_network << tau_fast) is violated."""

import jax
import jax.numpy as jnp

from synapse_dyn import networks as nw
from synapse_dyn import rules
from synapse_dyn.analysis.tcl import plot_timescale_map, timescale_map
from synapse_dyn.io import describe

BETA = 0.05


def problem():
    """(network, parameters, inputs, targets, rule) of the figure."""
    network = nw.ResistorNetwork(nw.random_graph(25, seed=5), [0, 1], [7, 8], ground_nodes=[2])
    inputs, targets = jnp.array([[1.0, -0.6]]), jnp.array([[0.25, 0.1]])
    return network, network.init(jax.random.key(3)), inputs, targets, rules.EP(BETA, "positive")


def compute(quick: bool = False, progress: bool = True):
    network, w, inputs, targets, rule = problem()
    grid = (
        dict(kernel_ratios=(2, 100), slow_ratios=(3, 100), network_ratios=(None,))
        if quick
        else dict(
            kernel_ratios=(1, 2, 5, 10, 20, 50, 100),
            slow_ratios=(2, 3, 10, 100),
            network_ratios=(None, 0.01, 0.3),
        )
    )
    ds = timescale_map(network, w, inputs, targets, rule, progress=progress, **grid)
    config = {
        "figure": "figS_tcl_timescales",
        "beta": BETA,
        "network": "resistor, 25-node random graph",
        **{k: [str(v) for v in vals] for k, vals in grid.items()},
    }
    return describe(ds, "TCL versus explicit EP over the timescale ordering", config)


def plot(ds):
    return plot_timescale_map(ds)
