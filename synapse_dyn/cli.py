"""The ``synapse-dyn`` command.

  synapse-dyn run [FILE.toml] [--out DIR]     run an experiment (the embedded default without FILE)
  synapse-dyn figure NAME [--out DIR] [--quick]   reproduce a paper figure (NAME.nc, .png, .pdf)
  synapse-dyn keys [KIND]                     list the documented keys of an experiment kind

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
    folder = pathlib.Path(args.out) / config.name
    print(f"running {type(config).__name__} {config.name!r} -> {folder}/")
    ds, figure, summary = config.run(progress=not args.quiet)
    data = write_dataset(ds, folder / "dataset.nc")
    pictures = save_figure(figure, folder / "figure")
    for line in summary:
        print("  " + line)
    print(f"wrote {data} and {', '.join(str(p) for p in pictures)}")


def _figure(args) -> None:
    from analysis import figures

    module = figures.load(args.name)
    out = pathlib.Path(args.out)
    ds = module.compute(quick=args.quick, progress=not args.quiet)
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


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="synapse-dyn", description=__doc__.split("\n")[0])
    commands = main.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an experiment file (default: embedded TCL synapse)")
    run.add_argument("file", nargs="?", help="experiment TOML file")
    run.add_argument("--out", default="runs", help="output folder (default: runs)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(action=_run)
    figure = commands.add_parser("figure", help="reproduce a paper figure")
    figure.add_argument("name", help="figure name, e.g. fig4c")
    figure.add_argument("--out", default="figures", help="output folder (default: figures)")
    figure.add_argument("--quick", action="store_true", help="small, fast version")
    figure.add_argument("--quiet", action="store_true", help="no progress bar")
    figure.set_defaults(action=_figure)
    keys = commands.add_parser("keys", help="document the keys of experiment files")
    keys.add_argument("kind", nargs="?")
    keys.set_defaults(action=_keys)
    return main


def main(argv=None) -> int:
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
