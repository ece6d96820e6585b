"""Parameter sweeps: an experiment of named scalar parameters evaluated over a grid (product
of named axes), an explicit list of points or seeded random draws, in one code path whose
executor is either this process or a ``dask.distributed`` client.

Points are validated before any work, then split into chunks of ``chunk`` points; each chunk
is one call of the experiment's compiled, ``jax.vmap``-batched function (the last chunk is
padded, so a sweep compiles once per process). Every finished chunk is written at once to a
zarr store (region writes) and flagged complete, so an interrupted sweep loses only the
chunks in flight and ``resume=True`` computes only the missing ones. The store is laid out
flat (one ``point`` dimension); ``open_sweep`` reshapes it to the sweep's dimensions.

See ``docs/sweeps.md`` for the experiment-file syntax and the cluster options.
"""

import abc
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import tomllib
import typing

import dask.array
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
import zarr
from tqdm.auto import tqdm

from synapse_dyn import experiments
from synapse_dyn.io import describe
from synapse_dyn.synapses.cycle import wraps_needed

from .response import REGIMES, _curves


class Parameter(typing.NamedTuple):
    """A sweepable scalar: its units and long name."""

    units: str
    long_name: str


class Output(typing.NamedTuple):
    """A result variable per point: its dims beyond the sweep's, dtype, units and long name."""

    dims: tuple[str, ...]
    dtype: str
    units: str
    long_name: str
    attrs: dict = {}


# ---------------------------------------------------------------------------------------------
# Experiments


class AbstractExperiment(eqx.Module):
    """A computation of named scalar parameters that can be batched over points.

    ``__call__`` receives a dict of swept parameter arrays with a leading point axis and
    returns a dict of output arrays with the same leading axis; it runs under one
    ``eqx.filter_jit`` per process, so array fields are traced and other fields are static.
    """

    @abc.abstractmethod
    def parameters(self) -> dict[str, Parameter]:
        """The parameters a sweep may vary."""

    @abc.abstractmethod
    def outputs(self) -> dict[str, Output]:
        """The variables computed for every point."""

    @abc.abstractmethod
    def coords(self) -> dict[str, tuple]:
        """Coordinates of the outputs' own dims: name -> (values, attrs)."""

    @abc.abstractmethod
    def check(self, points: dict[str, np.ndarray]) -> None:
        """Raise ValueError if any point is invalid (vectorised over the points)."""

    @abc.abstractmethod
    def prepare(self, points: dict[str, np.ndarray]) -> "AbstractExperiment":
        """This experiment with the settings that must hold for the whole sweep fixed (e.g.
        static array sizes), so that every chunk runs the same compiled function."""

    @abc.abstractmethod
    def __call__(self, points: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Outputs for a batch of points."""

    @abc.abstractmethod
    def finish(self, ds: xr.Dataset) -> xr.Dataset:
        """The assembled dataset with experiment-level attributes added."""

    @abc.abstractmethod
    def config(self) -> dict:
        """The experiment's configuration, for provenance and resume checks."""

    @abc.abstractmethod
    def bytes_per_point(self) -> int:
        """Rough working memory of one point (chooses the default chunk size)."""


_SYNAPSE_PARAMETERS = {
    "tau_kernel": ("time", "kernel time tau_K"),
    "kernel_area": ("1", "kernel area I"),
    "threshold": ("current", "threshold theta_g of g"),
    "tau_fast": ("time", "fast ramp time tau_fast"),
    "tau_slow": ("time", "slow ramp time tau_slow"),
    "mean_current": ("current", "background current s_bar"),
}


class SynapseResponse(AbstractExperiment):
    """Response curves of one TCL synapse (``experiments.SynapseExperiment``): the update per
    cycle dw and the regime over the configured contrasts, for every point; the swept
    parameters replace the configuration's float fields."""

    config_: "experiments.SynapseExperiment"
    amplitudes: jax.Array
    fixed: dict[str, jax.Array]
    n_grid: int = 2**15
    n_wraps: int | None = None

    def __init__(
        self, config: "experiments.SynapseExperiment", n_grid: int = 2**15, n_wraps=None, swept=()
    ):
        self.config_ = config
        self.amplitudes = jnp.asarray(
            np.linspace(0, config.amplitude_stop, config.n_amplitudes, endpoint=False)
        )
        self.fixed = {
            k: jnp.asarray(float(getattr(config, k))) for k in _SYNAPSE_PARAMETERS if k not in swept
        }
        self.n_grid = n_grid
        self.n_wraps = n_wraps

    def parameters(self):
        return {name: Parameter(*spec) for name, spec in _SYNAPSE_PARAMETERS.items()}

    def outputs(self):
        return {
            "dw": Output(
                ("amplitude",),
                "float64",
                "current x time",
                "update per cycle, integral of g(u) dt (the weight moves by -alpha dw)",
            ),
            "regime": Output(
                ("amplitude",),
                "int8",
                "1",
                "learning regime",
                {"flag_values": np.arange(3, dtype=np.int8), "flag_meanings": " ".join(REGIMES)},
            ),
            "period": Output((), "float64", "time", "protocol period T"),
        }

    def coords(self):
        return {
            "amplitude": (
                np.asarray(self.amplitudes),
                {"units": "current", "long_name": "contrast A = s_clamped - s_free"},
            )
        }

    def _build(self, points):
        return dataclasses.replace(self.config_, **points).build()

    def check(self, points):
        self._build({k: np.asarray(v, dtype=float) for k, v in points.items()})

    def prepare(self, points):
        kernel, _, shape = self._build({k: np.asarray(v, dtype=float) for k, v in points.items()})
        swept = tuple(points)
        return SynapseResponse(self.config_, self.n_grid, wraps_needed(kernel, shape.period), swept)

    def __call__(self, points):
        def one(point):
            values = {**self.fixed, **point}
            kernel, g, shape = self._build(values)
            g, shape = (jax.tree.map(lambda a: jnp.asarray(a)[None], tree) for tree in (g, shape))
            mean = values["mean_current"]
            update, regime = _curves(
                kernel, g, shape, self.amplitudes, mean, self.n_grid, self.n_wraps
            )
            return {"dw": update[0], "regime": regime[0], "period": shape.period[0]}

        return jax.vmap(one)(points)

    def finish(self, ds):
        names = {
            "mean_current": "mean_current",
            "tau_kernel": "kernel_timescale",
            "kernel_area": "kernel_area",
        }
        return ds.assign_attrs(
            {attr: float(self.fixed[k]) for k, attr in names.items() if k in self.fixed}
        )

    def config(self):
        return {**dataclasses.asdict(self.config_), "n_grid": self.n_grid}

    def bytes_per_point(self):
        # XLA's working set is about (1 + 2 n_wraps) n_grid doubles per point (its memory
        # analysis at n_grid = 2^15: 1.3 MB for 2 wraps, 6.1 MB for 11); keep a margin
        wraps = self.n_wraps or 1
        return (4 + 2 * wraps) * self.n_grid * 8 + 4 * self.amplitudes.size * 8


def protocol_curves(
    synapse, tau_fast, tau_slow, amplitude_max: float, n_grid: int, **options
) -> xr.Dataset:
    """Response curves of ``synapse`` (a ``SynapseExperiment``) along a ``protocol`` dim, one
    per sawtooth (tau_fast[i], tau_slow[i]) with threshold amplitude_max / tau_slow[i] (so
    cancellation starts near amplitude_max), in chunks of 50: the scan of Figs. 4C and 5C.
    ``options`` go to ``run`` (client, store, resume, progress, title)."""
    protocols = Points(
        "protocol", tau_fast=tau_fast, tau_slow=tau_slow, threshold=amplitude_max / tau_slow
    )
    return run(SynapseResponse(synapse, n_grid=n_grid), protocols, chunk=50, **options)


# ---------------------------------------------------------------------------------------------
# What to sweep


def _values(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim > 1:
        raise ValueError(f"sweep axis {name!r} must be a list of numbers, got shape {array.shape}.")
    array = np.atleast_1d(array)
    if array.size == 0:
        raise ValueError(f"sweep axis {name!r} is empty; give it at least one value.")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"sweep axis {name!r} has a non-finite value {float(array[bad[0]])!r} "
            f"at index {bad[0]}."
        )
    return array


class Grid:
    """The product of named axes (the last varies fastest); the dataset's dims are the axes,
    with their values as coordinates."""

    def __init__(self, **axes):
        if not axes:
            raise ValueError("a Grid needs at least one axis, e.g. Grid(tau_fast=[0.5, 1.0]).")
        self.axes = {name: _values(name, values) for name, values in axes.items()}
        self.dims = tuple(self.axes)
        self.shape = tuple(v.size for v in self.axes.values())

    def points(self) -> dict[str, np.ndarray]:
        mesh = np.meshgrid(*self.axes.values(), indexing="ij")
        return {name: m.ravel() for name, m in zip(self.axes, mesh, strict=True)}

    def spec(self) -> dict:
        return {"grid": {k: v.tolist() for k, v in self.axes.items()}}


class Points:
    """Explicit points along one dimension ``dim``: equal-length lists of parameter values,
    stored as data variables along ``dim``."""

    def __init__(self, dim: str = "point", **values):
        if not values:
            raise ValueError(
                "Points needs at least one parameter, e.g. Points(tau_fast=[0.5, 1.0])."
            )
        self.values = {name: _values(name, v) for name, v in values.items()}
        sizes = {name: v.size for name, v in self.values.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"Points parameters must have equal lengths, got {sizes}.")
        self.dims = (dim,)
        self.shape = (next(iter(sizes.values())),)

    def points(self) -> dict[str, np.ndarray]:
        return dict(self.values)

    def spec(self) -> dict:
        return {"points": list(self.values), "dim": self.dims[0], "n": self.shape[0]}


class Uniform(typing.NamedTuple):
    """Uniform on [low, high)."""

    low: float
    high: float

    def draw(self, rng, n):
        return rng.uniform(self.low, self.high, n)


class LogUniform(typing.NamedTuple):
    """Log-uniform on [low, high), both > 0."""

    low: float
    high: float

    def draw(self, rng, n):
        return np.exp(rng.uniform(np.log(self.low), np.log(self.high), n))


class Multiples(typing.NamedTuple):
    """``step`` times a uniform random integer in [low, high)."""

    step: float
    low: int
    high: int

    def draw(self, rng, n):
        return rng.integers(self.low, self.high, n) * self.step


class Choice(typing.NamedTuple):
    """A uniform random pick among ``values``."""

    values: tuple

    def draw(self, rng, n):
        return rng.choice(np.asarray(self.values, dtype=float), n)


def Draws(n: int, seed: int, dim: str = "draw", **distributions) -> Points:
    """``n`` random points: each parameter drawn from its distribution (``Uniform``,
    ``LogUniform``, ``Multiples``, ``Choice``) in the given order, from one generator
    seeded with ``seed``."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"Draws needs a number of points n >= 1, got {n!r}.")
    rng = np.random.default_rng(seed)
    for name, distribution in distributions.items():
        if not hasattr(distribution, "draw"):
            raise ValueError(
                f"sweep axis {name!r}: {distribution!r} is not a distribution; "
                "use Uniform, LogUniform, Multiples or Choice."
            )
    return Points(dim, **{name: d.draw(rng, n) for name, d in distributions.items()})


# ---------------------------------------------------------------------------------------------
# Validation, chunks and the store


def _describe_point(points: dict[str, np.ndarray], index: int) -> str:
    return ", ".join(f"{name}={float(values[index])!r}" for name, values in points.items())


def validate(experiment: AbstractExperiment, sweep) -> dict[str, np.ndarray]:
    """The sweep's points as flat arrays, after checking every name and value: raises
    ValueError naming an unknown parameter, or the first invalid point and why."""
    points = sweep.points()
    known = experiment.parameters()
    unknown = [name for name in points if name not in known]
    if unknown:
        raise ValueError(
            f"unknown sweep parameter(s) {unknown}; "
            f"the experiment's parameters are {sorted(known)}."
        )
    points = {name: np.asarray(v, dtype=float) for name, v in points.items()}
    n = len(next(iter(points.values())))

    def fails(index) -> Exception | None:
        try:
            experiment.check({name: v[index] for name, v in points.items()})
        except (ValueError, TypeError) as error:
            return error
        return None

    if fails(slice(None)) is None:
        return points
    low, high = 0, n  # the first invalid point lies in [low, high): bisect on prefixes
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fails(slice(middle)) else (middle, high)
    raise ValueError(
        f"sweep point {low} of {n} ({_describe_point(points, low)}) is invalid: {fails(low)}"
    )


def _fingerprint(experiment, sweep, points, chunk) -> str:
    digest = hashlib.sha256(
        json.dumps([experiment.config(), sweep.dims, chunk], sort_keys=True).encode()
    )
    for name, values in points.items():
        digest.update(name.encode() + values.tobytes())
    return digest.hexdigest()


def _initialise(store, experiment, sweep, points, chunk, fingerprint) -> None:
    """Write the store's metadata, coordinates and parameters; outputs are left unwritten
    (they read as NaN, or 0 for integers) and every chunk is flagged missing."""
    n = len(next(iter(points.values())))
    coords = experiment.coords()
    parameters = experiment.parameters()
    data, encoding = {}, {}
    for name, values in points.items():
        spec = parameters[name]
        data[name] = ("point", values, {"units": spec.units, "long_name": spec.long_name})
    for name, spec in experiment.outputs().items():
        shape = (n, *(len(coords[d][0]) for d in spec.dims))
        floating = np.issubdtype(spec.dtype, np.floating)
        values = dask.array.full(
            shape, np.nan if floating else 0, dtype=spec.dtype, chunks=(chunk, *shape[1:])
        )
        data[name] = (
            ("point", *spec.dims),
            values,
            {"units": spec.units, "long_name": spec.long_name, **spec.attrs},
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
        coords={name: (name, values, attrs) for name, (values, attrs) in coords.items()},
        attrs={
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


# ---------------------------------------------------------------------------------------------
# Running


_evaluate = eqx.filter_jit(lambda experiment, points: experiment(points))


def _compute(
    experiment: AbstractExperiment, points: dict[str, np.ndarray], size: int
) -> dict[str, np.ndarray]:
    """Outputs of one chunk: the points padded to ``size`` (repeating the last), evaluated by
    the compiled batch function, and trimmed back. Runs wherever the executor puts it."""
    n = len(next(iter(points.values())))
    index = np.minimum(np.arange(size), n - 1)
    outputs = _evaluate(experiment, {name: jnp.asarray(v[index]) for name, v in points.items()})
    return {name: np.asarray(v)[:n] for name, v in outputs.items()}


def _compute_on_worker(x64: bool, experiment, points, size):
    """``_compute`` on a Dask worker, in the caller's floating-point precision (a worker is
    a separate process with JAX's defaults)."""
    jax.config.update("jax_enable_x64", x64)
    return _compute(experiment, points, size)


def _in_process(experiment, jobs, size):
    """Chunks computed one after another here: yields (chunk index, outputs)."""
    for index, points in jobs:
        yield index, _compute(experiment, points, size)


def _on_dask(client, retries, experiment, jobs, size):
    """Chunks computed as Dask tasks (retried on failure or lost workers), yielded as they
    finish; pending tasks are cancelled if the caller stops early (Ctrl-C, error)."""
    from distributed import as_completed

    futures = {
        client.submit(
            _compute_on_worker,
            bool(jax.config.jax_enable_x64),
            experiment,
            points,
            size,
            retries=retries,
            pure=False,
            key=f"sweep-chunk-{index}-{os.urandom(4).hex()}",
        ): index
        for index, points in jobs
    }
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
            future.release()
    finally:
        client.cancel(list(futures))


def run(
    experiment: AbstractExperiment,
    sweep,
    *,
    chunk: int | None = None,
    store=None,
    resume: bool = False,
    client=None,
    retries: int = 3,
    progress: bool = True,
    title: str = "parameter sweep",
    memory: float = 2**30,
) -> xr.Dataset:
    """Evaluate ``experiment`` at every point of ``sweep`` (``Grid``, ``Points`` or
    ``Draws``) and return one dataset whose dims are the sweep's.

    Points are validated first, then computed in chunks of ``chunk`` points (default: as
    many as fit ``memory`` bytes) by this process, or by ``client`` (a
    ``dask.distributed.Client``) as tasks with ``retries``. Each finished chunk goes at once
    to the zarr ``store`` (a path; in memory when None). An existing store is refused unless
    ``resume``: then only its missing chunks are computed, and the result is identical to an
    uninterrupted run's.
    """
    points = validate(experiment, sweep)
    n = len(next(iter(points.values())))
    experiment = experiment.prepare(points)
    if chunk is None:
        chunk = int(max(1, min(n, memory // experiment.bytes_per_point())))
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer (points per chunk), got {chunk!r}.")
    fingerprint = _fingerprint(experiment, sweep, points, chunk)
    if store is None:
        store = zarr.storage.MemoryStore()
    else:
        store = pathlib.Path(store)
        if store.exists() and not resume:
            raise ValueError(
                f"sweep store {str(store)!r} already exists; "
                "resume it (resume=True, --resume) or choose a new path."
            )
    found = None  # a store killed while being created has no fingerprint: start it again
    if isinstance(store, pathlib.Path) and store.exists():
        found = zarr.open_group(store, mode="r").attrs.get("sweep_fingerprint")
    if found is not None:
        if found != fingerprint:
            raise ValueError(
                f"sweep store {str(store)!r} holds a different sweep (other points, chunk size or "
                "experiment settings); choose a new path to start this one."
            )
    else:
        _initialise(store, experiment, sweep, points, chunk, fingerprint)
    group = zarr.open_group(store, mode="r+")
    this_run = int(group.attrs["sweep_runs"]) + 1
    group.attrs["sweep_runs"] = this_run
    flags = group["chunk_run"]
    done = flags[:] > 0
    jobs = [
        (i, {name: v[i * chunk : (i + 1) * chunk] for name, v in points.items()})
        for i in np.flatnonzero(~done)
    ]
    executor = _in_process if client is None else functools.partial(_on_dask, client, retries)
    finished = sum(min(chunk, n - i * chunk) for i in np.flatnonzero(done))
    with tqdm(total=n, initial=finished, unit="point", desc=title, disable=not progress) as bar:
        for index, outputs in executor(experiment, jobs, chunk):
            start = index * chunk
            for name, values in outputs.items():
                group[name][start : start + len(values)] = values
            flags[index] = this_run
            bar.update(len(next(iter(outputs.values()))))
    ds = open_sweep(store)
    for name, spec in experiment.outputs().items():
        ds[name].attrs.update(spec.attrs)  # zarr keeps array attributes as lists
    ds = experiment.finish(ds)
    config = {"experiment": experiment.config(), "sweep": sweep.spec(), "chunk": chunk}
    return describe(ds, title, config)


def chunk_runs(store) -> np.ndarray:
    """Per chunk of a sweep store, the run (1, 2, ... counting resumes) that completed it; 0
    where it is still missing."""
    return zarr.open_group(store, mode="r")["chunk_run"][:]


# ---------------------------------------------------------------------------------------------
# Dask clusters


def _option_value(text: str):
    """A ``--cluster-option`` value: a TOML literal (number, bool, list) or else a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def cluster_options(pairs) -> dict:
    """``["cores=4", "memory=16GB"]`` -> ``{"cores": 4, "memory": "16GB"}``."""
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"cluster option {pair!r} must look like KEY=VALUE, e.g. memory=16GB.")
        options[key.strip()] = _option_value(value.strip())
    return options


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    cluster: str | None = None,
    workers: int | None = None,
    options=None,
):
    """A ``dask.distributed.Client`` for the duration of the block, or None (in-process): on the
    scheduler at address ``scheduler``; or on a new cluster, ``cluster="local"`` (worker
    processes on this machine) or ``"slurm"`` (``dask_jobqueue.SLURMCluster(**options)``,
    e.g. cores, memory, queue, account, walltime), scaled to ``workers`` workers."""
    from distributed import Client, LocalCluster

    options = dict(options or {})
    if scheduler is not None and cluster is not None:
        raise ValueError("give either a scheduler address or a cluster kind, not both.")
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as error:
            raise RuntimeError(
                f"could not reach the Dask scheduler at {scheduler!r}: {error}"
            ) from None
        with client:
            yield client
        return
    if cluster is None:
        yield None
        return
    if cluster == "local":
        options.setdefault("threads_per_worker", 1)
        made = LocalCluster(n_workers=workers or os.cpu_count(), processes=True, **options)
    elif cluster == "slurm":
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise RuntimeError(
                "--cluster slurm needs dask-jobqueue: pip install dask-jobqueue."
            ) from None
        made = SLURMCluster(**options)
        made.scale(workers or 1)
    else:
        raise ValueError(f"cluster must be 'local' or 'slurm', got {cluster!r}.")
    with made, Client(made) as client:
        yield client


# ---------------------------------------------------------------------------------------------
# Experiment files


_SWEEP_KEYS = ("chunk", "grid", "points", "random")
_DISTRIBUTIONS = {
    "uniform": Uniform,
    "log_uniform": LogUniform,
    "multiples": Multiples,
    "choice": Choice,
}


def _toml_line(key: str, value) -> str:
    if isinstance(value, float):
        return f"{key} = {value!r}"
    if isinstance(value, dict):
        raise ValueError(f"experiment key {key!r} must be a single value, got a table.")
    return f"{key} = {json.dumps(value)}"


def _grid_axis(source: str, name: str, spec):
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"start", "stop", "num", "log"})
        missing = sorted({"start", "stop", "num"} - set(spec))
        if unknown or missing:
            raise ValueError(
                f"{source}: grid axis {name!r} must be a list or {{start, stop, num, log}}; "
                f"unknown {unknown}, missing {missing}."
            )
        space = np.geomspace if spec.get("log", False) else np.linspace
        return space(spec["start"], spec["stop"], int(spec["num"]))
    return spec


def _distribution(source: str, name: str, spec):
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in _DISTRIBUTIONS:
        raise ValueError(
            f"{source}: random axis {name!r} must be one of {{uniform = [low, high]}}, "
            "{log_uniform = [low, high]}, {multiples = [step, low, high]}, {choice = [values]}; "
            f"got {spec!r}."
        )
    [(kind, args)] = spec.items()
    return _DISTRIBUTIONS[kind](tuple(args)) if kind == "choice" else _DISTRIBUTIONS[kind](*args)


def parse_sweep(text: str, source: str = "sweep file"):
    """(experiment, sweep, chunk) of an experiment file with a ``[sweep]`` table holding one of
    ``grid`` (axis = list or {start, stop, num, log}), ``points`` (equal-length lists) or
    ``random`` (n, seed, then axis = {uniform|log_uniform|multiples|choice = ...}), and an
    optional ``chunk`` (points per chunk)."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{source} is not valid TOML: {error}") from None
    spec = table.pop("sweep", None)
    if not isinstance(spec, dict):
        raise ValueError(
            f"{source} has no [sweep] table; add [sweep.grid], [sweep.points] or [sweep.random]."
        )
    config = experiments.parse("\n".join(_toml_line(k, v) for k, v in table.items()), source)
    sweepable = {experiments.SynapseExperiment: SynapseResponse}
    if type(config) not in sweepable:
        raise ValueError(
            f"{source}: experiments of kind {type(config).__name__} cannot be swept yet."
        )
    unknown = sorted(set(spec) - set(_SWEEP_KEYS))
    kinds = [key for key in ("grid", "points", "random") if key in spec]
    if unknown or len(kinds) != 1:
        raise ValueError(
            f"{source}: [sweep] takes exactly one of grid, points, random and optionally chunk; "
            f"got {sorted(spec)}."
        )
    [kind] = kinds
    axes = dict(spec[kind])
    if kind == "grid":
        sweep = Grid(**{name: _grid_axis(source, name, values) for name, values in axes.items()})
    elif kind == "points":
        sweep = Points(**axes)
    else:
        n, seed = axes.pop("n", None), axes.pop("seed", None)
        if not isinstance(n, int) or not isinstance(seed, int):
            raise ValueError(
                f"{source}: [sweep.random] needs integer n and seed, "
                f"got n = {n!r}, seed = {seed!r}."
            )
        sweep = Draws(n, seed, **{name: _distribution(source, name, d) for name, d in axes.items()})
    chunk = spec.get("chunk")
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"{source}: [sweep] chunk must be a positive integer, got {chunk!r}.")
    return sweepable[type(config)](config), sweep, chunk
