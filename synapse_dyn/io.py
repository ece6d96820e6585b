"""Self-describing outputs: provenance attributes, netCDF datasets and PNG/PDF figures.

Every dataset the project writes carries units and long names on its variables and the global
attributes of ``provenance``: software version, versions of the numerical stack, creation time,
the source revision, the full configuration as a JSON string and a CF ``history``. Attributes
are netCDF-safe (strings and numbers only: no bool, None or dict).
"""

import contextlib
import datetime
import hashlib
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import threading
import typing
import uuid
import warnings
import zipfile
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


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path in the folder of ``path`` to write to; when the block succeeds the
    written file (or folder, e.g. a zarr store) is flushed to disk and renamed onto ``path``,
    so readers and crashes at any moment see the previous complete output or the new one,
    never a partial one. On failure the temporary is removed and ``path`` is untouched."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        yield temporary
        if temporary.is_file():
            with temporary.open("rb+") as handle:
                os.fsync(handle.fileno())
        if temporary.is_dir() and path.exists():  # a folder cannot replace one in one step
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(path, old)
            os.replace(temporary, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, path)
        _fsync_folder(path.parent)
    except BaseException:
        _remove(temporary)
        raise


def _fsync_folder(folder: pathlib.Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms without folder descriptors
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _remove(path: pathlib.Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_text(path, text: str) -> pathlib.Path:
    """Write ``text`` to ``path`` atomically (``atomic_path``)."""
    path = pathlib.Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return path


CONSOLIDATED_NOTICE = "Consolidated metadata is currently not part"
_consolidating_lock = threading.Lock()
_consolidating_threads = 0  # threads inside ``consolidating``
_consolidating_filter: typing.Any = None


@contextlib.contextmanager
def consolidating():
    """Silence zarr's notice that consolidated metadata is not yet in the Zarr 3 specification:
    the project writes it deliberately, so that ``xr.open_zarr`` opens stores in one read and
    without warnings (zarr-python and xarray read it). Safe across threads: the filter stays
    while any thread is inside (``warnings.catch_warnings`` restores the process's filters on
    exit, so a thread leaving un-silenced the threads still writing)."""
    global _consolidating_threads, _consolidating_filter
    with _consolidating_lock:
        if _consolidating_threads == 0:
            warnings.filterwarnings("ignore", message=CONSOLIDATED_NOTICE)
            _consolidating_filter = warnings.filters[0]
        _consolidating_threads += 1
    try:
        yield
    finally:
        with _consolidating_lock:
            _consolidating_threads -= 1
            filters = typing.cast(list, warnings.filters)
            if _consolidating_threads == 0 and _consolidating_filter in filters:
                filters.remove(_consolidating_filter)


def write_dataset(ds: xr.Dataset, path) -> pathlib.Path:
    """Write ``ds`` to netCDF (``.nc``) or zarr (``.zarr``, consolidated metadata) atomically
    (``atomic_path``), creating parent folders."""
    path = pathlib.Path(path)
    with atomic_path(path) as temporary:
        if path.suffix == ".zarr":
            with consolidating():
                ds.to_zarr(temporary, mode="w", consolidated=True)
        else:
            ds.to_netcdf(temporary)
    return path


def open_dataset(path) -> xr.Dataset:
    """The dataset in a netCDF file or zarr store, loaded into memory; a missing, empty or
    truncated file (e.g. left by a run of a version before atomic writes, killed while
    writing) raises a ValueError saying so, instead of the reader's low-level error."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset {str(path)!r} does not exist.")
    try:
        if path.suffix == ".zarr":
            with xr.open_zarr(path, chunks=None) as ds:
                return ds.load()
        with xr.open_dataset(path) as ds:
            return ds.load()
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        size = (
            sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
        )
        raise ValueError(
            f"{str(path)!r} ({size} bytes) is not a complete dataset: it is empty or truncated "
            f"(e.g. a run killed while writing it); delete it and run again ({error})."
        ) from None


def save_figure(figure, stem) -> list[pathlib.Path]:
    """Save a matplotlib figure as ``stem.png`` and ``stem.pdf``, each atomically."""
    stem = pathlib.Path(stem)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format=path.suffix[1:], dpi=150, bbox_inches="tight")
    return paths


# ---------------------------------------------------------------------------------------------
# Checkpoints: arrays and plain metadata only (npz without pickle plus a JSON header)

CHECKPOINT_FORMAT = "synapse-dyn checkpoint"
CHECKPOINT_VERSION = 1


class Checkpoint(typing.NamedTuple):
    """A saved state: ``state`` reached at time ``t``, the ``fingerprint`` of the
    configuration that made it, and ``extra`` (a pytree of arrays, e.g. the records so far)."""

    state: typing.Any
    t: float
    fingerprint: str
    extra: typing.Any


def fingerprint(*trees) -> str:
    """A digest of a configuration: the structure (module types, static fields) and every
    array value of ``trees``, equal in any process for equal configurations."""
    leaves, treedef = jax.tree.flatten(trees)
    structure = re.sub(r" at 0x[0-9a-f]+", "", str(treedef))  # no memory addresses
    digest = hashlib.sha256(structure.encode())
    for leaf in leaves:
        array = np.asarray(leaf)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _encode(tree, arrays: list):
    """The JSON description of a pytree of tuples, lists, dicts and arrays; arrays are
    appended to ``arrays`` and referred to by index."""
    if tree is None:
        return None
    if isinstance(tree, tuple | list):
        return {type(tree).__name__: [_encode(item, arrays) for item in tree]}
    if isinstance(tree, dict):
        if not all(isinstance(key, str) for key in tree):
            raise TypeError("checkpoint dicts need string keys.")
        return {"dict": {key: _encode(value, arrays) for key, value in tree.items()}}
    array = np.asarray(tree)
    if array.dtype == object:
        raise TypeError(
            f"a checkpoint holds arrays, tuples, lists and dicts only, got {type(tree).__name__}."
        )
    arrays.append(array)
    return {"array": len(arrays) - 1}


def _decode(spec, arrays):
    if spec is None:
        return None
    [(kind, value)] = spec.items()
    if kind == "array":
        return arrays[f"a{value}"]
    if kind == "dict":
        return {key: _decode(item, arrays) for key, item in value.items()}
    items = [_decode(item, arrays) for item in value]
    return tuple(items) if kind == "tuple" else items


def save_state(path, state, t: float, fingerprint: str = "", extra=None) -> pathlib.Path:
    """Checkpoint a state (a pytree of tuples, lists, dicts and arrays) reached at time
    ``t``, made by the configuration with digest ``fingerprint``, with ``extra`` arrays, as an
    npz file of arrays and a JSON header (no pickle: loading it cannot run code), atomically."""
    path = pathlib.Path(path)
    arrays: list[np.ndarray] = []
    structure = _encode({"state": jax.tree.map(np.asarray, state), "extra": extra}, arrays)
    header = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "t": float(t),
        "fingerprint": fingerprint,
        "structure": structure,
    }
    with atomic_path(path) as temporary:
        with temporary.open("wb") as handle:
            np.savez(
                handle,
                header=np.array(json.dumps(header)),
                **{f"a{i}": array for i, array in enumerate(arrays)},  # type: ignore[arg-type]
            )
    return path


def read_checkpoint(path, fingerprint: str | None = None) -> Checkpoint:
    """The checkpoint in ``path`` (``save_state``); with ``fingerprint``, a checkpoint made by
    another configuration is refused. Never unpickles: a crafted file cannot run code."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as stored:
            header = json.loads(str(stored["header"]))
            if header.get("format") != CHECKPOINT_FORMAT:
                raise ValueError("no synapse-dyn header")
            arrays = {name: stored[name] for name in stored.files if name != "header"}
            tree = _decode(header["structure"], arrays)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{str(path)!r} is not a readable synapse-dyn checkpoint ({error}); it may be "
            "truncated, from a version before 0.2 (pickle checkpoints are no longer read) or "
            "not a checkpoint: delete it and start the run again."
        ) from None
    if header["version"] > CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has format version {header['version']}, newer than this "
            f"synapse-dyn reads ({CHECKPOINT_VERSION}); upgrade synapse-dyn."
        )
    if fingerprint is not None and header["fingerprint"] != fingerprint:
        raise ValueError(
            f"checkpoint {str(path)!r} was written by a different configuration; resume with "
            "the configuration that wrote it, or delete it (or choose another path) to start anew."
        )
    return Checkpoint(tree["state"], header["t"], header["fingerprint"], tree["extra"])


def load_state(path):
    """(state, t) from a checkpoint written by ``save_state``."""
    checkpoint = read_checkpoint(path)
    return checkpoint.state, checkpoint.t
