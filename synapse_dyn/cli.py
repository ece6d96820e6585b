"""The ``synapse-dyn`` command (also ``python -m synapse_dyn``).

  synapse-dyn run [FILE.toml] [--out DIR] [--quick]   run an experiment (the embedded default
                                              without FILE; --quick: a small version)
  synapse-dyn figure NAME [--out DIR] [--quick]   reproduce a paper figure (NAME.nc, .png, .pdf)
  synapse-dyn keys [KIND]                     list the documented keys of an experiment kind
  synapse-dyn sweep FILE.toml [--out S.zarr] [--resume] [--scheduler ADDR | --cluster local|slurm]
                                              run the experiment file's [sweep] into a zarr store

Errors are reported as one line on stderr with a non-zero exit status.
"""

import argparse
import pathlib
import sys

from synapse_dyn.io import save_figure, write_dataset


def _run(args) -> None:
    from synapse_dyn import experiments

    if args.file is None:
        text, source = experiments.DEFAULT, "the default experiment"
    else:
        path = pathlib.Path(args.file)
        if not path.is_file():
            raise ValueError(f"experiment file {str(path)!r} does not exist.")
        text, source = path.read_text(), str(path)
    config = experiments.parse(text, source)
    if args.quick:
        config = config.quick()
    folder = pathlib.Path(args.out) / config.name
    print(f"running {type(config).__name__} {config.name!r} -> {folder}/")
    ds, figure, summary = config.run(progress=not args.quiet)
    data = write_dataset(ds, folder / "dataset.nc")
    pictures = save_figure(figure, folder / "figure")
    for line in summary:
        print("  " + line)
    print(f"wrote {data} and {', '.join(str(p) for p in pictures)}")


def _client(args):
    from synapse_dyn.analysis import sweeps

    options = sweeps.cluster_options(args.cluster_option)
    return sweeps.dask_client(args.scheduler, args.cluster, args.workers, options)


def _figure(args) -> None:
    import inspect

    from synapse_dyn.analysis import figures

    module = figures.load(args.name)
    out = pathlib.Path(args.out)
    distributed = args.scheduler is not None or args.cluster is not None
    if distributed and "client" not in inspect.signature(module.compute).parameters:
        raise ValueError(f"figure {args.name} does not run on Dask; drop --scheduler/--cluster.")
    extra = {}
    if args.mnist is not None:
        if "mnist_path" not in inspect.signature(module.compute).parameters:
            raise ValueError(f"figure {args.name} does not train on MNIST; drop --mnist.")
        extra["mnist_path"] = args.mnist
    with _client(args) as client:
        if distributed:
            extra["client"] = client
        ds = module.compute(quick=args.quick, progress=not args.quiet, **extra)
    data = write_dataset(ds, out / f"{args.name}.nc")
    pictures = save_figure(module.plot(ds), out / args.name)
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

    path = pathlib.Path(args.file)
    if not path.is_file():
        raise ValueError(f"sweep file {str(path)!r} does not exist.")
    experiment, sweep, chunk = experiments.parse_sweep(path.read_text(), str(path))
    out = pathlib.Path(args.out or f"sweeps/{experiment.config_.name}.zarr")
    if out.suffix not in (".zarr", ".nc"):
        raise ValueError(f"--out must end in .zarr (a resumable store) or .nc, got {str(out)!r}.")
    if args.resume and out.suffix != ".zarr":
        raise ValueError("--resume needs a .zarr store for --out.")
    store = out if out.suffix == ".zarr" else None
    if store is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    already = int((sweeps.chunk_runs(store) > 0).sum()) if args.resume and out.exists() else 0
    with _client(args) as client:
        where = "in this process" if client is None else f"on Dask ({client.scheduler.address})"
        shape = " x ".join(map(str, sweep.shape))
        print(f"sweeping {experiment.config_.name!r}: {shape} points {where} -> {out}")
        if store is not None:
            print(f"  interrupted? finished chunks stay in {out}: rerun with --resume")
        ds = sweeps.run(
            experiment,
            sweep,
            chunk=args.chunk or chunk,
            store=store,
            resume=args.resume,
            client=client,
            progress=not args.quiet,
            title=f"sweep of {experiment.config_.name}",
        )
    if store is None:
        write_dataset(ds, out)
    else:
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
        "--mnist", metavar="PATH", help="train on a local mnist.npz (fig3: the paper's setting)"
    )
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
    _add_cluster_options(sweep)
    sweep.set_defaults(action=_sweep)
    return main


def main(argv=None) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)  # the command is the program: it sets precision
    args = parser().parse_args(argv)
    try:
        args.action(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as error:
        print(f"synapse-dyn: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("synapse-dyn: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
