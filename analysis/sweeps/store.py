"""The zarr store of a sweep: created with the sweep's layout and a fingerprint, one region
write per finished chunk flagged complete, reopened reshaped to the sweep's dimensions."""

import hashlib
import json
import pathlib

import dask.array
import numpy as np
import xarray as xr
import zarr

from synapse_dyn.io import provenance
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
    for name, values in points.items():
        spec = parameters[name]
        data[name] = ("point", values, {**cf_units(spec.units), "long_name": spec.long_name})
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
            name: (name, values, {**attrs, **cf_units(attrs["units"])})
            for name, (values, attrs) in coords.items()
        },
        attrs={
            **provenance(sweep_config(experiment, sweep, chunk)),
            "sweep_layout": json.dumps(layout),
            "sweep_fingerprint": fingerprint,
            "sweep_runs": 0,
        },
    )
    ds.to_zarr(store, mode="w", encoding=encoding, compute=False, consolidated=False)


def _assemble(flat: xr.Dataset) -> xr.Dataset:
    """The flat store's results with the sweep's dims in place of ``point``."""
    layout = json.loads(flat.attrs["sweep_layout"])
    flat = flat.drop_vars("chunk_run").drop_attrs(deep=False)
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
    flat = _open_flat(store)
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
    return zarr.open_group(store, mode="r")["chunk_run"][:]
