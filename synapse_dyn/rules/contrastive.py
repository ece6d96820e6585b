"""Two-phase contrastive rules: equilibrium propagation (soft nudge), coupled learning (hard
clamp of the outputs) and contrastive learning (full clamp). All share the estimator

    g_hat(b1, b2) = [dE/dw(x_{b2}) - dE/dw(x_{b1})] / (b2 - b1),

where x_b is the perturbed equilibrium, started from the free state x_0, and
(b1, b2) = (0, b) positive, (-b, 0) negative, (-b, b) centered, (0, eps b) random sign
(eps = +-1 drawn once per mini-batch).
"""

import abc
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

from synapse_dyn._checks import require_in_range, require_positive
from synapse_dyn.networks._base import DEFAULT_COST, AbstractCost, AbstractNetwork, Clamp, SoftNudge

from ._base import AbstractRule

Variant = Literal["positive", "negative", "centered", "random"]
VARIANTS = ("positive", "negative", "centered", "random")


def _check_variant(variant, allowed=VARIANTS):
    if variant not in allowed:
        raise ValueError(f"variant must be one of {allowed}, got {variant!r}.")


class AbstractContrastiveRule(AbstractRule):
    """The shared two-phase estimator; subclasses say how a perturbation of strength b
    is applied (``perturb``)."""

    variant: eqx.AbstractVar[str]
    strength: eqx.AbstractVar[Float[Array, ""]]

    @abc.abstractmethod
    def perturb(self, network, w, inputs, target, x_free, b):
        """The perturbed equilibrium at strength b, started from the free state."""

    def strengths(self, sign) -> tuple[Float[Array, ""] | None, Float[Array, ""] | None]:
        """(b1, b2); None marks the free state."""
        b = self.strength
        return {
            "positive": (None, b),
            "negative": (-b, None),
            "centered": (-b, b),
            "random": (None, sign * b),
        }[self.variant]

    def draw_sign(self, key):
        if self.variant != "random":
            return jnp.ones(())
        return jnp.where(jax.random.bernoulli(key), 1.0, -1.0)

    def batch_estimate_and_state(self, network, w, inputs, targets, sign, x0=None):
        """The estimator with each phase's batch-mean current as one contraction."""
        free = jax.vmap(lambda i, s: network.equilibrium(w, i, None, s))(inputs, x0)
        b1, b2 = self.strengths(sign)

        def current(b):
            x = free
            if b is not None:
                x = jax.vmap(lambda i, y, f: self.perturb(network, w, i, y, f, b))(
                    inputs, targets, free
                )
            return network.batch_current(x, w, inputs)

        denominator = (0.0 if b2 is None else b2) - (0.0 if b1 is None else b1)
        g = jax.tree.map(lambda s2, s1: (s2 - s1) / denominator, current(b2), current(b1))
        return g, free

    def estimate_and_state(self, network, w, inputs, target, sign, x0=None):
        x0 = None if x0 is None else jax.tree.map(lambda a: a[None], x0)
        g, free = self.batch_estimate_and_state(network, w, inputs[None], target[None], sign, x0)
        return g, jax.tree.map(lambda a: a[0], free)


class EP(AbstractContrastiveRule):
    """Equilibrium propagation: x_b = argmin E + b C(o, y) (b > 0 pulls o towards y)."""

    strength: Float[Array, ""]
    variant: str = eqx.field(static=True)
    cost: AbstractCost

    def __init__(
        self,
        beta: Float[ArrayLike, ""],
        variant: Variant = "centered",
        cost: AbstractCost = DEFAULT_COST,
    ):
        require_positive("EP beta", beta)
        _check_variant(variant)
        self.strength = jnp.asarray(beta, dtype=float)
        self.variant = variant
        self.cost = cost

    @property
    def beta(self):
        return self.strength

    def perturb(self, network, w, inputs, target, x_free, b):
        return network.equilibrium(w, inputs, SoftNudge(b, target, self.cost), x_free)


class CpL(AbstractContrastiveRule):
    """Coupled learning: outputs clamped at o_b = o_free - b dC/do(o_free, y)
    (MSE: (1 - b) o_free + b y), everything else relaxed. 0 < eta <= 1."""

    strength: Float[Array, ""]
    variant: str = eqx.field(static=True)
    cost: AbstractCost

    def __init__(
        self,
        eta: Float[ArrayLike, ""],
        variant: Variant = "centered",
        cost: AbstractCost = DEFAULT_COST,
    ):
        require_in_range("CpL eta", eta, 0.0, 1.0, closed=(False, True))
        _check_variant(variant)
        self.strength = jnp.asarray(eta, dtype=float)
        self.variant = variant
        self.cost = cost

    @property
    def eta(self):
        return self.strength

    def perturb(self, network, w, inputs, target, x_free, b):
        o = network.output(x_free)
        clamped = o - b * self.cost.grad(o, target)
        return network.equilibrium(w, inputs, Clamp(clamped), x_free)


def CL(cost: AbstractCost = DEFAULT_COST) -> CpL:
    """Contrastive learning: the full clamp, CpL with eta = 1, positive (o = y for the MSE)."""
    return CpL(1.0, "positive", cost)


@eqx.filter_jit
def primitive(
    network: AbstractNetwork,
    w: PyTree[Array],
    inputs: Float[Array, " n_in"],
    target: Float[Array, " n_out"],
    beta: Float[ArrayLike, ""],
    cost: AbstractCost = DEFAULT_COST,
    x0: PyTree[Array] | None = None,
) -> Float[Array, ""]:
    """Phi(beta) = min_x E(x) + beta C(o(x), y), evaluated at the nudged equilibrium.
    Its w-gradient is dE/dw(x_beta) (envelope theorem), so
    g_hat_EP(b1, b2) = grad_w [Phi(b2) - Phi(b1)] / (b2 - b1) exactly."""
    nudge = SoftNudge(beta, target, cost)
    x = network.equilibrium(w, inputs, nudge, x0)
    return network.total_energy(x, w, inputs, nudge)
