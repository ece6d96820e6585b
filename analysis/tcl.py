"""How well Temporal Contrastive Learning reproduces the explicit contrastive rule: the update
one sawtooth cycle accumulates, against the explicit EP / coupled-learning update and the exact
gradient, and how the agreement degrades when the timescale ordering
tau_K << tau_fast << tau_slow, tau_network << tau_fast is violated."""

import itertools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from synapse_dyn import protocols, rules
from synapse_dyn._progress import tqdm
from synapse_dyn.simulate import Schedule, simulate
from synapse_dyn.synapses import DeadZone, EColiCascade, Synapse

PROBE_RATE = 1e-6  # learning rate of the probe: the parameters barely move during it
# the timescale map's degradation must come from the time scales, not the quadrature: its
# points use the most substeps the adaptive rule refines to, and record the error estimate
MAP_SUBSTEPS = 48


def cycle_estimate(
    network,
    w,
    inputs,
    targets,
    rule,
    tau_fast,
    tau_slow,
    tau_kernel,
    threshold=None,
    mode="quasistatic",
    reverse=False,
    nonlinearity=None,
    area=0.0,
    **options,
):
    """The TCL estimate of dL/dw from one cycle, -dw/alpha over the second of two cycles of
    one batch (the first brings the memory to its periodic state), with E. coli memory of
    time ``tau_kernel`` and area ``area`` (0: perfect adaptation), and the quadrature's error
    estimate for that cycle (NaN for a relaxing network). The default threshold sits above
    every synapse's slow-ramp signal, theta = 3 max|b g_explicit| / tau_slow."""
    if nonlinearity is None:
        if threshold is None:
            explicit = rules.update(network, w, (inputs, targets), rule)
            threshold = 3 * float(jnp.max(jnp.abs(rule.strength * _flat(explicit)))) / tau_slow
        nonlinearity = DeadZone(threshold)
    synapse = Synapse(EColiCascade(tau_kernel, area=area), nonlinearity, PROBE_RATE)
    protocol = protocols.Sawtooth(tau_fast, tau_slow, reverse=reverse)
    period = tau_fast + tau_slow
    common = dict(
        network=network,
        rule=rule,
        task=Schedule(inputs, targets, blend=0.0),
        mode=mode,
        **options,
    )
    first = simulate(synapse, protocol, t1=period, w0=w, **common)
    second = simulate(synapse, protocol, t0=period, t1=2 * period, state0=first.state, **common)
    estimate = jax.tree.map(lambda a, b: -(b - a) / PROBE_RATE, first.state[2], second.state[2])
    return estimate, float(second.quadrature_error[-1])


def _flat(tree):
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])


def agreement(estimate, reference) -> tuple[float, float]:
    """(cosine similarity, |estimate| / |reference|) of two parameter pytrees; the cosine is
    NaN when the estimate vanishes (every synapse in its dead zone)."""
    a, b = _flat(estimate), _flat(reference)
    norm_a, norm_b = float(jnp.linalg.norm(a)), float(jnp.linalg.norm(b))
    cosine = float(a @ b) / (norm_a * norm_b) if norm_a > 0 else float("nan")
    return cosine, norm_a / norm_b


def timescale_map(
    network,
    w,
    inputs,
    targets,
    rule,
    kernel_ratios=(2, 5, 20, 100),
    slow_ratios=(3, 10, 100),
    network_ratios=(None,),
    tau_fast=1.0,
    progress=True,
):
    """Agreement of the one-cycle TCL update with the explicit rule and the exact gradient over
    tau_fast/tau_K, tau_slow/tau_fast and tau_network/tau_fast (None: quasi-static), and the
    quadrature's error estimate at each point."""
    explicit = rules.update(network, w, (inputs, targets), rule)
    exact = rules.update(network, w, (inputs, targets), rules.ExactGradient(rule.cost))
    shape = (len(kernel_ratios), len(slow_ratios), len(network_ratios))
    results = {
        name: np.full(shape, np.nan)
        for name in ("cosine_explicit", "magnitude_explicit", "cosine_exact", "quadrature_error")
    }
    points = list(itertools.product(*(range(n) for n in shape)))
    with warnings.catch_warnings():
        # the map leaves the ideal ordering on purpose: what simulate warns about is its subject
        warnings.filterwarnings("ignore", "the protocol's fastest ramp", UserWarning)
        warnings.filterwarnings("ignore", "nudge outside the synapses' learning range", UserWarning)
        for i, j, k in tqdm(points, desc="timescale map", disable=not progress):
            speed = network_ratios[k]
            probe_network = (
                network
                if speed is None
                else eqx.tree_at(lambda n: n.relaxation_time, network, speed * tau_fast)
            )
            mode = "quasistatic" if speed is None else "relaxation"
            estimate, results["quadrature_error"][i, j, k] = cycle_estimate(
                probe_network,
                w,
                inputs,
                targets,
                rule,
                tau_fast,
                slow_ratios[j] * tau_fast,
                tau_fast / kernel_ratios[i],
                mode=mode,
                substeps=MAP_SUBSTEPS,
            )
            results["cosine_explicit"][i, j, k], results["magnitude_explicit"][i, j, k] = agreement(
                estimate, explicit
            )
            results["cosine_exact"][i, j, k] = agreement(estimate, exact)[0]
    attrs = {
        "cosine_explicit": ("cosine similarity of the TCL and explicit updates", "1"),
        "magnitude_explicit": ("|TCL update| / |explicit update|", "1"),
        "cosine_exact": ("cosine similarity of the TCL update and the exact gradient", "1"),
        "quadrature_error": (
            "quadrature error estimate |dw - dw_embedded| / |dw| (NaN: relaxing network)",
            "1",
        ),
    }
    dims = ("tau_fast_over_tau_kernel", "tau_slow_over_tau_fast", "tau_network_over_tau_fast")
    coords = {
        dims[0]: (
            dims[0],
            np.asarray(kernel_ratios, float),
            {"units": "1", "long_name": "tau_fast / tau_K"},
        ),
        dims[1]: (
            dims[1],
            np.asarray(slow_ratios, float),
            {"units": "1", "long_name": "tau_slow / tau_fast"},
        ),
        dims[2]: (
            dims[2],
            np.asarray([0.0 if r is None else r for r in network_ratios], float),
            {"units": "1", "long_name": "tau_network / tau_fast (0: quasi-static)"},
        ),
    }
    data = {
        name: (dims, value, {"long_name": attrs[name][0], "units": attrs[name][1]})
        for name, value in results.items()
    }
    return xr.Dataset(data, coords=coords)


def plot_timescale_map(ds):
    """Cosine similarity and magnitude ratio against tau_fast/tau_K, one line per
    tau_slow/tau_fast (first network speed)."""
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    view = ds.isel(tau_network_over_tau_fast=0)
    for ratio in view.tau_slow_over_tau_fast.values:
        line = view.sel(tau_slow_over_tau_fast=ratio)
        axes[0].plot(
            line.tau_fast_over_tau_kernel,
            line.cosine_explicit,
            "o-",
            label=f"tau_s/tau_f = {ratio:g}",
        )
        axes[1].plot(line.tau_fast_over_tau_kernel, line.magnitude_explicit, "o-")
    axes[0].set(xscale="log", xlabel="tau_fast / tau_K", ylabel="cosine(TCL, explicit)")
    axes[1].set(xscale="log", xlabel="tau_fast / tau_K", ylabel="|TCL| / |explicit|")
    axes[1].axhline(1.0, color="0.6", lw=0.8)
    axes[0].legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure
