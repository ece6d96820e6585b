"""SDE throughput on a noisy resistor network: steps per second of ``synapse_dyn.noise.langevin``
(diffrax Heun with the Sekimoto heat accumulated; seeded VirtualBrownianTree or per-step
increments) against an Euler-Maruyama loop written with ``jax.lax.scan`` on the same problem
(jax.random increments, no heat). Ratio < 1: slower than the baseline.

Problem: node potentials v of a random resistor network (Laplacian L, weak grounding eps) with
current sources I, energy E = v.(L + eps) v / 2 - I.v, force F = -dE/dv, mobility 1, kT = 1;
a batch of trajectories (vmapped over seeds). Usage: python benchmarks/bench_sde.py [--quick]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _report import report

from synapse_dyn.noise import Thermal, langevin

jax.config.update("jax_enable_x64", True)


def network(n_nodes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    edges = [(k, k + 1) for k in range(n_nodes - 1)] + [
        tuple(rng.choice(n_nodes, 2, replace=False)) for _ in range(n_nodes)
    ]
    laplacian = np.zeros((n_nodes, n_nodes))
    for (i, j), g in zip(edges, rng.uniform(0.5, 1.5, len(edges)), strict=True):
        laplacian[[i, j], [i, j]] += g
        laplacian[i, j] -= g
        laplacian[j, i] -= g
    stiffness = jnp.asarray(laplacian + 0.1 * np.eye(n_nodes))
    sources = jnp.asarray(rng.normal(size=n_nodes))
    return stiffness, sources


def best_of(function, repeats=3):
    jax.block_until_ready(function())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    n_nodes, n_samples, n_steps, dt = (16, 8, 200, 0.01) if options.quick else (64, 32, 2000, 0.01)
    stiffness, sources = network(n_nodes)
    force = lambda t, v, args: sources - stiffness @ v  # noqa: E731
    noise = Thermal(1.0)
    t1 = n_steps * dt

    def diffrax_run(kind):
        run = lambda seed: (
            langevin(force, jnp.zeros(n_nodes), noise, t1=t1, dt=dt, seed=seed, brownian=kind).ys
        )  # noqa: E731
        return jax.jit(jax.vmap(run))

    def euler_maruyama(seed):
        amplitude = noise.amplitude

        def step(v, key):
            return v + force(0.0, v, None) * dt + amplitude * jnp.sqrt(dt) * jax.random.normal(
                key, v.shape
            ), None

        keys = jax.random.split(jax.random.key(seed), n_steps)
        return jax.lax.scan(step, jnp.zeros(n_nodes), keys)[0]

    scan_run = jax.jit(jax.vmap(euler_maruyama))
    seeds = jnp.arange(n_samples)
    t_scan = best_of(lambda: scan_run(seeds))
    steps = n_samples * n_steps
    print(
        f"noisy resistor network: {n_nodes} nodes, {n_samples} trajectories x {n_steps} steps, "
        f"dt = {dt}"
    )
    print(
        f"  lax.scan Euler-Maruyama baseline: {steps / t_scan:10.0f} trajectory-steps/s "
        f"({t_scan:.3f} s)"
    )
    for kind in ("virtual", "increments"):
        run = diffrax_run(kind)
        elapsed = best_of(lambda run=run: run(seeds))
        print(
            f"  langevin, Heun + Sekimoto heat, {kind:>10} Brownian path: {steps / elapsed:10.0f} "
            f"trajectory-steps/s ({elapsed:.3f} s), ratio to the scan baseline "
            f"{t_scan / elapsed:.3f}"
        )
        report(
            "sde",
            f"langevin ({kind} Brownian path), {n_samples} x {n_steps} steps, {n_nodes} nodes",
            elapsed,
            "lax.scan Euler-Maruyama",
            t_scan,
            t_scan / elapsed,
            "-",
            None,
        )


if __name__ == "__main__":
    main()
