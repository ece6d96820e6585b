"""Quantum EP speed and accuracy at sizes beyond the tests, timed in the same run.

1. QEP gradient, 16 qubits, exact (sparse Lanczos): centered EP (free + two nudged ground
   states + currents) on a random planar graph. Target < 2 s. Baseline: one ground state by
   the reference route, quimb's SparseOperatorBuilder.build_sparse_matrix + scipy eigsh(k=1);
   ratio = 3 x baseline / ours (> 1: our three ground states beat three reference ones).
2. 64-qubit chain by DMRG (quimb DMRG2 on our MPO), paramagnetic (Gamma in [1.5, 2] J, J in
   [0.5, 1] J, h = 0: gapped, away from the critical point Gamma = J). Reference: the exact
   free-fermion energy E_0 = -sum of the singular values of the bidiagonal matrix
   (diagonal Gamma_i, superdiagonal J_i) (Jordan-Wigner). Target: error < 1e-8, time < 60 s.
(The estimator-bias orders on a 32-qubit DMRG chain are asserted by tests/test_quantum.py.)

Usage: python benchmarks/bench_quantum.py
"""

import argparse
import time

import numpy as np
import scipy.sparse.linalg as spla
from _report import report

from synapse_dyn import rules
from synapse_dyn.networks import quantum as q
from synapse_dyn.networks import random_graph


def best_of(function, repeats=3):
    function()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def gradient_16():
    import quimb.operator as qo

    network = q.TransverseFieldIsing(random_graph(16, seed=0), [0, 1], [15])
    w = network.init(seed=0)
    x, y = np.array([[0.4, -0.2]]), np.array([[1.0]])
    rule = rules.EP(0.05, "centered")
    ours = best_of(lambda: q.ep_gradient(network, w, x, y, rule))

    def reference():
        builder = qo.SparseOperatorBuilder(hilbert_space=qo.HilbertSpace(16))
        g = network.graph
        for a, b, coupling in zip(g.senders, g.receivers, w["J"], strict=True):
            builder.add_term(-float(coupling), ("z", int(a)), ("z", int(b)))
        for i, (field, gamma) in enumerate(zip(network.fields(w, x[0]), w["Gamma"], strict=True)):
            builder.add_term(-float(field), ("z", i))
            builder.add_term(-float(gamma), ("x", i))
        return spla.eigsh(builder.build_sparse_matrix(), k=1, which="SA", tol=1e-13)[0][0]

    baseline = best_of(reference, repeats=1)
    energy = network.solve(w, x[0]).energy
    report(
        "quantum",
        "16-qubit centered QEP gradient (exact)",
        ours,
        "3 reference ground states (quimb sparse + eigsh)",
        3 * baseline,
        3 * baseline / ours,
        "< 2 s",
        ours < 2.0,
        f"|E_ours - E_ref| = {abs(energy - reference()):.1e}",
    )


def dmrg_64():
    n = 64
    rng = np.random.default_rng(0)
    network = q.TransverseFieldIsing(q.chain(n), [], [n - 1], method="dmrg")
    w = {"J": rng.uniform(0.5, 1.0, n - 1), "h": np.zeros(n), "Gamma": rng.uniform(1.5, 2.0, n)}
    start = time.perf_counter()
    state = network.solve(w, np.zeros(0))
    elapsed = time.perf_counter() - start
    bidiagonal = np.diag(w["Gamma"]) + np.diag(w["J"], 1)
    exact = -np.linalg.svd(bidiagonal, compute_uv=False).sum()
    error = abs(state.energy - exact)
    report(
        "quantum",
        "64-qubit paramagnetic chain ground state (DMRG)",
        elapsed,
        "the target",
        60.0,
        60.0 / elapsed,
        "< 60 s, energy error < 1e-8",
        elapsed < 60.0 and error < 1e-8,
        f"error {error:.1e} against the free-fermion energy; max bond {state.mps.max_bond()}",
    )


def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    gradient_16()
    dmrg_64()


if __name__ == "__main__":
    main()
