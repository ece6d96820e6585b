"""Run every benchmark and write one results table: ``benchmarks/results/DEVICE.json`` (the
rows and the machine: processor, cores, load before and after, library versions, BLAS and
XLA thread settings, date) and ``docs/benchmarks.md``, generated from every results file
present (the CPU table, and the GPU table once ``--device gpu`` has run on an accelerator).

    python benchmarks/run_all.py [--quick] [--device cpu|gpu] [--only tcl_sparse fig4c ...]

With ``--only``, the other benchmarks' rows of the earlier run are kept. Each benchmark runs
in its own process (cold: its compilation counts where it says so),
with NumPy/SciPy BLAS pinned to ``--blas-threads`` (default 1) through threadpoolctl, so
the NumPy/SciPy baselines and ours run with stated threads; XLA uses every core.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
DOCS = HERE.parent / "docs" / "benchmarks.md"

# name: (script, arguments of the full run, arguments of the quick run)
BENCHMARKS = {
    "tcl_sparse": ("bench_tcl_sparse.py", [], ["--quick"]),
    "tcl": ("bench_tcl.py", ["--cycles", "100"], ["--cycles", "25"]),
    "ep_hopfield": ("bench_ep_hopfield.py", ["--samples", "2000"], ["--samples", "400"]),
    "networks": ("bench_networks.py", [], ["--quick"]),
    "fig4c": ("bench_fig4c.py", [], ["--sample", "2"]),
    "fig6b": ("bench_fig6b.py", [], ["--quick"]),
    "sde": ("bench_sde.py", [], ["--quick"]),
    "sweeps": ("bench_sweeps.py", [], ["--protocols", "200"]),
    "quantum": ("bench_quantum.py", [], []),
    "aeqprop": ("bench_aeqprop.py", [], ["--repeats", "1"]),
    "circuits": ("bench_circuits.py", [], ["--quick"]),
    "thermo_bounds": ("bench_thermo_bounds.py", [], ["--quick"]),
}
LIBRARIES = ("jax", "jaxlib", "numpy", "scipy", "equinox", "diffrax", "lineax", "torch")


def processor() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def accelerator(env) -> str:
    """The JAX device the benchmarks see, from a child process with their settings."""
    probe = "import jax; d = jax.devices()[0]; print(f'{d.platform}: {d.device_kind}')"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or f"unavailable ({result.stderr.strip().splitlines()[-1:]})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, minutes not hours")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="a subset")
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    env = dict(
        os.environ,
        SYNAPSE_DYN_BENCH_BLAS_THREADS=str(args.blas_threads),
        JAX_PLATFORMS="cuda" if args.device == "gpu" else "cpu",
        PYTHONUNBUFFERED="1",
    )
    names = args.only or list(BENCHMARKS)
    machine = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "processor": processor(),
        "cores": os.cpu_count(),
        "device": accelerator(env),
        "python": platform.python_version(),
        "libraries": versions(),
        "threads": f"BLAS {args.blas_threads} (threadpoolctl); XLA: all cores",
        "mode": "quick" if args.quick else "full",
        "load_before": round(os.getloadavg()[0], 2),
    }
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as folder:
        results = pathlib.Path(folder) / "rows.jsonl"
        env["SYNAPSE_DYN_BENCH_RESULTS"] = str(results)
        for name in names:
            script, full, quick = BENCHMARKS[name]
            command = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
            print(f"== {name}: {' '.join(command[1:])}", flush=True)
            start = time.perf_counter()
            env["SYNAPSE_DYN_BENCH_RUN"] = name  # a script may report rows of another benchmark
            done = subprocess.run(command, env=env, cwd=HERE, check=False)
            print(f"== {name}: exit {done.returncode} after {time.perf_counter() - start:.0f} s")
            if done.returncode:
                failures.append(f"{name} (exit {done.returncode})")
        if results.exists():
            rows = [json.loads(line) for line in results.read_text().splitlines()]
    machine["load_after"] = round(os.getloadavg()[0], 2)
    machine["failed"] = failures
    out = HERE / "results" / f"{args.device}.json"
    out.parent.mkdir(exist_ok=True)
    if args.only and out.exists():  # keep the other benchmarks' rows from the earlier run
        earlier = json.loads(out.read_text())
        kept = [row for row in earlier["rows"] if row["run"] not in names]
        rows = kept + rows
        times = sorted(row["time"] for row in kept)
        machine["earlier"] = (
            f"rows of {sorted({r['run'] for r in kept})} from earlier runs, measured "
            f"{times[0]} to {times[-1]} (local time)"
        )
    out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")
    DOCS.write_text(markdown())
    print(f"wrote {out} and {DOCS}")
    return 1 if failures else 0


def _cell(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value).replace("|", "/")


def markdown() -> str:
    """docs/benchmarks.md from every results file in benchmarks/results/."""
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/run_all.py` (do not edit by hand; rerun it). Each "
        "row times our code against a baseline in the same process and run; the ratio is as "
        "the benchmark's docstring defines it (mostly baseline / ours, > 1: we are faster; "
        "for the TCL rows, ours / baseline against a target). Load is the 1-minute load "
        "average when the row was measured: on a shared machine timings scale with it.",
        "",
    ]
    for path in sorted((HERE / "results").glob("*.json")):
        data = json.loads(path.read_text())
        machine = data["machine"]
        libraries = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items())
        lines += [
            f"## {path.stem.upper()}",
            "",
            f"{machine['date']}, {machine['mode']} run on {machine['device']}; "
            f"{machine['processor']}, "
            f"{machine['cores']} cores; Python {machine['python']}; {libraries}; threads: "
            f"{machine['threads']}; load {machine['load_before']} before, "
            f"{machine['load_after']} after."
            + (f" Failed: {', '.join(machine['failed'])}." if machine["failed"] else "")
            + (f" Kept {machine['earlier']}." if machine.get("earlier") else ""),
            "",
            "| benchmark | case | ours (s) | baseline | baseline (s) | ratio | target | met "
            "| load | note |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in data["rows"]:
            met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
            cells = [
                row["benchmark"],
                row["case"],
                _cell(row["ours_s"]),
                row["baseline"],
                _cell(row["baseline_s"]),
                _cell(row["ratio"]),
                row["target"],
                met,
                _cell(row["load"]),
                row["note"] or "",
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
