"""Quantum EP speed and accuracy at sizes beyond the tests, timed in the same run.

1. QEP gradient, 16 qubits, exact (sparse Lanczos): centered EP (free + two nudged ground
   states + currents) on a random planar graph. Target < 2 s. Baseline: one ground state by
   the reference route, quimb's SparseOperatorBuilder.build_sparse_matrix + scipy eigsh(k=1);
   ratio = 3 x baseline / ours (> 1: our three ground states beat three reference ones).
2. 64-qubit chain by DMRG (quimb DMRG2 on our MPO), paramagnetic (Gamma in [1.5, 2] J, J in
   [0.5, 1] J, h = 0: gapped, away from the critical point Gamma = J). Reference: the exact
   free-fermion energy E_0 = -sum of the singular values of the bidiagonal matrix
   (diagonal Gamma_i, superdiagonal J_i) (Jordan-Wigner). Target: error < 1e-8, time < 60 s.
3. 32-qubit chain by DMRG: EP estimator bias against central finite differences of the DMRG
   loss on four parameters near the output; fitted log-log slopes (expected 1 for
   positive/negative, 2 for centered). In the benchmark, not the tests: ~30 DMRG solves.

Usage: python benchmarks/bench_quantum.py [--quick]   (quick: skips part 3)
"""

import argparse
import os
import time

import numpy as np
import scipy.sparse.linalg as spla

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


def load() -> str:
    return "load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


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
    print(
        f"[1] 16-qubit QEP gradient (centered, exact): {ours:.2f} s (target < 2 s); reference "
        f"ground state (quimb sparse + eigsh): {baseline:.2f} s; ratio 3 x ref / ours = "
        f"{3 * baseline / ours:.2f}; |E_ours - E_ref| = {abs(energy - reference()):.1e}"
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
    print(
        f"[2] 64-qubit chain DMRG: {elapsed:.1f} s (target < 60 s, ratio target/ours "
        f"{60 / elapsed:.1f}); energy {state.energy:.12f}, free-fermion exact {exact:.12f}, "
        f"error {abs(state.energy - exact):.1e} (target 1e-8); max bond {state.mps.max_bond()}"
    )


def slopes_32():
    n = 32
    network = q.TransverseFieldIsing(q.chain(n), [0], [n - 1], method="dmrg")
    rng = np.random.default_rng(1)
    w = {
        "J": rng.uniform(0.5, 1.0, n - 1),
        "h": rng.uniform(-0.2, 0.2, n),
        "Gamma": rng.uniform(1.2, 1.6, n),
    }
    x, y = np.array([[0.3]]), np.array([[1.0]])
    probes = [("J", n - 2), ("h", n - 1), ("Gamma", n - 1), ("Gamma", n - 2)]
    start = time.perf_counter()
    eps, reference = 1e-3, []
    for key, i in probes:
        losses = []
        for step in (eps, -eps):
            v = {k: a.copy() for k, a in w.items()}
            v[key][i] += step
            losses.append(network.loss(network.solve(v, x[0]), y[0]))
        reference.append((losses[0] - losses[1]) / (2 * eps))
    reference = np.array(reference)
    betas = np.array([0.1, 0.05, 0.025])
    line = []
    for variant in ("positive", "negative", "centered"):
        errors = []
        for b in betas:
            g = q.ep_gradient(network, w, x, y, rules.EP(b, variant))
            errors.append(np.linalg.norm([g[k][i] for k, i in probes] - reference))
        slope = np.polyfit(np.log(betas), np.log(errors), 1)[0]
        line.append(f"{variant} {slope:.2f} (errors {', '.join(f'{e:.1e}' for e in errors)})")
    print(
        f"[3] 32-qubit chain DMRG, EP bias slopes vs finite differences on {len(probes)} "
        f"parameters (|g| = {np.linalg.norm(reference):.3f}): "
        + "; ".join(line)
        + f"  [{time.perf_counter() - start:.0f} s]"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(load())
    gradient_16()
    dmrg_64()
    if not args.quick:
        slopes_32()
    print(load())


if __name__ == "__main__":
    main()
