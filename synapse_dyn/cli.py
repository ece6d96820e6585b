"""The ``synapse-dyn`` command (also ``python -m synapse_dyn``).

  synapse-dyn run [FILE.toml] [--out DIR] [--quick]   run an experiment (the embedded default
                                              without FILE; --quick: a small version)
  synapse-dyn figure NAME [--out DIR] [--quick]   reproduce a paper figure (NAME.nc, .png, .pdf)
  synapse-dyn keys [KIND]                     list the documented keys of an experiment kind
  synapse-dyn sweep FILE.toml [--out S.zarr] [--resume] [--scheduler ADDR | --cluster local|slurm]
                                              run the experiment file's [sweep] into a zarr store

Errors are reported as one line on stderr with a non-zero exit status. Compiled programs are
kept in JAX's persistent compilation cache (``SYNAPSE_DYN_JAX_CACHE``: the folder; empty: off;
default: the user cache folder), so a second run of a figure or an experiment skips their
compilation (JAX stores no program with a host callback; ours have none but SparseDirect's).
"""

import argparse
import contextlib
import os
import pathlib
import shutil
import sys

# XLA:CPU logs two ERROR lines (3 kB each) for every program it loads from the persistent
# compilation cache on CPUs whose LLVM tuning flags it takes for missing features
# (+prefer-no-gather on AMD Zen 4; openxla/xla#44565, jax-ml/jax#38445); the programs load and
# run. A warm run printed hundreds of them. The command is the program, so it keeps XLA's C++
# logs to fatal errors, unless TF_CPP_MIN_LOG_LEVEL is set (read once, before JAX loads).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from synapse_dyn.io import save_figure, write_dataset, write_text  # noqa: E402


def _output_folder(out) -> pathlib.Path:
    """``out``, made with its parents and checked writable, before any work starts."""
    out = pathlib.Path(out)
    for parent in [out, *out.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(
                    f"output folder {str(out)!r} cannot be made: {str(parent)!r} is a file; "
                    "choose another --out."
                )
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"cannot make output folder {str(out)!r}: {error.strerror}; choose another --out."
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {str(out)!r} is not writable; choose another --out.")
    return out


@contextlib.contextmanager
def _lock(folder: pathlib.Path, name: str):
    """Hold the lock of output ``name`` in ``folder`` for the block, so that two processes
    never write one output at once; the system releases it when the process ends, even
    when killed."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        yield
        return
    with open(folder / f".{name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(
                f"another synapse-dyn process is writing {str(folder / name)!r}; wait for it to "
                "finish, or choose another name or --out."
            ) from None
        yield


def _read(name: str, what: str) -> str:
    path = pathlib.Path(name)
    if not path.is_file():
        raise ValueError(f"{what} file {str(path)!r} does not exist.")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {what} file {str(path)!r}: {error}.") from None


def _run(args) -> None:
    from synapse_dyn import experiments

    if args.file is None:
        config = experiments.parse(experiments.DEFAULT, "the default experiment")
    else:
        stem = pathlib.Path(args.file).stem
        config = experiments.parse(_read(args.file, "experiment"), args.file, default_name=stem)
    every = args.checkpoint_every
    if every is not None:
        if every < 1:
            raise ValueError(f"--checkpoint-every must be >= 1 (epochs), got {every}.")
        if not isinstance(config, experiments.TrainExperiment):
            raise ValueError(
                "--checkpoint-every applies to training runs (kind = 'train'); a synapse "
                "experiment is computed in one pass (sweeps resume chunk by chunk)."
            )
    if args.quick:
        config = config.quick()
    out = _output_folder(args.out)
    folder = out / config.name
    with _lock(out, config.name):
        checkpoint, stored, data = (
            folder / n for n in ("checkpoint.npz", "experiment.toml", "dataset.nc")
        )
        fresh = not folder.exists()
        if not fresh and args.resume:
            if stored.exists() and experiments.parse(stored.read_text(), str(stored)) != config:
                raise ValueError(
                    f"{str(folder)!r} holds a run of another configuration ({stored}); "
                    "resume it with that file, or choose another name or --out."
                )
            if data.exists() and not checkpoint.exists():
                print(f"{str(folder)!r} is complete: nothing to resume.")
                return
        elif not fresh and not args.overwrite:
            raise ValueError(
                f"output folder {str(folder)!r} already exists; pass --overwrite to replace its "
                "results, --resume to continue an interrupted run, or set another name."
            )
        elif not fresh:
            checkpoint.unlink(missing_ok=True)  # --overwrite starts anew
        print(f"running {type(config).__name__} {config.name!r} -> {folder}/")
        folder.mkdir(exist_ok=True)
        write_text(stored, experiments.to_toml(config))
        resumable = every is not None or (args.resume and checkpoint.exists())
        options = {}
        if resumable:
            options = {"checkpoint": checkpoint, "checkpoint_every": every or 1, "resume": True}
        try:
            ds, figure, summary = config.run(progress=not args.quiet, **options)
        except FloatingPointError as error:  # training diverged: keep the curves so far
            kept = getattr(error, "dataset", None)
            if kept is None:
                raise
            partial = write_dataset(kept, folder / "partial.nc")
            raise RuntimeError(
                f"{error}; the learning curves up to then are in {partial}"
            ) from None
        except BaseException:
            if fresh and not checkpoint.exists():  # nothing worth keeping: leave no output
                shutil.rmtree(folder, ignore_errors=True)
            raise
        data = write_dataset(ds, data)
        pictures = save_figure(figure, folder / "figure")
        write_text(folder / "summary.txt", "\n".join(summary) + "\n")
        checkpoint.unlink(missing_ok=True)
    for line in summary:
        print("  " + line)
    print(f"wrote {data} and {', '.join(str(p) for p in pictures)}")


def _cluster(args):
    """The checked cluster arguments: a function that gives the Dask client (or None)."""
    from synapse_dyn.analysis import sweeps

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}.")
    if args.scheduler is not None and args.cluster is not None:
        raise ValueError("give either --scheduler or --cluster, not both.")
    options = sweeps.cluster_options(args.cluster_option)
    return lambda: sweeps.dask_client(
        args.scheduler, args.cluster, args.workers, options, tls=args.tls
    )


def _figure(args) -> None:
    import inspect

    from synapse_dyn.analysis import figures

    module = figures.load(args.name)
    client = _cluster(args)
    out = _output_folder(args.out)
    distributed = args.scheduler is not None or args.cluster is not None
    if distributed and "client" not in inspect.signature(module.compute).parameters:
        raise ValueError(f"figure {args.name} does not run on Dask; drop --scheduler/--cluster.")
    extra = {}
    if args.mnist is not None:
        if "mnist_path" not in inspect.signature(module.compute).parameters:
            raise ValueError(f"figure {args.name} does not train on MNIST; drop --mnist.")
        extra["mnist_path"] = args.mnist
    with _lock(out, args.name):
        existing = [out / f"{args.name}{suffix}" for suffix in (".nc", ".png", ".pdf")]
        if any(path.exists() for path in existing) and not args.overwrite:
            raise ValueError(
                f"{str(existing[0])!r} already exists; pass --overwrite to replace it, or "
                "choose another --out."
            )
        with client() as dask:
            if distributed:
                extra["client"] = dask
            ds = module.compute(quick=args.quick, progress=not args.quiet, **extra)
        data = write_dataset(ds, out / f"{args.name}.nc")
        pictures = save_figure(module.plot(ds), out / args.name)
        if hasattr(module, "markdown"):  # figures that are tables also write one
            pictures.append(write_text(out / f"{args.name}.md", module.markdown(ds)))
    print(f"wrote {data} and {', '.join(str(p) for p in pictures)}")


def _keys(args) -> None:
    from synapse_dyn import experiments

    kinds = [args.kind] if args.kind else sorted(experiments.KINDS)
    for kind in kinds:
        if kind not in experiments.KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose one of {sorted(experiments.KINDS)}.")
        print(experiments.describe_kind(kind))


def _sweep(args) -> None:
    from synapse_dyn import experiments
    from synapse_dyn.analysis import sweeps

    stem = pathlib.Path(args.file).stem
    text = _read(args.file, "sweep")
    experiment, sweep, chunk = experiments.parse_sweep(text, args.file, default_name=stem)
    if args.chunk is not None:
        if args.chunk < 1:
            raise ValueError(f"--chunk must be >= 1 (points per chunk), got {args.chunk}.")
        chunk = args.chunk
    out = pathlib.Path(args.out or f"sweeps/{experiment.config_.name}.zarr")
    if out.suffix not in (".zarr", ".nc"):
        raise ValueError(f"--out must end in .zarr (a resumable store) or .nc, got {str(out)!r}.")
    if args.resume and out.suffix != ".zarr":
        raise ValueError("--resume needs a .zarr store for --out.")
    store = out if out.suffix == ".zarr" else None
    cluster = _cluster(args)
    _output_folder(out.parent)
    with _lock(out.parent, out.name), cluster() as client:
        if out.exists() and not args.resume:
            if not args.overwrite:
                raise ValueError(
                    f"{str(out)!r} already exists; pass --resume to complete it, --overwrite to "
                    "replace it, or choose another --out."
                )
            if store is not None:  # a new store replaces the old one (an .nc is replaced whole)
                shutil.rmtree(out) if out.is_dir() else out.unlink()
        already = 0
        if store is not None and out.exists():
            try:
                already = int((sweeps.chunk_runs(store) > 0).sum())
            except ValueError:  # a half store of an older version: the sweep starts it again
                pass
        where = "in this process" if client is None else f"on Dask ({client.scheduler.address})"
        shape = " x ".join(map(str, sweep.shape))
        print(f"sweeping {experiment.config_.name!r}: {shape} points {where} -> {out}")
        if store is not None:
            print(f"  interrupted? finished chunks stay in {out}: rerun with --resume")
        ds = sweeps.run(
            experiment,
            sweep,
            chunk=chunk,
            store=store,
            resume=args.resume,
            client=client,
            progress=not args.quiet,
            title=f"sweep of {experiment.config_.name}",
        )
        if store is None:
            write_dataset(ds, out)
    if store is not None:
        total = sweeps.chunk_runs(store).size
        print(f"  {total - already} of {total} chunks computed by this run, {already} were stored")
    print(f"wrote {out}: {dict(ds.sizes)}")


def _add_cluster_options(command) -> None:
    command.add_argument("--scheduler", metavar="ADDRESS", help="use the Dask scheduler at ADDRESS")
    command.add_argument(
        "--cluster", choices=("local", "slurm"), help="start a Dask cluster (processes or SLURM)"
    )
    command.add_argument("--workers", type=int, help="workers of a started cluster (local: cores)")
    command.add_argument(
        "--tls",
        action="store_true",
        help="encrypt and authenticate the Dask connections (docs/sweeps.md)",
    )
    command.add_argument(
        "--cluster-option",
        action="append",
        metavar="KEY=VALUE",
        help="option of the started cluster, repeatable "
        "(slurm: cores=4, memory=16GB, queue=..., account=..., walltime=...)",
    )


DESCRIPTION = (
    "Physical learning with non-equilibrium synaptic memory: run experiments, reproduce the "
    "paper's figures, sweep parameters."
)


def _figure_names() -> list[str]:
    """The figures, listed without importing them (``synapse_dyn.analysis.figures.names``)."""
    import importlib.util
    import pkgutil

    spec = importlib.util.find_spec("synapse_dyn.analysis")
    locations = [] if spec is None else spec.submodule_search_locations or []
    folders = [str(pathlib.Path(p) / "figures") for p in locations]
    return sorted(m.name for m in pkgutil.iter_modules(folders) if not m.name.startswith("_"))


def parser() -> argparse.ArgumentParser:
    from synapse_dyn import __version__, experiments

    main = argparse.ArgumentParser(prog="synapse-dyn", description=DESCRIPTION)
    main.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = main.add_subparsers(dest="command", required=True)
    kinds = ", ".join(sorted(experiments.KINDS))
    run = commands.add_parser(
        "run",
        help="run an experiment file (default: embedded TCL synapse)",
        description=f"Run one experiment (kind: {kinds}); a file with a [sweep] table runs "
        "with 'synapse-dyn sweep'.",
    )
    run.add_argument("file", nargs="?", help="experiment TOML file")
    run.add_argument("--out", default="runs", help="output folder (default: runs)")
    run.add_argument("--quick", action="store_true", help="small, fast version of the experiment")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--overwrite", action="store_true", help="replace the results of an existing run"
    )
    run.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="save a checkpoint every N epochs (training runs); --resume continues from it",
    )
    run.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its checkpoint"
    )
    run.set_defaults(action=_run)
    names = _figure_names()
    figure = commands.add_parser(
        "figure",
        help="reproduce a paper figure",
        description="Reproduce a paper figure: NAME.nc, NAME.png and NAME.pdf.",
    )
    figure.add_argument("name", help=f"figure name: {', '.join(names)}")
    figure.add_argument("--out", default="figures", help="output folder (default: figures)")
    figure.add_argument("--quick", action="store_true", help="small, fast version")
    figure.add_argument("--quiet", action="store_true", help="no progress bar")
    figure.add_argument(
        "--mnist",
        metavar="PATH",
        help="train on a local mnist.npz in the papers' setting (fig3, drn_table)",
    )
    figure.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_cluster_options(figure)
    figure.set_defaults(action=_figure)
    keys = commands.add_parser(
        "keys",
        help="document the keys of experiment files",
        description=f"Document the keys of an experiment kind ({kinds}; all without KIND).",
    )
    keys.add_argument("kind", nargs="?", help=f"experiment kind: {kinds}")
    keys.set_defaults(action=_keys)
    sweep = commands.add_parser("sweep", help="run an experiment file's [sweep] into a zarr store")
    sweep.add_argument("file", help="experiment TOML file with a [sweep] table")
    sweep.add_argument("--out", help="zarr store (resumable) or .nc (default: sweeps/NAME.zarr)")
    sweep.add_argument(
        "--resume", action="store_true", help="complete a store: compute only its missing chunks"
    )
    sweep.add_argument("--chunk", type=int, help="points per chunk (overrides the file)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    _add_cluster_options(sweep)
    sweep.set_defaults(action=_sweep)
    return main


CACHE_VARIABLE = "SYNAPSE_DYN_JAX_CACHE"
CACHE_BYTES = 2 * 2**30


def compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache, so a second run of a figure starts warm:
    the folder ``$SYNAPSE_DYN_JAX_CACHE``, or the user cache folder
    (``platformdirs.user_cache_dir("synapse-dyn")``/jax) when it is unset; an empty value
    turns the cache off. Every program is stored, the small ones too (a warm quick
    resistor_tcl run still compiled 141 programs under 0.5 s, 11 s in all; storing them
    all, it compiled none) and the folder is kept under 2 GiB (least recently used programs
    go first), unless JAX's own variables set these; it is locked while a process reads or
    writes it, so concurrent runs (sweep workers) share it safely. Returns the folder."""
    import os

    import jax
    import platformdirs

    folder = os.environ.get(CACHE_VARIABLE)
    if folder is None:
        folder = os.path.join(platformdirs.user_cache_dir("synapse-dyn"), "jax")
    if not folder:
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    settings = {  # JAX's own environment variables (JAX_...) win
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_compilation_cache_max_size": CACHE_BYTES,  # > 0: evicts and locks
    }
    for name, value in settings.items():
        if name.upper() not in os.environ:
            jax.config.update(name, value)
    return folder


def collect_garbage_rarely() -> None:
    """Run Python's cyclic garbage collector every 100,000 net allocations instead of 700, and
    exempt the objects alive at the first call (the imported modules) from later collections
    (once: a later call, e.g. ``main`` run in a test process, would exempt live objects of the
    program, so cycles among them were never collected). Tracing JAX programs makes many
    short-lived objects, and at the default threshold the collector ran through them often
    (perf: 6 % of a TCL figure's run in gc_collect_main). Tests in one
    process, before -> after: test_tcl_network.py 134.7 -> 121.1 s; test_agnostic.py, two
    interleaved pairs, 77.1 -> 61.1 s and 62.6 -> 55.9 s."""
    import gc

    gc.set_threshold(100_000, 50, 100)
    if gc.get_freeze_count() == 0:
        gc.freeze()


def main(argv=None) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)  # the command is the program: it sets precision
    compilation_cache()
    collect_garbage_rarely()
    args = parser().parse_args(argv)
    try:
        args.action(args)
    except KeyboardInterrupt:
        print("synapse-dyn: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError, ArithmeticError, MemoryError) as error:
        # user errors and numerical failures: one line, no traceback
        print(f"synapse-dyn: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except Exception as error:  # a bug: still one line, with how to see the traceback
        if os.environ.get("SYNAPSE_DYN_TRACEBACK"):
            raise
        print(
            f"synapse-dyn: internal error: {type(error).__name__}: {_one_line(error)} "
            "(set SYNAPSE_DYN_TRACEBACK=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
    return 0


def _one_line(error: BaseException) -> str:
    """The first line of an error's message that says something (JAX and equinox errors
    put stack notes around it)."""
    if isinstance(error, MemoryError):
        return "out of memory; lower the sizes (chunk, grid, network) and run again."
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Above is the stack", "---"))]
    return lines[0] if lines else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
