"""The zarr store of a sweep: created whole under a temporary name and renamed into place
(with the sweep's layout, a fingerprint and consolidated metadata), one region write per
finished chunk flagged complete (zarr writes every key atomically), reopened reshaped to the
sweep's dimensions."""

import hashlib
import json
import os
import pathlib
import shutil
import uuid

import dask.array
import numpy as np
import xarray as xr
import zarr

from synapse_dyn.io import consolidating, provenance
from synapse_dyn.units import cf_units

from .layout import Grid


def sweep_config(experiment, sweep, chunk) -> dict:
    """The configuration a sweep's provenance records: the experiment, the sweep, the chunk."""
    return {"experiment": experiment.config(), "sweep": sweep.spec(), "chunk": chunk}


def _fingerprint(experiment, sweep, points, chunk) -> str:
    digest = hashlib.sha256(
        json.dumps([experiment.config(), sweep.dims, chunk], sort_keys=True).encode()
    )
    for name, values in points.items():
        digest.update(name.encode() + values.tobytes())
    return digest.hexdigest()


def _initialise(store, experiment, sweep, points, chunk, fingerprint) -> None:
    """Write the store's provenance (``synapse_dyn.io.provenance``), layout, coordinates and
    parameters; outputs are left unwritten
    (they read as NaN, or 0 for integers) and every chunk is flagged missing."""
    n = len(next(iter(points.values())))
    coords = experiment.coords()
    parameters = experiment.parameters()
    data, encoding = {}, {}
    point_coords = {}
    for name, values in points.items():
        spec = parameters[name]
        point_coords[name] = (
            "point",
            values,
            {**cf_units(spec.units), "long_name": spec.long_name},
        )
    for name, spec in experiment.outputs().items():
        shape = (n, *(len(coords[d][0]) for d in spec.dims))
        floating = np.issubdtype(spec.dtype, np.floating)
        values = dask.array.full(
            shape, np.nan if floating else 0, dtype=spec.dtype, chunks=(chunk, *shape[1:])
        )
        data[name] = (
            ("point", *spec.dims),
            values,
            {**cf_units(spec.units), "long_name": spec.long_name, **spec.attrs},
        )
        encoding[name] = {"chunks": (chunk, *shape[1:]), "_FillValue": np.nan if floating else None}
    n_chunks = -(-n // chunk)
    data["chunk_run"] = (
        "chunk",
        np.zeros(n_chunks, np.int16),
        {"units": "1", "long_name": "run that completed the chunk (0: not yet)"},
    )
    encoding["chunk_run"] = {"chunks": (1,)}
    layout = {
        "kind": "grid" if isinstance(sweep, Grid) else "points",
        "dims": list(sweep.dims),
        "shape": list(sweep.shape),
        "chunk": chunk,
    }
    ds = xr.Dataset(
        data,
        coords={
            **point_coords,  # the parameters of every point: plain xr.open_zarr shows them
            **{
                name: (name, values, {**attrs, **cf_units(attrs["units"])})
                for name, (values, attrs) in coords.items()
            },
        },
        attrs={
            **provenance(sweep_config(experiment, sweep, chunk)),
            "sweep_layout": json.dumps(layout),
            "sweep_fingerprint": fingerprint,
            "sweep_runs": 0,
        },
    )
    with consolidating():
        ds.to_zarr(store, mode="w", encoding=encoding, compute=False, consolidated=True)


def create(store, experiment, sweep, points, chunk, fingerprint) -> None:
    """Make ``store`` (a path or a zarr store) hold this sweep. A path is created whole under
    a temporary name in its folder and renamed into place, so a process killed while creating
    it leaves no half-made store, and of several processes creating it at once one wins and
    the others use its store; an existing store must hold the same sweep (``fingerprint``)."""
    if not isinstance(store, pathlib.Path):
        _initialise(store, experiment, sweep, points, chunk, fingerprint)
        return
    found = _stored_fingerprint(store) if store.exists() else None
    if store.exists() and found is None:  # left by a version without atomic creation
        shutil.rmtree(store)
    if not store.exists():
        temporary = store.with_name(f".{store.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            _initialise(temporary, experiment, sweep, points, chunk, fingerprint)
            os.rename(temporary, store)
        except OSError:
            if not store.exists():  # not another process's store in the way: a real failure
                raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        found = _stored_fingerprint(store)
    if found != fingerprint:
        raise ValueError(
            f"sweep store {str(store)!r} holds a different sweep (other points, chunk size or "
            "experiment settings); choose a new path to start this one."
        )


def _stored_fingerprint(store: pathlib.Path) -> str | None:
    """The fingerprint of the sweep in ``store``; None for a store whose creation was
    interrupted by a version without atomic creation; raises for a folder that is no store."""
    try:
        group = zarr.open_group(store, mode="r")
    except (OSError, ValueError, KeyError, zarr.errors.BaseZarrError) as error:
        if store.is_dir() and not any(store.iterdir()):
            return None
        raise ValueError(
            f"{str(store)!r} is not a sweep store ({error}); choose another path."
        ) from None
    return group.attrs.get("sweep_fingerprint")


def record_run(store) -> int:
    """Count one more run of the sweep in ``store`` (its ``sweep_runs`` attribute, kept in the
    consolidated metadata too); returns this run's number."""
    group = zarr.open_group(store, mode="r+")
    this_run = int(group.attrs["sweep_runs"]) + 1
    group.attrs["sweep_runs"] = this_run
    with consolidating():
        zarr.consolidate_metadata(store)
    return this_run


def _assemble(flat: xr.Dataset) -> xr.Dataset:
    """The flat store's results with the sweep's dims in place of ``point``."""
    layout = json.loads(flat.attrs["sweep_layout"])
    parameters = [name for name in flat.coords if flat[name].dims == ("point",)]
    flat = flat.reset_coords(parameters).drop_vars("chunk_run").drop_attrs(deep=False)
    if layout["kind"] == "points":
        return flat if layout["dims"] == ["point"] else flat.rename_dims(point=layout["dims"][0])
    dims, shape = tuple(layout["dims"]), tuple(layout["shape"])
    axes = {}
    for k, name in enumerate(dims):
        index = tuple(slice(None) if j == k else 0 for j in range(len(dims)))
        axes[name] = (name, flat[name].values.reshape(shape)[index], flat[name].attrs)
    variables = {
        name: (dims + v.dims[1:], v.values.reshape(shape + v.shape[1:]), v.attrs)
        for name, v in flat.data_vars.items()
        if name not in dims
    }
    return xr.Dataset(variables, coords={**axes, **{k: flat[k] for k in flat.coords}})


def _open_flat(store) -> xr.Dataset:
    with xr.open_zarr(store, chunks=None, consolidated=False) as flat:
        return flat.load()


def open_sweep(store, partial: bool = False) -> xr.Dataset:
    """The results in a sweep store as a dataset over the sweep's dims; raises if chunks are
    missing (unless ``partial``, where they read as NaN) naming how many."""
    if isinstance(store, str | pathlib.Path) and not pathlib.Path(store).exists():
        raise FileNotFoundError(f"sweep store {str(store)!r} does not exist.")
    try:
        flat = _open_flat(store)
    except (OSError, KeyError, zarr.errors.BaseZarrError) as error:
        raise ValueError(f"{str(store)!r} is not a readable sweep store ({error}).") from None
    missing = int((flat.chunk_run.values == 0).sum())
    if missing and not partial:
        raise ValueError(
            f"sweep store is incomplete: {missing} of {flat.sizes['chunk']} chunks missing; "
            "run the sweep again with resume=True (--resume) to compute them."
        )
    return _assemble(flat)


def chunk_runs(store) -> np.ndarray:
    """Per chunk of a sweep store, the run (1, 2, ... counting resumes) that completed it; 0
    where it is still missing."""
    try:
        return zarr.open_group(store, mode="r")["chunk_run"][:]
    except (OSError, KeyError, zarr.errors.BaseZarrError) as error:
        raise ValueError(f"{str(store)!r} is not a readable sweep store ({error}).") from None
