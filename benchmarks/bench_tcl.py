"""Cost of one TCL cycle (quasi-static network, exact linear memory) against one explicit EP
step (random sign, with its parameter update) on the same network and batch size, both as
training runs them (compiled scans over many batches: ``training.sgd_epoch``, ``simulate``)
and timed after a warm-up in the same run. Target: a TCL cycle costs at most 3 EP steps.
Both compute each phase's batch-mean current as one contraction; the TCL cycle adds
levels - 1 perturbed relaxations, a second free relaxation of the next batch (under the
updated parameters) and, per synapse, the exact memory propagation with g integrated on
(substeps + 1) nodes per stretch, with the embedded error estimate (docs/tcl.md). Two
settings: the default (levels 9, substeps 8) and a coarse one (levels 3, substeps 4).

    python benchmarks/bench_tcl.py [--cycles 200] [--mnist PATH]

For the MNIST-size network it also prints the wall time per epoch of full-size Fig. 3
(10,000 images, batch 20: 500 cycles or steps) on this machine, from the timed cycles: on
random inputs, or on the first images of a local mnist.npz with --mnist (the cost does not
depend on the pixel values).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _report import report

from synapse_dyn import networks as nw
from synapse_dyn import protocols, rules, tasks, training
from synapse_dyn.simulate import Schedule, simulate
from synapse_dyn.synapses import DeadZone, EColiCascade, Synapse

jax.config.update("jax_enable_x64", True)


SETTINGS = {
    "default quadrature (levels 9, substeps 8)": {},
    "coarse quadrature (levels 3, substeps 4)": dict(levels=3, substeps=4),
}


def measure(sizes, batch, free_sweeps, nudged_sweeps, cycles, quadrature, inputs=None):
    """(seconds per EP step, seconds per TCL cycle)."""
    network = nw.HopfieldNetwork(sizes, free_sweeps=free_sweeps, nudged_sweeps=nudged_sweeps)
    w = network.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    n = batch * (cycles + 2)
    x = jnp.asarray(rng.uniform(size=(n, sizes[0])) if inputs is None else inputs[:n])
    y = jnp.asarray(np.eye(sizes[-1])[rng.integers(sizes[-1], size=n)])
    rule = rules.EP(0.5, "random")
    # EP as training runs it: one compiled scan over the batches of an epoch (sgd_epoch),
    # timed after a compiling call on the same shapes
    epoch = dict(key=jax.random.key(1), learning_rate=0.01, batch_size=batch)
    rows = slice(0, batch * cycles)
    jax.block_until_ready(training.sgd_epoch(network, rule, w, x[rows], y[rows], **epoch))
    start = time.perf_counter()
    jax.block_until_ready(training.sgd_epoch(network, rule, w, x[rows], y[rows], **epoch))
    ep = (time.perf_counter() - start) / cycles
    synapse = Synapse(EColiCascade(0.05), DeadZone(1e-4), 0.01)
    protocol = protocols.Sawtooth(1.0, 99.0)
    common = dict(
        network=network,
        rule=rule,
        task=Schedule(x, y, batch),
        **quadrature,
    )
    warm = simulate(synapse, protocol, t1=25 * 100.0, w0=w, **common)  # compile (25-cycle chunks)
    start = time.perf_counter()
    run = simulate(
        synapse, protocol, t0=25 * 100.0, t1=(25 + cycles) * 100.0, state0=warm.state, **common
    )
    jax.block_until_ready(run.state[2])
    tcl = (time.perf_counter() - start) / cycles
    return ep, tcl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--mnist", help="path of a local mnist.npz")
    args = parser.parse_args()
    if args.cycles < 25 or args.cycles % 25:
        parser.error(f"--cycles must be a multiple of 25 (the chunk length), got {args.cycles}")
    print(f"device: {jax.devices()[0].device_kind} ({jax.devices()[0].platform})")
    images = tasks.mnist(args.mnist).x_train if args.mnist else None
    cases = [
        ((64, 64, 10), 16, 20, 8, "digits-size 64-64-10, batch 16"),
        ((784, 500, 10), 20, 20, 4, "MNIST-size 784-500-10, batch 20"),
    ]
    for sizes, batch, free, nudged, label in cases:
        for setting, quadrature in SETTINGS.items():
            inputs = images if sizes[0] == 784 else None
            ep, tcl = measure(sizes, batch, free, nudged, args.cycles, quadrature, inputs)
            report(
                "tcl",
                f"{label}, {setting}: TCL cycle",
                tcl,
                "EP step (sgd_epoch)",
                ep,
                tcl / ep,
                "<= 3",
                tcl / ep <= 3,
            )
            if sizes[0] == 784:
                data = "MNIST images" if args.mnist else "random inputs"
                gpu = jax.default_backend() == "gpu"
                report(
                    "tcl",
                    f"full-size Fig. 3 epoch (500 cycles, {data}), {setting}",
                    500 * tcl,
                    "EP epoch",
                    500 * ep,
                    tcl / ep,
                    "TCL epoch < 1 s on a GPU" if gpu else "-",
                    500 * tcl < 1 if gpu else None,
                )


if __name__ == "__main__":
    main()
