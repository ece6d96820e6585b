"""One AEqProp update against one centered EP step on a 784-500-10 layered Hopfield network
(20 free and 4 nudged sweeps per phase, batch 20, MSE; random inputs in [0, 1], one-hot
targets), timed in the same run after compilation. EP(beta_EP = 0.5, centered) and
AgnosticEP(beta = 1, centered) use the same two nudges (+-0.5); epsilon = 1e-3 keeps the
knobs holding the weights (epsilon lambda < 1; lambda ~ |x|^2 ~ 260 here). The AEqProp update
is the free phase, the homeostatic phase and the joint theta-s relaxation (alternations of one
warm-started sweep and the exact theta-block, kept factored as the knob plus a rank-B update,
until the fixed-point step is below the tolerance, then one full solve), so its cost grows
with the number of alternations, printed too.
Ratio = AEqProp time / EP time (target <= 2).

Usage: python benchmarks/bench_aeqprop.py [--repeats 5]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _report import report

from synapse_dyn import rules
from synapse_dyn.networks import HopfieldNetwork

jax.config.update("jax_enable_x64", True)

SIZES, FREE, NUDGED, BATCH = (784, 500, 10), 20, 4, 20


def best(function, repeats):
    jax.block_until_ready(function())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls, the best kept")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(BATCH, SIZES[0])))
    y = jnp.asarray(np.eye(10)[rng.integers(0, 10, BATCH)])
    net = HopfieldNetwork(SIZES, FREE, NUDGED)
    w = net.init(jax.random.key(0))
    ep = rules.EP(0.5, "centered")
    t_ep = best(lambda: rules.batch_estimate(net, w, x, y, ep), args.repeats)
    for tolerance in (1e-11, 1e-6):
        rule = rules.AgnosticEP(1.0, 1e-3, "centered", tolerance=tolerance)
        t = best(lambda rule=rule: rules.batch_estimate(net, w, x, y, rule), args.repeats)
        alternations = int(rule.phases(net, w, x, y).iterations)
        report(
            "aeqprop",
            f"784-500-10, batch 20: AEqProp update, tolerance {tolerance:g}",
            t,
            "centered EP step",
            t_ep,
            t / t_ep,
            "<= 2",
            t / t_ep <= 2,
            f"{alternations} theta-s alternations; best of {args.repeats}",
        )


if __name__ == "__main__":
    main()
