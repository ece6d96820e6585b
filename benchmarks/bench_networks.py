"""Equilibrium speed of the resistor substrates against reference solvers, timed in the same run.

1. Linear resistor network on an L x L lattice (two sources, one ground), 10^3, 10^4, 10^5
   nodes: ``ResistorNetwork.equilibrium`` with the pure-JAX matrix-free Jacobi-preconditioned
   CG (lineax, rtol 1e-8: Kirchhoff residuals ~1e-10) and with ``SparseDirect`` (SuperLU called
   back from jit, assembly in JAX), both jitted, against ``scipy.sparse.linalg.spsolve``
   (SuperLU) on the same reduced Laplacian system assembled by scipy.
   Ratio = scipy time / ours (> 1: we are faster); max |difference| reported.
2. Deep resistive network with ideal diodes, layered, >= 1000 nodes: exact block coordinate
   descent (``DiodeNetwork``) against ngspice's operating point on the exported netlist
   (near-ideal diode model). Ratio = ngspice time / ours; disagreement reported next to the
   model's forward drop, the accuracy ngspice's diode model allows.

Usage: python benchmarks/bench_networks.py [--quick]
"""

import argparse
import subprocess
import time

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import scipy.sparse.linalg as spla
from _report import BLAS_THREADS, pin_blas_threads, report

from synapse_dyn.networks import DiodeNetwork, ResistorNetwork, SparseDirect, lattice
from synapse_dyn.networks.spice import diode_forward_drop, ngspice_available, run_ngspice

jax.config.update("jax_enable_x64", True)


def best_of(function, repeats=3):
    function()  # warm up / compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def linear(side: int):
    graph = lattice(side, side)
    n = graph.n_nodes
    inputs = jnp.array([1.0, -1.0])
    timings = {}
    for name, solver in (
        ("CG", lx.CG(rtol=1e-8, atol=1e-10, max_steps=100 * side)),
        ("SparseDirect", SparseDirect()),
    ):
        net = ResistorNetwork(graph, [0, n - 1], [n // 2], ground_nodes=[side - 1], solver=solver)
        w = net.init(jax.random.key(0))
        solve = jax.jit(lambda w, inputs, net=net: net.equilibrium(w, inputs))
        # every timed call on new conductances: SparseDirect keeps the factorisation of a
        # matrix it has met, and scipy factorises every time
        scales = iter(1.0 + 1e-6 * np.arange(1, 100))
        timings[name] = (
            best_of(
                lambda solve=solve, w=w, scales=scales: jax.block_until_ready(
                    solve(w * next(scales), inputs)
                )
            ),
            np.asarray(solve(w, inputs)),
        )

    laplacian = graph.laplacian(w)
    free = net.free_nodes
    fixed = np.array([0, n - 1, side - 1])
    values = np.array([1.0, -1.0, 0.0])

    def scipy_solve():
        return spla.spsolve(laplacian[free][:, free].tocsc(), -laplacian[free][:, fixed] @ values)

    theirs = best_of(scipy_solve)
    reference = scipy_solve()
    for name, (ours, x) in timings.items():
        print(
            f"linear  n={n:>7d}  {name:<12s} {ours * 1e3:9.2f} ms   scipy.sparse "
            f"{theirs * 1e3:9.2f} ms   "
            f"ratio {theirs / ours:6.2f}   max|dv| {np.abs(reference - x).max():.1e}"
        )
        report(
            "networks",
            f"linear lattice n={n}, {name}",
            ours,
            "scipy spsolve",
            theirs,
            theirs / ours,
            "-",
            None,
            f"max|dv| {np.abs(reference - x).max():.1e}",
        )


def diode(sizes, gain, timeout=600.0):
    net = DiodeNetwork(sizes, input_gain=gain, free_sweeps=1, nudged_sweeps=1)
    w = net.init(jax.random.key(1))
    w["biases"] = tuple(
        0.01 * jax.random.normal(jax.random.key(k), b.shape) for k, b in enumerate(w["biases"])
    )
    inputs = jax.random.uniform(jax.random.key(2), (sizes[0],))
    sweep = jax.jit(lambda w, x: net.sweep(w, inputs, None, x))  # w closed over: XLA folds it

    # converge: sweeps until the largest change is below 1e-9 V, counted once
    x, sweeps = net.initial_state(), 0
    while True:
        new = sweep(w, x)
        sweeps += 1
        change = max(float(jnp.abs(a - b).max()) for a, b in zip(new, x, strict=False))
        x = new
        if change < 1e-9 or sweeps > 10000:
            break
    converged = with_sweeps(net, sweeps)
    solve = jax.jit(lambda w, inputs: converged.equilibrium(w, inputs))
    ours = best_of(lambda: jax.block_until_ready(solve(w, inputs)))
    x = solve(w, inputs)
    netlist = net.to_spice(w, inputs)
    start = time.perf_counter()
    try:
        spice = run_ngspice(netlist, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(
            f"diode   nodes={sum(net.layer_sizes):>6d} ours {ours * 1e3:8.1f} ms ({sweeps} "
            f"sweeps)   ngspice op stopped after {timeout:.0f} s: ratio > {timeout / ours:.0f}"
        )
        report(
            "networks",
            f"diode network, {sum(net.layer_sizes)} nodes, {sweeps} sweeps",
            ours,
            "ngspice operating point (stopped)",
            timeout,
            timeout / ours,
            "-",
            None,
            f"ngspice stopped after {timeout:.0f} s: baseline and ratio are lower bounds",
        )
        return
    theirs = time.perf_counter() - start
    names = [name for layer in net.node_names() for name in layer]
    ours_v = np.concatenate([np.asarray(layer) for layer in x])
    error = np.abs(np.array([spice[k] for k in names]) - ours_v).max()
    current = float(
        np.abs(np.concatenate([np.asarray(g) for g in jax.grad(net.energy)(x, w, inputs)])).max()
    )
    print(
        f"diode   nodes={sum(net.layer_sizes):>6d} "
        f"resistors={sum(W.size for W in w['weights'])}  ours {ours * 1e3:8.1f} ms "
        f"({sweeps} sweeps)   ngspice op {theirs * 1e3:9.1f} ms   ratio {theirs / ours:7.1f}   "
        f"max|dv| {error:.1e} (forward drop {diode_forward_drop(current):.1e})"
    )
    report(
        "networks",
        f"diode network, {sum(net.layer_sizes)} nodes, {sweeps} sweeps",
        ours,
        "ngspice operating point",
        theirs,
        theirs / ours,
        "-",
        None,
        f"max|dv| {error:.1e} (forward drop {diode_forward_drop(current):.1e})",
    )


def with_sweeps(net, sweeps):
    return DiodeNetwork(net.sizes, net.input_gain, sweeps, sweeps, net.min_conductance)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--quick", action="store_true", help="10^3 and 10^4 nodes only, smaller diode network"
    )
    args = parser.parse_args()
    limiter = pin_blas_threads()  # noqa: F841
    print(f"BLAS threads: {BLAS_THREADS}")
    for side in (32, 100) if args.quick else (32, 100, 317):
        linear(side)
    if not ngspice_available():
        print("diode: ngspice not installed, skipped")
        return
    diode((5, 200, 200, 10) if args.quick else (10, 500, 500, 10), gain=2.0)


if __name__ == "__main__":
    main()
