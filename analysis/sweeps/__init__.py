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

import importlib

from .experiment import AbstractExperiment, Output, Parameter, SynapseResponse
from .layout import Choice, Draws, Grid, LogUniform, Multiples, Points, Uniform, validate

# running and storing import dask and zarr (0.8-1.7 s, measured with python -X importtime): they
# load on first use, so that every CLI start and ``import synapse_dyn.experiments`` skips them
_LAZY = {
    "cluster_options": "execution",
    "dask_client": "execution",
    "protocol_curves": "execution",
    "run": "execution",
    "chunk_runs": "store",
    "open_sweep": "store",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
