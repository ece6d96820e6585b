"""Every exact quantity of ``synapse-dyn figure thermo_bounds`` for the 5,000-kernel Fig. 6B
family (Sartori information bounds; mean, variance, entropy production and period derivative
of the weight current; both uncertainty ratios), target under 60 s on this CPU, against
Gillespie estimation of the same weight-current mean and variance to the same standard error.

Baseline: Gillespie trajectories (``thermodynamics.gillespie_current``, NumPy, vectorised over
trajectories) cost a fixed time per jump and trajectory, measured here on a pilot run; a
kernel needs N = max(Var / (eps <J>)^2, (kurtosis - 1) / eps^2) trajectories for relative
standard error eps on both mean and variance, each making A jumps per period (A the exact
dynamical activity, from the occupation integrals). The estimate is sum over kernels of
N A (time per jump); the ratio printed is that estimate over the exact time (> 1: exact is
faster). The Gillespie estimate covers only the weight current; the information bounds have
no sampling counterpart at that cost (they need the joint distributions).

CPU time is noted beside wall time: on a shared machine (the row's load) the wall time of the
exact computation exceeds its CPU time by the contention.

Usage: python benchmarks/bench_thermo_bounds.py [--quick] [--error 0.01]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _report import report

from synapse_dyn.analysis import thermodynamics as th
from synapse_dyn.analysis.figures import fig6b, thermo_bounds
from synapse_dyn.analysis.thermodynamics._common import occupation_integral
from synapse_dyn.synapses import MarkovLadder

jax.config.update("jax_enable_x64", True)


@jax.jit
def activity(matrices, durations, channels, start):
    """Mean number of jumps per period (weight steps included) from the periodic state."""

    def piece(p, args):
        matrix, duration = args
        end, integral = occupation_integral(matrix, p, duration)
        escape = -jnp.diag(matrix) + channels.sum(0)
        return end, escape @ integral

    return jax.lax.scan(piece, start, (matrices, durations))[1].sum()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 kernels")
    parser.add_argument("--error", type=float, default=0.01, help="relative standard error")
    options = parser.parse_args()
    n_batches = 10 if options.quick else 100
    family = fig6b.random_ladders(n_batches, seed=6)

    start = time.perf_counter()
    ds = thermo_bounds.family_bounds(**family)
    first = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    ds = thermo_bounds.family_bounds(**family)
    exact, cpu = time.perf_counter() - start, time.process_time() - cpu
    n = ds.sizes["case"]
    below = {
        "Sartori entropy": int((ds.entropy_production < ds.information_erased - 1e-9).sum()),
        "Sartori energy": int((ds.heat < ds.information_written - 1e-9).sum()),
        "Koyuk-Seifert": int((ds.periodic_ratio < 1 - 1e-9).sum()),
    }

    # exact dynamical activity of every kernel's weight walker + ladder
    values, durations = th.piecewise_drive(thermo_bounds.DRIVE, thermo_bounds.N_STEPS)
    gamma, rate_factor, step = (family[k] for k in ("gamma", "rate_factor", "step"))
    matrices = np.asarray(
        thermo_bounds.ladder_matrices(gamma, rate_factor, step[:, None] * values[None, :])
    )
    channels = np.asarray(
        jax.vmap(lambda g, r: th.weight_channels(MarkovLadder(g, r)))(
            jnp.asarray(gamma), jnp.asarray(rate_factor)
        )
    )
    starts = np.stack([th.periodic_state(m, durations) for m in matrices[:: max(n // 200, 1)]])
    jumps = np.asarray(
        jax.vmap(activity, (0, None, 0, 0))(
            jnp.asarray(matrices[:: max(n // 200, 1)]),
            jnp.asarray(durations),
            jnp.asarray(channels[:: max(n // 200, 1)]),
            jnp.asarray(starts),
        )
    )

    # pilot Gillespie run on the least active kernel: time per jump and trajectory
    pilot = int(np.argmin(jumps)) * max(n // 200, 1)
    n_pilot = 2000
    start = time.perf_counter()
    samples = th.gillespie_current(
        matrices[pilot], durations, channels=channels[pilot], n_trajectories=n_pilot, seed=1
    )
    pilot_time = time.perf_counter() - start
    per_jump = pilot_time / (n_pilot * float(jumps.min()))
    centred = samples - samples.mean()
    kurtosis = np.mean(centred**4) / np.var(samples) ** 2

    mean, variance = ds.weight_mean.values, ds.weight_variance.values
    needed = np.maximum(variance / (options.error * mean) ** 2, (kurtosis - 1) / options.error**2)
    per_kernel = needed[:: max(n // 200, 1)] * jumps * per_jump
    gillespie = float(np.mean(per_kernel)) * n

    violations = sum(below.values())
    report(
        "thermo_bounds",
        f"Fig. 6B family, {n} kernels: every exact quantity",
        exact,
        f"Gillespie mean and variance to {options.error:.0%} rel. s.e. (estimated)",
        gillespie,
        gillespie / exact,
        "no point below its bound" + ("" if options.quick else ", < 60 s"),
        violations == 0 and (options.quick or exact < 60),
        f"{cpu:.1f} s CPU; first call with compilation {first:.1f} s; points below their "
        f"bound {below}",
    )
    report(
        "thermo_bounds",
        f"Gillespie pilot: {n_pilot} trajectories x {jumps.min():.0f} jumps",
        None,
        "Gillespie pilot run",
        pilot_time,
        None,
        "-",
        None,
        f"{per_jump * 1e9:.0f} ns per jump and trajectory; kurtosis {kurtosis:.2f}; jumps per "
        f"period median {np.median(jumps):.3g}, max {jumps.max():.3g}; trajectories for "
        f"{options.error:.0%} rel. error: median {np.median(needed):.3g}",
    )


if __name__ == "__main__":
    main()
