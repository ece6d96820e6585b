"""Network-level TCL on large sparse lattices (10^3 to 10^5 nodes): one quasi-static TCL
cycle (EP, random sign, batch 1, the default levels 9 and quadrature, ``SparseDirect``)
against one sparse factorisation plus solve of the same network (SciPy SuperLU with the same
ordering, timed in the same run), on a resistor lattice and on an elastic triangular lattice.

Resistor: a cycle solves the next two batches and the Thevenin columns G = A^-1 E under its
new parameters with one factorisation, and takes every nudge level from the Thevenin
equivalent. Elastic (nonlinear): the free states of the next two batches and every nudge
level (Woodbury for the nudge) by chord steps on the springs' Hessian at rest, factorised
again only once a stiffness has moved by 5 % from those of the kept factorisation; the note
gives the factorisations and solves (right-hand sides) per cycle. The baseline factorises
the springs' Hessian (2 unknowns per free node).

Times are the best of a few runs, in CPU seconds (the process's, all threads: the cost,
independent of the machine's load; the target is judged on it) and in wall seconds (in the
note). Targets: a cycle at 10^4 nodes costs at most 3 factorisations plus solve; time grows
at most like n^1.3. ``--compare`` also times the resistor's previous path (one relaxation per
level and sample, as for a nonlinear network) up to 10^4 nodes.

    python benchmarks/bench_tcl_sparse.py [--quick] [--compare] [--cycles 25]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from _report import pin_blas_threads, report

from synapse_dyn import networks as nw
from synapse_dyn import protocols, rules
from synapse_dyn.networks import sparse
from synapse_dyn.simulate import Schedule, simulate
from synapse_dyn.simulate import network as tcl_network
from synapse_dyn.synapses import DeadZone, EColiCascade, Synapse

jax.config.update("jax_enable_x64", True)


def lattice_network(side):
    graph = nw.lattice(side, side)
    n = graph.n_nodes
    outputs = [n // 2, n // 2 + side // 2]
    return nw.ResistorNetwork(graph, [0, n - 1], outputs, [side - 1], solver=nw.SparseDirect())


def elastic_network(side):
    """A triangular lattice strained at two springs on its left side (one alone would leave
    the lattice a near-free rotation about it: at 10^5 nodes a zero mode to 1e-9); two target
    springs on its right half."""
    graph = nw.triangular_lattice(side, side)
    middle = 0.5 * (graph.positions[graph.senders] + graph.positions[graph.receivers])
    height = middle[:, 1].max()
    near = lambda x, y: int(np.argmin(np.hypot(middle[:, 0] - x, middle[:, 1] - y)))  # noqa: E731
    targets = [near(0.75 * side, 0.3 * height), near(0.75 * side, 0.7 * height)]
    sources = [near(0.0, 0.25 * height), near(0.0, 0.75 * height)]
    return nw.ElasticNetwork(graph, sources, targets, solver=nw.SparseDirect())


def timed(function, repeats):
    """(wall, CPU) seconds of ``function``, each the best of ``repeats``. CPU time (all
    threads of this process) is the cost that does not scale with the machine's load."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return np.array([min(walls), min(cpus)])


def system(net, w):
    """The sparse matrix a cycle factorises: the free nodes' Laplacian (resistor), the
    springs' Hessian at rest (elastic)."""
    if isinstance(net, nw.ElasticNetwork):
        values = net.spring_hessian(net.initial_state(), w, jnp.zeros(net.n_inputs))
        n = 2 * net.free_nodes.size
        return sp.csc_matrix((np.asarray(values), (net.hessian_rows, net.hessian_cols)), (n, n))
    lap = net.graph.laplacian(np.asarray(w)).tocsc()
    return lap[net.free_nodes][:, net.free_nodes].tocsc()


def factorise_and_solve(matrix):
    """(wall, CPU) seconds of one SuperLU factorisation and solve, as ``SparseDirect``."""
    rhs = np.random.default_rng(0).normal(size=matrix.shape[0])
    options = {"SymmetricMode": True}
    factor = lambda: spla.splu(matrix, "MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options=options)  # noqa: E731
    return timed(lambda: factor().solve(rhs), 5)


def tcl_cycle(net, w, cycles, thevenin=True, repeats=3):
    """(wall, CPU) seconds per TCL cycle, the best of ``repeats`` runs of ``cycles`` cycles
    after a first run (same shapes: no compilation inside the timing), and the sparse
    solver's ``statistics`` per cycle over those runs."""
    tcl_network_has = tcl_network._has_thevenin
    tcl_network._has_thevenin = lambda network: thevenin and tcl_network_has(network)
    try:
        rng = np.random.default_rng(0)
        scale = 0.1 if isinstance(net, nw.ElasticNetwork) else 1.0  # strains, potentials
        task = Schedule(
            jnp.asarray(rng.uniform(-scale, scale, (2 * cycles + 2, net.n_inputs))),
            jnp.asarray(rng.uniform(-0.2 * scale, 0.2 * scale, (2 * cycles + 2, net.n_outputs))),
        )
        common = dict(network=net, rule=rules.EP(0.05, "random"), task=task)
        # thresholds inside the contrasts (elastic currents 1/2 (r - l)^2 are far smaller)
        threshold = 1e-12 if isinstance(net, nw.ElasticNetwork) else 1e-6
        synapse = Synapse(EColiCascade(0.05), DeadZone(threshold), 0.01)
        protocol = protocols.Sawtooth(1.0, 99.0)
        period = 100.0
        warm = simulate(synapse, protocol, t1=cycles * period, w0=w, **common)

        def run():
            later = dict(t0=cycles * period, t1=2 * cycles * period, state0=warm.state)
            jax.block_until_ready(simulate(synapse, protocol, **later, **common).state[2])

        before = sparse.statistics()
        seconds = timed(run, repeats) / cycles
        after = sparse.statistics()
        return seconds, {name: (after[name] - before[name]) / (repeats * cycles) for name in after}
    finally:
        tcl_network._has_thevenin = tcl_network_has


def scaling(name, build, sides, cycles, compare):
    """One substrate's rows: a cycle against a factorisation at each size (``compare``: and
    against relaxing every level), then the growth exponents."""
    sizes, cycle_times = [], []
    for side in sides:
        net = build(side)
        w = net.init(jax.random.key(0))
        n = net.graph.n_nodes
        baseline = factorise_and_solve(system(net, w))
        count = cycles if side < 300 else max(1, cycles // 5)
        cycle, counts = tcl_cycle(net, w, count, repeats=3 if side < 300 else 1)
        sizes.append(n)
        cycle_times.append(cycle)
        wall, cpu = cycle / baseline
        report(
            "tcl_sparse",
            f"TCL cycle, {name} n={n} (CPU time)",
            cycle[1],
            "SuperLU factorise+solve",
            baseline[1],
            cpu,
            "<= 3 at 10^4 nodes" if side == 100 else "-",
            bool(cpu <= 3) if side == 100 else None,
            f"wall: {cycle[0]:.3g} s vs {baseline[0]:.3g} s, ratio {wall:.3g}; per cycle "
            f"{counts['factorisations']:.2g} factorisations, {counts['solves']:.3g} solves",
        )
        if compare and side <= 100:
            previous, _ = tcl_cycle(net, w, count, thevenin=False)
            report(
                "tcl_sparse",
                f"TCL cycle, {name} n={n} (CPU time)",
                cycle[1],
                "previous path (relax every level)",
                previous[1],
                previous[1] / cycle[1],
                "speed-up",
                None,
                f"wall: {cycle[0]:.3g} s vs {previous[0]:.3g} s",
            )
    for kind, column in (("CPU", 1), ("wall", 0)):
        times = [t[column] for t in cycle_times]
        exponent = float(np.polyfit(np.log(sizes), np.log(times), 1)[0])
        report(
            "tcl_sparse",
            f"growth exponent of the {name} cycle's {kind} time, n={sizes[0]}..{sizes[-1]}",
            None,
            "-",
            None,
            exponent,
            "<= 1.3",
            exponent <= 1.3,
        )


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
    scaling("lattice", lattice_network, sides, args.cycles, args.compare)
    scaling("elastic lattice", elastic_network, sides, args.cycles, compare=False)


if __name__ == "__main__":
    main()
