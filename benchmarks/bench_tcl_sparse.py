"""Network-level TCL on large sparse resistor lattices (10^3 to 10^5 nodes): one quasi-static
TCL cycle (EP, random sign, batch 1, the default levels 9 and substeps 6, ``SparseDirect``)
against one sparse factorisation plus solve of the same network (SciPy SuperLU with the same
ordering, timed in the same run). A cycle solves the next batch and the Thevenin columns
G = A^-1 E under the old parameters and the next batch under the new ones (two
factorisations), then takes every nudge level from the Thevenin equivalent. Targets: a cycle
at 10^4 nodes costs at most 3 factorisations plus solve; time grows at most like n^1.3.
``--compare`` also times the previous path (one relaxation per level and sample, as for a
nonlinear network) up to 10^4 nodes.

    python benchmarks/bench_tcl_sparse.py [--quick] [--compare] [--cycles 25]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg as spla
from _report import pin_blas_threads, report

from synapse_dyn import networks as nw
from synapse_dyn import protocols, rules
from synapse_dyn.simulate import Schedule, simulate
from synapse_dyn.simulate import network as tcl_network
from synapse_dyn.synapses import DeadZone, EColiCascade, Synapse

jax.config.update("jax_enable_x64", True)


def lattice_network(side):
    graph = nw.lattice(side, side)
    n = graph.n_nodes
    outputs = [n // 2, n // 2 + side // 2]
    return nw.ResistorNetwork(graph, [0, n - 1], outputs, [side - 1], solver=nw.SparseDirect())


def factorise_and_solve(net, w):
    """Seconds of one SuperLU factorisation and solve of the free-node system (best of 3)."""
    lap = net.graph.laplacian(np.asarray(w)).tocsc()
    fixed = np.concatenate([net.input_nodes, net.ground_nodes])
    matrix = lap[net.free_nodes][:, net.free_nodes].tocsc()
    rhs = -lap[net.free_nodes][:, fixed] @ np.array([1.0, -1.0, 0.0])
    times = []
    for _ in range(3):
        start = time.perf_counter()
        spla.splu(
            matrix,
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        ).solve(rhs)
        times.append(time.perf_counter() - start)
    return min(times)


def tcl_cycle(net, w, cycles, thevenin=True):
    """Seconds per TCL cycle, timed on a second run of ``cycles`` cycles (same shapes: no
    compilation inside the timing)."""
    tcl_network_has = tcl_network._has_thevenin
    tcl_network._has_thevenin = lambda network: thevenin and tcl_network_has(network)
    try:
        rng = np.random.default_rng(0)
        task = Schedule(
            jnp.asarray(rng.uniform(-1, 1, (2 * cycles + 2, 2))),
            jnp.asarray(rng.uniform(-0.2, 0.2, (2 * cycles + 2, 2))),
        )
        common = dict(network=net, rule=rules.EP(0.05, "random"), task=task)
        synapse = Synapse(EColiCascade(0.05), DeadZone(1e-6), 0.01)
        protocol = protocols.Sawtooth(1.0, 99.0)
        period = 100.0
        warm = simulate(synapse, protocol, t1=cycles * period, w0=w, **common)
        start = time.perf_counter()
        run = simulate(
            synapse,
            protocol,
            t0=cycles * period,
            t1=2 * cycles * period,
            state0=warm.state,
            **common,
        )
        jax.block_until_ready(run.state[2])
        return (time.perf_counter() - start) / cycles
    finally:
        tcl_network._has_thevenin = tcl_network_has


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 nodes only")
    parser.add_argument("--compare", action="store_true", help="also the previous path")
    parser.add_argument(
        "--cycles", type=int, default=25, help="timed cycles (a fifth of them at 10^5 nodes)"
    )
    args = parser.parse_args()
    limiter = pin_blas_threads()  # noqa: F841
    sides = (32, 100) if args.quick else (32, 100, 317)
    sizes, cycle_times = [], []
    for side in sides:
        net = lattice_network(side)
        w = net.init(jax.random.key(0))
        n = net.graph.n_nodes
        baseline = factorise_and_solve(net, w)
        cycles = args.cycles if side < 300 else max(1, args.cycles // 5)
        cycle = tcl_cycle(net, w, cycles)
        sizes.append(n)
        cycle_times.append(cycle)
        target = "<= 3 at 10^4 nodes" if side == 100 else "-"
        report(
            "tcl_sparse",
            f"TCL cycle, lattice n={n}",
            cycle,
            "SuperLU factorise+solve",
            baseline,
            cycle / baseline,
            target,
            (cycle / baseline <= 3) if side == 100 else None,
        )
        if args.compare and side <= 100:
            previous = tcl_cycle(net, w, cycles, thevenin=False)
            report(
                "tcl_sparse",
                f"TCL cycle, lattice n={n}",
                cycle,
                "previous path (relax every level)",
                previous,
                previous / cycle,
                "speed-up",
                None,
            )
    exponent = np.polyfit(np.log(sizes), np.log(cycle_times), 1)[0]
    report(
        "tcl_sparse",
        f"growth exponent of the cycle time, n={sizes[0]}..{sizes[-1]}",
        None,
        "-",
        None,
        float(exponent),
        "<= 1.3",
        bool(exponent <= 1.3),
    )


if __name__ == "__main__":
    main()
