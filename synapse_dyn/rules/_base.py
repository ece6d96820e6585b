"""The one call: ``update(network, w, batch, rule)`` returns g_hat, an estimate of dL/dw
averaged over the batch, with L = C(o(x_free), y). Parameters move as
w <- project(w - alpha g_hat)."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from synapse_dyn._runtime_checks import RuntimeCheckError, finite
from synapse_dyn.networks._base import (
    DEFAULT_COST,
    AbstractCost,
    AbstractNetwork,
    check_targets,
)


class AbstractRule(eqx.Module):
    """A per-sample gradient estimator. ``sign`` is the random-sign draw (+1 or -1) of the
    mini-batch, ignored by rules that do not use it."""

    cost: eqx.AbstractVar[AbstractCost]

    @abc.abstractmethod
    def estimate_and_state(
        self,
        network: AbstractNetwork,
        w: PyTree[Array],
        inputs: Float[Array, " n_in"],
        target: Float[Array, " n_out"],
        sign: Float[Array, ""],
        x0: PyTree[Array] | None = None,
    ) -> tuple[PyTree[Array], PyTree[Array]]:
        """(g_hat for one sample, same pytree as w; the free state), the free phase started
        from ``x0`` (a persistent state) where the solver is iterative."""

    def estimate(
        self,
        network: AbstractNetwork,
        w: PyTree[Array],
        inputs: Float[Array, " n_in"],
        target: Float[Array, " n_out"],
        sign: Float[Array, ""],
        x0: PyTree[Array] | None = None,
    ) -> PyTree[Array]:
        """g_hat for one sample (same pytree as w)."""
        return self.estimate_and_state(network, w, inputs, target, sign, x0)[0]

    def batch_estimate_and_state(
        self,
        network: AbstractNetwork,
        w: PyTree[Array],
        inputs: Float[Array, "batch n_in"],
        targets: Float[Array, "batch n_out"],
        sign: Float[Array, ""],
        x0: PyTree[Array] | None = None,
    ) -> tuple[PyTree[Array], PyTree[Array]]:
        """(batch mean of g_hat, the free states), every sample's estimate vmapped."""
        g, free = jax.vmap(lambda x, y, s: self.estimate_and_state(network, w, x, y, sign, s))(
            inputs, targets, x0
        )
        return jax.tree.map(lambda leaf: jnp.mean(leaf, axis=0), g), free

    def draw_sign(self, key: Array | None) -> Float[Array, ""]:
        return jnp.ones(())

    def failure(
        self,
        network: AbstractNetwork,
        w: PyTree[Array],
        inputs: Float[Array, "batch n_in"],
        targets: Float[Array, "batch n_out"],
    ) -> str:
        """Why this batch's estimate came out non-finite, and the fix (``update``'s error)."""
        return f"the {type(self).__name__} estimate is not finite: {network.failure}"


@eqx.filter_jit
def batch_estimate(
    network: AbstractNetwork,
    w: PyTree[Array],
    inputs: Float[Array, "batch n_in"],
    targets: Float[Array, "batch n_out"],
    rule: AbstractRule,
    key: Array | None = None,
    states: PyTree[Array] | None = None,
) -> PyTree[Array] | tuple[PyTree[Array], PyTree[Array]]:
    """``update`` without the Python-time validation, for inner loops (jitted, vmapped).
    With ``states`` (persistent free states, leading batch axis) the free phases start there
    and ``(g_hat, new free states)`` is returned."""
    g, free = rule.batch_estimate_and_state(
        network, w, inputs, targets, rule.draw_sign(key), states
    )
    return g if states is None else (g, free)


def update(
    network: AbstractNetwork,
    w: PyTree[Array],
    batch: tuple[Float[Array, "batch n_in"], Float[Array, "batch n_out"]],
    rule: AbstractRule,
    key: Array | None = None,
) -> PyTree[Array]:
    """g_hat = mean over the batch of the rule's per-sample estimate of dL/dw.

    ``batch = (inputs, targets)`` with a leading sample axis; ``key`` drives the random-sign
    variant (one sign per call). Validates shapes, finiteness and parameter ranges, then runs
    one jitted, vmapped computation (compiled once per network structure and rule type);
    raises ``RuntimeCheckError`` with the rule's ``failure`` if the estimate is not finite.
    """
    validate(network, w, batch, rule, key)
    inputs, targets = (jnp.asarray(a, float) for a in batch)
    g = batch_estimate(network, w, inputs, targets, rule, key)
    if not finite(g):
        raise RuntimeCheckError(rule.failure(network, w, inputs, targets))
    return g


def validate(
    network: AbstractNetwork,
    w: PyTree[Array],
    batch: tuple,
    rule: AbstractRule,
    key: Array | None = None,
) -> None:
    """The Python-time checks of ``update``: batch shapes and finiteness, parameter ranges,
    a key for the random-sign variant. Raises ValueError naming the problem and the fix."""
    inputs, targets = batch
    network.check_inputs(inputs)
    check_targets(network, targets)
    if jnp.ndim(inputs) != 2 or jnp.shape(inputs)[0] != jnp.shape(targets)[0]:
        raise ValueError(
            f"batch must be (inputs, targets) of shapes (batch, {network.n_inputs}) and "
            f"(batch, {network.n_outputs}), got {jnp.shape(inputs)} and {jnp.shape(targets)}."
        )
    network.check_parameters(w)
    if getattr(rule, "variant", None) == "random" and key is None:
        raise ValueError("the random-sign variant needs a PRNG key: pass key=jax.random.key(...).")


@eqx.filter_jit
def evaluate(
    network: AbstractNetwork,
    w: PyTree[Array],
    inputs: Float[Array, "batch n_in"],
    targets: Float[Array, "batch n_out"],
    cost: AbstractCost = DEFAULT_COST,
) -> dict[str, Float[Array, " batch"]]:
    """Free equilibria of a batch: per-sample ``loss`` C(o, y), ``energy`` E(x_free),
    ``correct`` (argmax o == argmax y) and the ``outputs``."""

    def one(x, y):
        state = network.equilibrium(w, x)
        o = network.output(state)
        return {
            "loss": cost(o, y),
            "energy": network.energy(state, w, x),
            "correct": (jnp.argmax(o) == jnp.argmax(y)).astype(float),
            "outputs": o,
        }

    return jax.vmap(one)(inputs, targets)
