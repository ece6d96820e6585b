"""Nonlinearities g that turn the memory output u into the weight velocity, dw/dt = -alpha g(u).

Each g is piecewise polynomial in u; ``pieces()`` exposes that structure so the per-cycle
update can be integrated exactly over a whole amplitude sweep at once
(see ``synapse_dyn.synapses.cycle``).
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import require_positive


class AbstractNonlinearity(eqx.Module):
    """g(u), piecewise polynomial: g(u) = sum_m coeffs[k, m] u^m for edges[k] <= u < edges[k+1]."""

    @abc.abstractmethod
    def __call__(self, u: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """g applied elementwise."""

    @abc.abstractmethod
    def pieces(self) -> tuple[Float[Array, " k+1"], Float[Array, "k degree+1"]]:
        """(edges, coeffs): the polynomial pieces of g, edges from -inf to +inf."""


# Values of |u| within this relative distance of a dead zone's threshold count as at the
# threshold. It breaks floating-point ties where |u| sits exactly on theta_g over a whole
# stretch of time, as on the slow ramp of a sawtooth at A = A_max = theta_g tau_slow.
THRESHOLD_TIE = 1e-9


class DeadZone(AbstractNonlinearity):
    """Thresholded-linear g (threshold theta_g): g(u) = u if |u| > theta_g, else 0.

    The threshold itself is dead, so a sawtooth whose slow ramp sits exactly at the threshold
    (A = A_max) is still in the contrastive regime; values within ``THRESHOLD_TIE`` (relative)
    of theta_g count as on it.
    """

    threshold: Float[ArrayLike, ""]

    def __check_init__(self):
        require_positive("DeadZone threshold", self.threshold, allow_zero=True)

    def __call__(self, u):
        return jnp.where(jnp.abs(u) > self.threshold * (1 + THRESHOLD_TIE), u, 0.0)

    def pieces(self):
        theta = jnp.asarray(self.threshold, dtype=float) * (1 + THRESHOLD_TIE)
        edges = jnp.stack([-jnp.inf, -theta, theta, jnp.inf])
        coeffs = jnp.array([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
        return edges, coeffs


class Cubic(AbstractNonlinearity):
    """Smooth alternative to the dead zone: g(u) = u^3 / threshold."""

    threshold: Float[ArrayLike, ""]

    def __check_init__(self):
        require_positive("Cubic threshold", self.threshold)

    def __call__(self, u):
        return u**3 / self.threshold

    def pieces(self):
        edges = jnp.array([-jnp.inf, jnp.inf])
        coeffs = jnp.stack([jnp.zeros(()), jnp.zeros(()), jnp.zeros(()), 1.0 / self.threshold])
        return edges, coeffs[None, :]


class Identity(AbstractNonlinearity):
    """No nonlinearity, g(u) = u: with a zero-area kernel the update over a period vanishes."""

    def __call__(self, u):
        return jnp.asarray(u, dtype=float)

    def pieces(self):
        return jnp.array([-jnp.inf, jnp.inf]), jnp.array([[0.0, 1.0]])
