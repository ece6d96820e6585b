"""synapse-dyn: physical learning with non-equilibrium synaptic memory.

Networks are ODE/SDE systems whose learning degrees of freedom ("synapses") carry their own
memory dynamics; temporal free/clamped protocols drive them through diffrax solvers.

Importing the package enables 64-bit floats in JAX: the physics identities the project tests
(Kirchhoff's law to 1e-9, estimator convergence rates) need double precision.

Sub-packages: ``synapse_dyn.synapses`` (memory kernels, memory ODEs, nonlinearities and the
per-cycle update), ``synapse_dyn.simulate`` (the one verb), ``synapse_dyn.cli`` (the
``synapse-dyn`` command). Sibling packages: ``protocols`` (time-dependent drives) and
``analysis`` (measurements into xarray datasets, figures).
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
