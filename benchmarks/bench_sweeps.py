"""Full Fig. 4C (1,000 protocols x 400 amplitudes, 20 chunks of 50) through the sweep
machinery: in this process (vmap) against a local Dask cluster of worker processes, both
from cold (each process compiles the chunk function once), plus a warm rerun of each. Prints
the overhead of the Dask path (cluster start-up reported separately) and checks that both
paths give the same dataset.

    python benchmarks/bench_sweeps.py [--workers 2] [--protocols 1000]
"""

import argparse
import time

import numpy as np
from _report import report
from distributed import Client, LocalCluster

from synapse_dyn.analysis.figures import fig4c


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes")
    parser.add_argument(
        "--protocols", type=int, default=1000, help="random protocols (the figure: 1000)"
    )
    args = parser.parse_args()
    size = dict(n_protocols=args.protocols, progress=False)

    local, local_cold = timed(fig4c.compute, **size)
    _, local_warm = timed(fig4c.compute, **size)
    start = time.perf_counter()
    with LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(args.workers)
            startup = time.perf_counter() - start
            dask, dask_cold = timed(fig4c.compute, client=client, **size)
            _, dask_warm = timed(fig4c.compute, client=client, **size)
    same = all(
        np.array_equal(local[name].values, dask[name].values)
        for name in [*local.data_vars, *local.coords]
    )

    print(
        f"Fig. 4C through analysis.sweeps: {local.sizes['protocol']} protocols x "
        f"{local.sizes['amplitude']} amplitudes"
    )
    print(f"in process (vmap):        cold {local_cold:6.1f} s   warm {local_warm:6.1f} s")
    print(
        f"local Dask, {args.workers} workers:    cold {dask_cold:6.1f} s   warm {dask_warm:6.1f} s"
        f"   (+ cluster start {startup:.1f} s)"
    )
    print(
        f"overhead of the Dask path: cold {dask_cold / local_cold - 1:+.0%}, "
        f"warm {dask_warm / local_warm - 1:+.0%} "
        f"(target < +20%); with cluster start: {(dask_cold + startup) / local_cold - 1:+.0%}"
    )
    print(f"datasets identical (bitwise): {same}")
    for label, ours, theirs in (("cold", dask_cold, local_cold), ("warm", dask_warm, local_warm)):
        report(
            "sweeps",
            f"Fig. 4C ({local.sizes['protocol']} protocols), Dask {args.workers} workers, {label}",
            ours,
            "in process",
            theirs,
            ours / theirs - 1,
            "overhead < +20%",
            ours / theirs - 1 < 0.2,
            f"cluster start {startup:.1f} s; identical: {same}",
        )


if __name__ == "__main__":
    main()
