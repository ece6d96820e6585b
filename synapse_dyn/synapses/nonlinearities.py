"""Nonlinearities g that turn the memory output u into the weight velocity, dw/dt = -alpha g(u).

Each g is piecewise polynomial in u; ``pieces()`` exposes that structure so the per-cycle
update can be integrated exactly over a whole amplitude sweep at once
(see ``synapse_dyn.synapses.cycle``).
"""

import abc
import functools
from collections.abc import Sequence

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

    def residual_antiderivative(self, u: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """R(u) = integral_0^u (g(v) - v) dv, piece by piece (continuous, R' = g - identity)."""
        edges, coeffs = self.pieces()
        residual = jnp.pad(coeffs, ((0, 0), (0, 1))).at[:, 1].add(-1.0)  # g - identity
        primitive = residual / jnp.arange(1, residual.shape[1] + 1)[None, :]  # of v^1, v^2, ...

        def on_piece(v, k):
            v = jnp.clip(v, edges[k], edges[k + 1])
            return jnp.polyval(jnp.append(primitive[k][::-1], 0.0), v)

        u = jnp.asarray(u, dtype=float)
        return sum(on_piece(u, k) - on_piece(0.0, k) for k in range(coeffs.shape[0]))

    def integral(
        self,
        u: Sequence[Float[Array, "..."]],
        steps: Sequence[float],
        area: Float[Array, "..."],
    ) -> Float[Array, "..."]:
        """integral g(u(t)) dt over a stretch where u is known at nodes u[i] (spacing
        steps[i]) and exactly in the mean (``area`` = integral u dt).

        Every node on one affine piece g = a + b u: exactly a T + b area. Otherwise
        area + integral (g - u) dt with u linear between the nodes, i.e.
        sum_i h_i (R(u_{i+1}) - R(u_i)) / (u_{i+1} - u_i) with R' = g - identity: exact for
        piecewise-polynomial g along the straight lines, so a threshold crossing between
        nodes costs only the curvature of u there (the midpoint value where u barely
        changes). Elementwise, unrolled over the few nodes: one fused loop."""
        edges, coeffs = self.pieces()
        linear = jnp.pad(coeffs, ((0, 0), (0, 1)))  # at least the (a, b) columns
        affine = jnp.all(linear[:, 2:] == 0, axis=1)
        exact, anywhere = jnp.zeros_like(area), jnp.zeros(area.shape, bool)
        for k in range(coeffs.shape[0]):
            inside = [(value >= edges[k]) & (value < edges[k + 1]) for value in u]
            on = affine[k] & functools.reduce(jnp.logical_and, inside)
            exact = jnp.where(on, linear[k, 0] * sum(steps) + linear[k, 1] * area, exact)
            anywhere = anywhere | on
        primitive = [self.residual_antiderivative(value) for value in u]
        residual = jnp.zeros_like(area)
        for i, step in enumerate(steps):
            start, end = u[i], u[i + 1]
            rise = end - start
            flat = jnp.abs(rise) <= 1e-7 * (jnp.abs(start) + jnp.abs(end)) + 1e-300
            middle = (start + end) / 2
            slope = (primitive[i + 1] - primitive[i]) / jnp.where(flat, 1.0, rise)
            residual = residual + step * jnp.where(flat, self(middle) - middle, slope)
        return jnp.where(anywhere, exact, area + residual)


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

    def integral(self, u, steps, area):
        """The generic rule in closed form, without branches (one vectorised loop): with
        c = clip(u, -theta_g, theta_g), g - u = -c in the dead zone and 0 beyond it, so along
        the straight line from u_i to u_{i+1}
            integral (g - u) dt = -h_i (c_i + c_{i+1}) / 2 * (c_{i+1} - c_i) / (u_{i+1} - u_i),
        the mean of c where u is in the dead zone times the fraction of the step it spends
        there (no cancellation as u_{i+1} -> u_i). Every node in the dead zone: exactly 0;
        every node beyond it on one side: exactly ``area``."""
        theta = self.threshold * (1 + THRESHOLD_TIE)
        clipped = [jnp.clip(value, -theta, theta) for value in u]
        residual = jnp.zeros_like(area)
        for i, step in enumerate(steps):
            rise = u[i + 1] - u[i]
            # a step with u constant lies wholly in the dead zone (fraction 1) or beyond it
            # (0): the tiny offset decides without a branch
            tiny = jnp.copysign(1e-300, rise)
            inside = (jnp.abs(u[i]) <= theta).astype(rise.dtype)
            fraction = (clipped[i + 1] - clipped[i] + tiny * inside) / (rise + tiny)
            residual = residual - step * (clipped[i] + clipped[i + 1]) / 2 * fraction
        high, low = functools.reduce(jnp.maximum, u), functools.reduce(jnp.minimum, u)
        beyond = (low > theta) | (high < -theta)
        return jnp.where((high <= theta) & (low >= -theta), 0.0, area + (~beyond) * residual)

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
