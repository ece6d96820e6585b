"""Self-describing outputs: provenance attributes, netCDF datasets and PNG/PDF figures.

Every dataset the project writes carries units and long names on its variables and these
global attributes: software version, versions of the numerical stack, creation time, the git
commit when run from a checkout, and the full configuration as a JSON string. Attributes are
netCDF-safe (strings and numbers only: no bool, None or dict).
"""

import datetime
import json
import pathlib
import pickle
import subprocess
from importlib.metadata import version

import jax
import numpy as np
import xarray as xr

import synapse_dyn


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=pathlib.Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


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


def provenance(config: dict) -> dict[str, str]:
    """Global attributes recording who made a dataset, when, and from what configuration."""
    versions = {
        f"{name}_version": version(name) for name in ("jax", "diffrax", "equinox", "xarray")
    }
    return {
        "software": "synapse-dyn",
        "synapse_dyn_version": synapse_dyn.__version__,
        **versions,
        "git_commit": _git_commit(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": json.dumps(_jsonable(config), sort_keys=True),
    }


def describe(ds: xr.Dataset, title: str, config: dict) -> xr.Dataset:
    """``ds`` with a title and the provenance attributes; every data variable and coordinate
    must already carry ``units`` and ``long_name`` (raises naming the first that does not)."""
    for name, variable in {**ds.coords, **ds.data_vars}.items():
        missing = [key for key in ("units", "long_name") if key not in variable.attrs]
        if missing:
            raise ValueError(f"dataset variable {name!r} lacks attribute(s) {missing}.")
    return ds.assign_attrs(title=title, **provenance(config))


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
