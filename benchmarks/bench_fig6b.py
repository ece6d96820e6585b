"""Fig. 6B at full size: 5,000 random ESA-ladder kernels, each with its 500-amplitude response
curve, target under 60 s on a 2-core CPU. Times ``analysis.figures.fig6b.compute`` (chunks of
kernels vmapped, one compilation) against a per-kernel loop baseline: the same per-kernel
computation (exact master-equation kernel, exact cycle update, dissipation) jitted once and
called kernel by kernel from Python, timed on a subset and extrapolated.

Usage: python benchmarks/bench_fig6b.py [--quick]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _report import report

from synapse_dyn.analysis.figures import fig6b

jax.config.update("jax_enable_x64", True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="500 kernels, 50 in the baseline")
    options = parser.parse_args()
    n_batches, n_baseline = (10, 50) if options.quick else (100, 200)

    start = time.perf_counter()
    ds = fig6b.compute(n_batches=n_batches, progress=True)
    vectorised = time.perf_counter() - start
    n = ds.sizes["kernel"]

    ladders = fig6b.random_ladders(n_batches, seed=6)
    sweep = jnp.asarray(fig6b.amplitudes())
    single = jax.jit(lambda g, rf, s: fig6b._chunk(g[None], rf[None], s[None], sweep, 2**13))
    args = [jnp.asarray(ladders[key]) for key in ("gamma", "rate_factor", "step")]
    jax.block_until_ready(single(*(a[0] for a in args)))  # compile once
    start = time.perf_counter()
    for k in range(n_baseline):
        _, _, updates, _ = single(*(a[k] for a in args))  # updates: (1, exact | rectangle, A)
        np.testing.assert_allclose(updates[0, 0], ds.dw.values[k], rtol=1e-9, atol=1e-12)
    loop = (time.perf_counter() - start) / n_baseline * n

    print(
        f"Fig. 6B: {n} kernels x {sweep.size} amplitudes, n_grid 2^13, on {jax.device_count()} "
        f"{jax.default_backend()} device(s)"
    )
    print(
        f"  vectorised compute (chunks of 250, incl. compile): {vectorised:7.2f} s  (target < 60 s)"
    )
    print(f"  per-kernel loop baseline (extrapolated from {n_baseline}): {loop:7.2f} s")
    print(f"  speed-up ratio loop / vectorised: {loop / vectorised:.2f}")
    report(
        "fig6b",
        f"Fig. 6B, {n} kernels x {sweep.size} amplitudes, incl. compile",
        vectorised,
        f"per-kernel loop (extrapolated from {n_baseline})",
        loop,
        loop / vectorised,
        "ours < 60 s",
        vectorised < 60,
    )
    learns = np.isfinite(ds.offset.values)
    print(
        f"  kernels that learn: {learns.sum()} of {n}; Spearman(sigma, |offset|) = "
        f"{fig6b.trend(ds).statistic:.3f}"
    )


if __name__ == "__main__":
    main()
