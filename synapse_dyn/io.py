"""Self-describing outputs: provenance attributes, netCDF datasets and PNG/PDF figures.

Every dataset the project writes carries units and long names on its variables and the global
attributes of ``provenance``: software version, versions of the numerical stack, creation time,
the source revision, the full configuration as a JSON string and a CF ``history``. Attributes
are netCDF-safe (strings and numbers only: no bool, None or dict).
"""

import datetime
import json
import pathlib
import pickle
import shlex
import subprocess
import sys
from importlib.metadata import version

import jax
import numpy as np
import xarray as xr

import synapse_dyn
from synapse_dyn.units import cf_units

CONVENTIONS = "CF-1.11"  # the climate and forecast metadata conventions the datasets follow


def _git(*args: str) -> str | None:
    """The output of a git command run in the package's folder; None if git fails."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=pathlib.Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def source_revision() -> str:
    """The git commit the running code came from, with ``+dirty`` when it had uncommitted
    changes: read live when the package runs from a git checkout of its own source (an editable
    install), else the one setuptools-scm wrote into the package when it was built (a plain
    ``pip install .`` from a checkout); "unknown" for a build from a tree without git."""
    if _git("ls-files", "--error-unmatch", "__init__.py") is not None:  # our own checkout
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        if commit:
            return commit + ("+dirty" if dirty else "")
    try:
        from synapse_dyn import _version
    except ImportError:
        return "unknown"
    return _version.__commit__.removeprefix("g") + ("+dirty" if _version.__dirty__ else "")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if hasattr(value, "tolist"):
        return np.asarray(value).tolist()
    return value


LIBRARIES = ("jax", "diffrax", "equinox", "optimistix", "numpy", "scipy", "xarray")


def _command() -> str:
    """The command line of this process, as a user would type it."""
    program = pathlib.Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return shlex.join([program, *sys.argv[1:]])


def provenance(config: dict, history: str = "") -> dict[str, str]:
    """Global attributes recording who made a dataset, when, and from what configuration:
    ``synapse_dyn_version``, ``<library>_version`` for the numerical stack, ``created`` (UTC,
    ISO 8601), ``git_commit`` (``source_revision()``), ``config`` (the configuration as JSON:
    integers stay integers and floats floats, so ``json.loads`` gives back the same values and
    types) and ``history`` (CF: one line per program that made or changed the data, this one
    appended to ``history``). Every dataset the project writes carries these."""
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    line = f"{created}: {_command()} (synapse-dyn {synapse_dyn.__version__})"
    return {
        "Conventions": CONVENTIONS,
        "software": "synapse-dyn",
        "synapse_dyn_version": synapse_dyn.__version__,
        **{f"{name}_version": version(name) for name in LIBRARIES},
        "git_commit": source_revision(),
        "created": created,
        "config": json.dumps(_jsonable(config), sort_keys=True),
        "history": f"{history}\n{line}" if history else line,
    }


def describe(ds: xr.Dataset, title: str, config: dict) -> xr.Dataset:
    """``ds`` with a title, the provenance attributes and CF units: every data variable and
    coordinate must already carry ``units`` and ``long_name`` (raises naming the first that does
    not), its ``units`` become a UDUNITS string (``synapse_dyn.units.cf_units``: "1" plus
    ``model_units`` for the project's reference units), and no coordinate may use NaN as a
    label."""
    ds = ds.copy()
    for name, variable in {**ds.coords, **ds.data_vars}.items():
        missing = [key for key in ("units", "long_name") if key not in variable.attrs]
        if missing:
            raise ValueError(f"dataset variable {name!r} lacks attribute(s) {missing}.")
        if name in ds.coords and variable.dtype.kind == "f" and bool(np.isnan(variable).any()):
            raise ValueError(f"coordinate {name!r} uses NaN as a label; give it a number.")
        ds[name].attrs.update(cf_units(variable.attrs["units"]))
    return ds.assign_attrs(title=title, **provenance(config, ds.attrs.get("history", "")))


def write_dataset(ds: xr.Dataset, path) -> pathlib.Path:
    """Write ``ds`` to netCDF (``.nc``) or zarr (``.zarr``), creating parent folders."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".zarr":
        ds.to_zarr(path, mode="w")
    else:
        ds.to_netcdf(path)
    return path


def save_figure(figure, stem) -> list[pathlib.Path]:
    """Save a matplotlib figure as ``stem.png`` and ``stem.pdf``."""
    stem = pathlib.Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        figure.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def save_state(path, state, t: float) -> pathlib.Path:
    """Checkpoint a simulation state (a pytree of arrays) reached at time ``t``."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("wb") as handle:
        pickle.dump({"t": float(t), "state": jax.tree.map(np.asarray, state)}, handle)
    temporary.replace(path)  # atomic: a crash never leaves a half-written checkpoint
    return path


def load_state(path):
    """(state, t) from a checkpoint written by ``save_state``."""
    with pathlib.Path(path).open("rb") as handle:
        saved = pickle.load(handle)
    return saved["state"], saved["t"]
