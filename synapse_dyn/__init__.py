"""synapse-dyn: physical learning with non-equilibrium synaptic memory.

Networks are ODE/SDE systems whose learning degrees of freedom ("synapses") carry their own
memory dynamics; temporal free/clamped protocols drive them through diffrax solvers.

Importing the package leaves JAX's settings alone. The physics identities the project tests
(Kirchhoff's law to 1e-9, estimator convergence rates) need 64-bit floats: enable them at the
start of your program with ``jax.config.update("jax_enable_x64", True)``; the entry points that
need them say so when they are missing. The ``synapse-dyn`` command enables them itself.

Sub-packages: ``synapse_dyn.synapses`` (memory kernels, memory ODEs, nonlinearities and the
per-cycle update), ``synapse_dyn.simulate`` (the one verb), ``synapse_dyn.cli`` (the
``synapse-dyn`` command), ``synapse_dyn.protocols`` (time-dependent drives) and
``synapse_dyn.analysis`` (measurements into xarray datasets, figures).
"""

try:  # written by setuptools-scm when the package is built or installed
    from synapse_dyn._version import __version__
except ImportError:  # a source tree that was never installed
    __version__ = "0+unknown"

import importlib.util as _util

if _util.find_spec(f"{__name__}.protocols") is None:  # pragma: no cover - a setup error
    raise ImportError(
        f"synapse_dyn was imported from the source folder {__path__[0]}, which holds neither "
        "protocols/ nor analysis/ (the build maps them into the package); install it with "
        "'pip install -e .', or run Python outside the checkout (or as 'python -P')."
    )
