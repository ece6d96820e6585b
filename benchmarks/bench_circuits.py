"""Speed of circuits with VCVS, timed in the same run against baselines.

1. A ReLU network 64-512-512-512-10 compiled to a circuit (``compile_relu``: +- signal pairs,
   two summing nodes and two VCVS per hidden unit, 1.05 million resistors), a batch of 1,000
   inputs through the exact layered solve, against the plain deep resistive network of the
   same size (``DiodeNetwork`` 64-1024-1024-1024-10: 1024 nodes per hidden layer, like the
   circuit's summing nodes; 6 sweeps of block coordinate descent, the papers' setting for 3
   hidden layers), the same batch vmapped. Ratio = circuit / DRN (target < 2). The circuit's
   outputs are checked against the MLP (max |difference| printed).
2. A deep resistive network of 10^5 nodes (2 x 8 inputs, one hidden layer of 99,974 nodes,
   10 outputs: 1.8 million resistors) to its equilibrium by block coordinate descent, against
   ngspice's operating point on the exported netlist, if ngspice is installed:
   ``bench_networks.diode`` writes that row (under "networks"; ratio = ngspice / ours,
   disagreement next to the diode model's forward drop); ngspice is stopped after 30 minutes
   (5 quick) and the ratio printed as a lower bound.

Usage: python benchmarks/bench_circuits.py [--quick]   (quick: 64-128-128-128-10 and a
10^4-node DRN)
"""

import argparse
import time

import jax
import numpy as np
from _report import report
from bench_networks import best_of, diode

from synapse_dyn.networks import DiodeNetwork, compile_relu
from synapse_dyn.networks.spice import ngspice_available

jax.config.update("jax_enable_x64", True)


def compiled_against_drn(width: int, batch: int = 1000):
    rng = np.random.default_rng(0)
    sizes = [64, width, width, width, 10]
    layers = [
        (rng.normal(size=(o, i)) / np.sqrt(i), 0.1 * rng.normal(size=o))
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    start = time.perf_counter()
    circuit = compile_relu(layers)
    build = time.perf_counter() - start
    x = rng.uniform(0, 1, size=(batch, 64))
    ours = best_of(lambda: jax.block_until_ready(circuit.solve(x).v))
    outputs = np.asarray(circuit(x))
    h = x
    for k, (W, b) in enumerate(layers):
        h = h @ W.T + b
        h = np.maximum(h, 0) if k < len(layers) - 1 else h
    drn = DiodeNetwork((64, 2 * width, 2 * width, 2 * width, 10), 100.0, 6, 6)
    w = drn.init(jax.random.key(0))
    # conductances as an argument, as in training (closed over, XLA folds them as constants)
    solve = jax.jit(jax.vmap(lambda w, i: drn.solve(w, i, None, None), (None, 0)))
    theirs = best_of(lambda: jax.block_until_ready(solve(w, x)))
    report(
        "circuits",
        f"ReLU MLP {'-'.join(map(str, sizes))} compiled to a circuit ({circuit.n_nodes} nodes, "
        f"{circuit.resistors.a.size} resistors, {circuit.vcvs.plus.size} VCVS), batch {batch}",
        ours,
        f"plain DRN {'-'.join(map(str, drn.sizes))} (6 sweeps)",
        theirs,
        ours / theirs,
        "< 2",
        ours / theirs < 2,
        f"max|circuit - MLP| {np.abs(outputs - h).max():.1e}; circuit built in {build:.1f} s",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args()
    compiled_against_drn(128 if args.quick else 512)
    if not ngspice_available():
        print("DRN against ngspice: ngspice not installed, skipped")
    else:
        hidden = 10_000 - 26 if args.quick else 100_000 - 26
        diode((8, hidden, 10), gain=2.0, timeout=300.0 if args.quick else 1800.0)


if __name__ == "__main__":
    main()
