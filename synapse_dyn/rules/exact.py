"""The exact gradient dL/dw of L(w) = C(o(x*(w)), y) by implicit differentiation.

At the free equilibrium the energy is stationary in every coordinate strictly inside its
bounds (the interior set I; coordinates on a bound stay there under small changes of w):
dE/dx_I (x*, w) = 0. Differentiating, with H = d2E/dx_I^2 and the adjoint lambda solving
H lambda = dC/dx_I (one lineax solve),

    dL/dw = - d/dw [ dE/dx (x*, w) . lambda ],

a vector-Jacobian product of the energy's x-gradient. Works for every substrate.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float, PyTree

from synapse_dyn._runtime_checks import poison
from synapse_dyn.networks._base import DEFAULT_COST, AbstractCost, AbstractNetwork

from ._base import AbstractRule


@eqx.filter_jit
def implicit_gradient(
    network: AbstractNetwork,
    w: PyTree[Array],
    inputs: Float[Array, " n_in"],
    target: Float[Array, " n_out"],
    cost: AbstractCost = DEFAULT_COST,
    solver: lx.AbstractLinearSolver | None = None,
    x0: PyTree[Array] | None = None,
) -> PyTree[Array]:
    """dL/dw at the free equilibrium by the implicit function theorem (see module doc).
    ``solver``: for the adjoint system (default: dense, materialised; pass ``lx.CG(...)`` for
    large networks)."""
    return _gradient_and_state(network, w, inputs, target, cost, solver, x0)[0]


def _gradient_and_state(network, w, inputs, target, cost, solver, x0):
    x = network.equilibrium(w, inputs, None, x0)
    interior = jax.tree.map(lambda m: m.astype(float), network.interior(x))
    grad_cost = jax.grad(lambda x_: cost(network.output(x_), target))(x)

    def grad_energy(x_, w_):
        return jax.grad(network.energy)(x_, w_, inputs)

    def hessian_vector(v):
        masked = jax.tree.map(jnp.multiply, interior, v)
        hv = jax.jvp(lambda x_: grad_energy(x_, w), (x,), (masked,))[1]
        return jax.tree.map(lambda m, h, vv: m * h + (1 - m) * vv, interior, hv, v)

    structure = jax.eval_shape(lambda: x)
    operator = lx.FunctionLinearOperator(
        hessian_vector, structure, tags=(lx.symmetric_tag, lx.positive_semidefinite_tag)
    )
    rhs = jax.tree.map(jnp.multiply, interior, grad_cost)
    solution = lx.linear_solve(
        operator, rhs, solver or lx.AutoLinearSolver(well_posed=True), throw=False
    )
    adjoint = poison(solution.value, solution.result == lx.RESULTS.successful)
    _, vjp = jax.vjp(lambda w_: grad_energy(x, w_), w)
    (gradient,) = vjp(adjoint)
    return jax.tree.map(jnp.negative, gradient), x


class ExactGradient(AbstractRule):
    """The reference: dL/dw by implicit differentiation at the free equilibrium."""

    cost: AbstractCost = DEFAULT_COST
    solver: lx.AbstractLinearSolver | None = None

    def estimate_and_state(self, network, w, inputs, target, sign, x0=None):
        return _gradient_and_state(network, w, inputs, target, self.cost, self.solver, x0)
