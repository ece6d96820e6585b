"""Parameter sweeps: an experiment of named scalar parameters evaluated over a grid (product
of named axes), an explicit list of points or seeded random draws, in one code path whose
executor is either this process or a ``dask.distributed`` client.

Points are validated before any work, then split into chunks of ``chunk`` points; each chunk
is one call of the experiment's compiled, ``jax.vmap``-batched function (the last chunk is
padded, so a sweep compiles once per process). Every finished chunk is written at once to a
zarr store (region writes) and flagged complete, so an interrupted sweep loses only the
chunks in flight and ``resume=True`` computes only the missing ones. The store is laid out
flat (one ``point`` dimension); ``open_sweep`` reshapes it to the sweep's dimensions.

Modules: ``experiment`` (what is evaluated), ``layout`` (what to sweep, validation),
``store`` (the zarr store), ``execution`` (running, Dask). Experiment files with a ``[sweep]``
table are read by ``synapse_dyn.experiments.parse_sweep``; see ``docs/sweeps.md`` for their
syntax and the cluster options.
"""

from .execution import cluster_options, dask_client, protocol_curves, run
from .experiment import AbstractExperiment, Output, Parameter, SynapseResponse
from .layout import Choice, Draws, Grid, LogUniform, Multiples, Points, Uniform, validate
from .store import chunk_runs, open_sweep

__all__ = [
    "AbstractExperiment",
    "Choice",
    "Draws",
    "Grid",
    "LogUniform",
    "Multiples",
    "Output",
    "Parameter",
    "Points",
    "SynapseResponse",
    "Uniform",
    "chunk_runs",
    "cluster_options",
    "dask_client",
    "open_sweep",
    "protocol_curves",
    "run",
    "validate",
]
