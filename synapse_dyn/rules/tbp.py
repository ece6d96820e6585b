"""Truncated backpropagation (TBP): the gradient of L(w) = C(o(x_T(w)), y), where x_T is the
state the network's iterative solver reaches from its start after its fixed number of free
sweeps (block coordinate descent for layered networks), by reverse-mode automatic
differentiation through those sweeps. It is the baseline of the deep-resistive-network
papers (Scellier 2024; Scellier and Mishra): not a physical rule, the gradient of what the
truncated relaxation computes. With enough sweeps it equals the implicit gradient."""

import jax
from jaxtyping import Array, Float, PyTree

from synapse_dyn.networks._base import DEFAULT_COST, AbstractCost, AbstractNetwork

from ._base import AbstractRule


class TBP(AbstractRule):
    """dL/dw through ``network.solve`` (the free phase, started from ``x0`` if given)."""

    cost: AbstractCost = DEFAULT_COST

    def estimate_and_state(
        self,
        network: AbstractNetwork,
        w: PyTree[Array],
        inputs: Float[Array, " n_in"],
        target: Float[Array, " n_out"],
        sign: Float[Array, ""],
        x0: PyTree[Array] | None = None,
    ) -> tuple[PyTree[Array], PyTree[Array]]:
        def loss(w_):
            x = network.solve(w_, inputs, None, x0)
            return self.cost(network.output(x), target), x

        return jax.grad(loss, has_aux=True)(w)
