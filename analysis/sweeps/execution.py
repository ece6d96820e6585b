"""Running a sweep: chunks compiled once, computed in this process or as Dask tasks, each
written to the store as it finishes; Dask clients for a local cluster, SLURM or an address."""

import contextlib
import functools
import os
import pathlib
import tomllib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
import zarr

from synapse_dyn._checks import require_memory
from synapse_dyn._progress import tqdm
from synapse_dyn.io import describe

from .experiment import AbstractExperiment, SynapseResponse
from .layout import Points, validate
from .store import _fingerprint, create, open_sweep, record_run, sweep_config

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
    """``_compute`` on a Dask worker, in the caller's floating-point precision: a worker is a
    separate process with JAX's defaults, so the experiment travels with NumPy leaves (a JAX
    array unpickled in 32-bit mode would be rounded), which the compiled function takes as is."""
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

    shipped = jax.tree.map(
        lambda leaf: np.asarray(leaf) if eqx.is_array(leaf) else leaf, experiment
    )
    futures = {
        client.submit(
            _compute_on_worker,
            bool(jax.config.jax_enable_x64),
            shipped,
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
    total = float(np.prod(sweep.shape, dtype=float))
    require_memory(f"the sweep's {total:.3g} points", 32 * total * len(sweep.dims), "sweep fewer")
    points = validate(experiment, sweep)
    n = len(next(iter(points.values())))
    experiment = experiment.prepare(points)
    if chunk is None:
        chunk = int(max(1, min(n, memory // experiment.bytes_per_point())))
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer (points per chunk), got {chunk!r}.")
    require_memory(
        f"a chunk of {chunk} points", chunk * experiment.bytes_per_point(), "lower the chunk size"
    )
    per_point = sum(
        np.dtype(spec.dtype).itemsize
        * int(np.prod([len(experiment.coords()[d][0]) for d in spec.dims]))
        for spec in experiment.outputs().values()
    )
    require_memory(f"the {n} points' results", n * per_point, "sweep fewer points")
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
    create(store, experiment, sweep, points, chunk, fingerprint)
    this_run = record_run(store)
    group = zarr.open_group(store, mode="r+")
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
    return describe(ds, title, sweep_config(experiment, sweep, chunk))


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
    tls: bool = False,
):
    """A ``dask.distributed.Client`` for the duration of the block, or None (in-process): on the
    scheduler at address ``scheduler``; or on a new cluster, ``cluster="local"`` (worker
    processes on this machine) or ``"slurm"`` (``dask_jobqueue.SLURMCluster(**options)``,
    e.g. cores, memory, queue, account, walltime), scaled to ``workers`` workers.

    A cluster listens on network ports that every user of the machine (or network) can
    reach; with ``tls`` its connections are encrypted and authenticated: a started local
    cluster gets a temporary certificate of its own (``distributed.Security.temporary``), an
    existing scheduler or a SLURM cluster uses the certificates of the Dask configuration
    (``distributed.comm.tls.*``, see docs/sweeps.md)."""
    from distributed import Client, LocalCluster, Security

    options = dict(options or {})
    security = None
    if tls:
        security = Security.temporary() if cluster == "local" else Security()
        if cluster is None and scheduler is None:
            raise ValueError("tls applies to Dask clusters: give a scheduler or a cluster too.")
    if scheduler is not None and cluster is not None:
        raise ValueError("give either a scheduler address or a cluster kind, not both.")
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s", security=security)
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
        if security is not None:
            options.setdefault("security", security)
            options.setdefault("protocol", "tls://")
        made = LocalCluster(n_workers=workers or os.cpu_count(), processes=True, **options)
    elif cluster == "slurm":
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise RuntimeError(
                "--cluster slurm needs dask-jobqueue: pip install dask-jobqueue."
            ) from None
        if security is not None:
            options.setdefault("security", security)
            options.setdefault("protocol", "tls://")
        made = SLURMCluster(**options)
        made.scale(workers or 1)
    else:
        raise ValueError(f"cluster must be 'local' or 'slurm', got {cluster!r}.")
    with made, Client(made) as client:
        yield client


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
