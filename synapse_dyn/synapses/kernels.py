"""Memory kernels K of linear synapses: u(t) = d s(t) + integral_0^inf K(tau) s(t - tau) dtau.

Conventions (tcl_model.md, Sec. 2.2): the area I = d + integral K is zero for perfect
adaptation; the first moment integral tau K(tau) dtau is -1, so for slow signals
u ~ I s + ds/dt. ``feedthrough`` is the instantaneous part d (a d*delta(t) in K).
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import concrete, require_finite, require_positive


class AbstractKernel(eqx.Module):
    """A causal memory kernel: K(t) for t >= 0 (zero before), plus a feedthrough d."""

    feedthrough: eqx.AbstractVar[float]

    @abc.abstractmethod
    def __call__(self, t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """K(t), zero for t < 0 (the smooth part, without the feedthrough delta)."""

    @property
    @abc.abstractmethod
    def timescale(self) -> float:
        """tau_K, the kernel's characteristic time (1/B for the E. coli kernel)."""

    @property
    @abc.abstractmethod
    def support(self) -> float:
        """A time beyond which |K| is negligible (below 1e-12 of its peak)."""

    @property
    @abc.abstractmethod
    def area(self) -> Float[Array, ""]:
        """I = d + integral_0^inf K(t) dt (zero for perfect adaptation)."""

    @property
    @abc.abstractmethod
    def first_moment(self) -> Float[Array, ""]:
        """integral_0^inf t K(t) dt (-1 for the paper's normalised kernels)."""


class EColiKernel(AbstractKernel):
    """K(t) = A e^{-B t} (t - C t^2), with A = 3 I B^2 + B^3 and C = (B^2 + 2 B I)/(6 I + 2 B),
    so that its area is I and its first moment -1 (Celani & Vergassola 2010; B = 1/tau_K).
    Laplace transform A (p + B - 2C) / (p + B)^3: for I = 0 a pure high-pass B^3 p/(p + B)^3.
    """

    area: Float[ArrayLike, ""] = 0.0
    rate: Float[ArrayLike, ""] = 20.0
    feedthrough = 0.0

    def __check_init__(self):
        require_positive("EColiKernel rate B", self.rate)
        require_finite("EColiKernel area I", self.area)
        area, rate = concrete(self.area), concrete(self.rate)
        if area is not None and rate is not None and np.any(6 * area + 2 * rate <= 0):
            raise ValueError(
                f"EColiKernel needs 6 I + 2 B > 0, got I = {area!r}, B = {rate!r}; "
                "the kernel area I must exceed -B/3."
            )

    first_moment = -1.0

    @property
    def amplitude(self):
        return 3 * self.area * self.rate**2 + self.rate**3

    @property
    def curvature(self):
        return (self.rate**2 + 2 * self.rate * self.area) / (6 * self.area + 2 * self.rate)

    def __call__(self, t):
        t = jnp.asarray(t, dtype=float)
        value = self.amplitude * jnp.exp(-self.rate * t) * (t - self.curvature * t**2)
        return jnp.where(t >= 0, value, 0.0)

    @property
    def timescale(self):
        return 1.0 / self.rate

    @property
    def support(self):
        return 40.0 / float(np.min(self.rate))


class SineKernel(AbstractKernel):
    """One period of a sine, K(t) = amplitude sin(2 pi t / duration) for 0 <= t < duration:
    the kernel of the authors' MNIST experiment (duration 0.1 cycle, amplitude 1/3).
    Area 0, first moment -amplitude duration^2 / (2 pi)."""

    duration: Float[ArrayLike, ""] = 0.1
    amplitude: Float[ArrayLike, ""] = 1.0 / 3.0
    feedthrough = 0.0

    def __check_init__(self):
        require_positive("SineKernel duration", self.duration)
        require_finite("SineKernel amplitude", self.amplitude)

    def __call__(self, t):
        t = jnp.asarray(t, dtype=float)
        inside = (t >= 0) & (t < self.duration)
        return jnp.where(inside, self.amplitude * jnp.sin(2 * jnp.pi * t / self.duration), 0.0)

    @property
    def timescale(self):
        return self.duration

    area = 0.0

    @property
    def first_moment(self):
        return -self.amplitude * self.duration**2 / (2 * jnp.pi)

    @property
    def support(self):
        return float(np.max(self.duration))


class SampledKernel(AbstractKernel):
    """A kernel known by samples values[k] = K(k dt), linearly interpolated, zero beyond."""

    dt: float
    values: Float[Array, " n"]
    feedthrough: float = 0.0

    def __check_init__(self):
        require_positive("SampledKernel dt", self.dt)
        require_finite("SampledKernel values", self.values)
        require_finite("SampledKernel feedthrough", self.feedthrough)
        if np.ndim(self.values) != 1 or np.size(self.values) < 2:
            raise ValueError(
                f"SampledKernel values must be a 1-D array of at least 2 samples, got shape "
                f"{np.shape(self.values)}."
            )

    def __call__(self, t):
        t = jnp.asarray(t, dtype=float)
        values = jnp.asarray(self.values)
        grid = self.dt * jnp.arange(values.shape[0])
        inside = (t >= 0) & (t <= grid[-1])
        return jnp.where(inside, jnp.interp(t, grid, values), 0.0)

    @property
    def timescale(self):
        """The centroid of |K|, integral t |K| dt / integral |K| dt."""
        magnitude = np.abs(np.asarray(self.values, dtype=float))
        t = self.dt * np.arange(magnitude.size)
        return float(np.trapezoid(t * magnitude, t) / np.trapezoid(magnitude, t))

    @property
    def support(self):
        return float(self.dt * (np.shape(self.values)[0] - 1))

    @property
    def area(self):
        return sampled_moments(self.values, self.dt)[0] + self.feedthrough

    @property
    def first_moment(self):
        return sampled_moments(self.values, self.dt)[1]


class StateSpaceKernel(AbstractKernel):
    """Impulse response of the linear system dz/dt = M z + b s, u = c.z + d s:
    K(t) = c e^{M t} b, feedthrough d; area d - c M^{-1} b, first moment c M^{-2} b."""

    matrix: Float[Array, "n n"]
    input: Float[Array, " n"]
    readout: Float[Array, " n"]
    feedthrough: float = 0.0

    def __call__(self, t):
        t = jnp.asarray(t, dtype=float)

        def one(tau):
            value = self.readout @ jax.scipy.linalg.expm(self.matrix * tau) @ self.input
            return jnp.where(tau >= 0, value, 0.0)

        return jnp.vectorize(one)(t)

    @property
    def rates(self) -> np.ndarray:
        return -np.real(np.linalg.eigvals(np.asarray(self.matrix)))

    @property
    def timescale(self):
        return float(1.0 / np.min(self.rates))

    @property
    def support(self):
        return 40.0 * self.timescale

    @property
    def area(self):
        solve = jnp.linalg.solve(self.matrix, self.input)
        return self.feedthrough - self.readout @ solve

    @property
    def first_moment(self):
        solve = jnp.linalg.solve(self.matrix, jnp.linalg.solve(self.matrix, self.input))
        return self.readout @ solve


def sampled_moments(values, dt) -> tuple[float, float]:
    """(area, first moment) of samples K(k dt) by the trapezoid rule."""
    values = jnp.asarray(values, dtype=float)
    t = dt * jnp.arange(values.shape[0])
    return jnp.trapezoid(values, dx=dt), jnp.trapezoid(values * t, dx=dt)


def normalise(values, dt) -> np.ndarray:
    """Samples rescaled to first moment -1 (K <- -K / m1), the convention of every kernel in
    the paper; raises if the first moment vanishes."""
    first = float(sampled_moments(values, dt)[1])
    if first == 0 or not np.isfinite(first):
        raise ValueError(
            f"cannot normalise a kernel whose first moment is {first!r}; a memory kernel "
            "needs a non-zero first moment (it acts as a smoothed time derivative)."
        )
    return -np.asarray(values, dtype=float) / first
