"""Shared by the benchmarks: the machine they ran on, BLAS threads pinned, and one results
row per measurement, printed and (when ``run_all.py`` sets ``SYNAPSE_DYN_BENCH_RESULTS``)
appended as a JSON line to that file."""

import json
import os
import time

from threadpoolctl import threadpool_info, threadpool_limits

BLAS_THREADS = int(os.environ.get("SYNAPSE_DYN_BENCH_BLAS_THREADS", "1"))


def pin_blas_threads():
    """Limit NumPy/SciPy BLAS (and OpenMP) pools to ``SYNAPSE_DYN_BENCH_BLAS_THREADS``
    (default 1), so NumPy, SciPy and PyTorch baselines run with the same stated threads.
    Returns the limiter (keep a reference)."""
    return threadpool_limits(limits=BLAS_THREADS)


def load() -> float:
    """1-minute load average."""
    return os.getloadavg()[0]


def blas() -> str:
    return ", ".join(
        f"{pool['internal_api']} {pool['num_threads']} thread(s)" for pool in threadpool_info()
    )


def report(
    benchmark: str,
    case: str,
    ours_s,
    baseline: str,
    baseline_s,
    ratio,
    target: str,
    met,
    note: str = "",
):
    """Print one row and append it to the run's results file. ``ratio``: as the benchmark
    defines it (its docstring); ``met``: True/False against ``target``, None if no target."""
    row = dict(
        benchmark=benchmark,
        case=case,
        ours_s=ours_s,
        baseline=baseline,
        baseline_s=baseline_s,
        ratio=ratio,
        target=target,
        met=met,
        note=note,
        load=round(load(), 2),
        time=time.strftime("%Y-%m-%dT%H:%M:%S"),
        run=os.environ.get("SYNAPSE_DYN_BENCH_RUN", benchmark),  # the script that measured it
    )
    status = "" if met is None else (" met" if met else " NOT met")
    print(
        f"[{benchmark}] {case}: ours {_fmt(ours_s)}, {baseline} {_fmt(baseline_s)}, ratio "
        f"{_fmt(ratio, '')}; target {target}{status}; load {row['load']}"
        + (f"; {note}" if note else "")
    )
    path = os.environ.get("SYNAPSE_DYN_BENCH_RESULTS")
    if path:
        with open(path, "a") as file:
            file.write(json.dumps(row) + "\n")


def _fmt(value, unit=" s"):
    if value is None:
        return "-"
    return f"{value:.3g}{unit}"
