"""Elementary drives: constant, piecewise-linear, sawtooth (and triangle), square."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import concrete, require_finite, require_positive

from ._base import AbstractProtocol


class Constant(AbstractProtocol):
    """p(t) = value."""

    value: Float[ArrayLike, ""]
    period = None

    def __check_init__(self):
        require_finite("Constant value", self.value)

    def __call__(self, t):
        return jnp.asarray(self.value, dtype=float) + 0.0 * t

    def corners(self):
        return np.empty(0)


class PiecewiseLinear(AbstractProtocol):
    """Linear interpolation through knots (times[k], values[k]).

    Periodic (default): repeats with period ``times[-1] - times[0]``; a difference between
    the first and last value is a jump at the wrap. Aperiodic: holds the end values outside.
    """

    times: Float[Array, " knots"]
    values: Float[Array, " knots"]
    periodic: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        times = concrete(self.times)
        if times is None:
            return
        if times.ndim != 1 or times.size < 2:
            raise ValueError(f"PiecewiseLinear needs at least two knot times, got {times!r}.")
        if np.shape(self.values) != times.shape:
            raise ValueError(
                f"PiecewiseLinear times and values must have the same shape, got "
                f"{times.shape} and {np.shape(self.values)}."
            )
        require_finite("PiecewiseLinear times", times)
        require_finite("PiecewiseLinear values", self.values)
        if np.any(np.diff(times) <= 0):
            raise ValueError(
                f"PiecewiseLinear times must be strictly increasing, got {times.tolist()}."
            )

    @property
    def period(self):
        if not self.periodic:
            return None
        return self.times[-1] - self.times[0]

    def __call__(self, t):
        times, values = jnp.asarray(self.times), jnp.asarray(self.values)
        if self.periodic:
            t = times[0] + jnp.mod(t - times[0], times[-1] - times[0])
        return jnp.interp(t, times, values)

    def corners(self):
        times = np.asarray(self.times, dtype=float)
        if self.periodic:
            return np.unique(np.mod(times, times[-1] - times[0]))
        return times

    def jumps(self):
        values = np.asarray(self.values, dtype=float)
        if self.periodic and values[0] != values[-1]:
            return np.array([float(self.times[0]) % float(self.period)])
        return np.empty(0)


class Sawtooth(AbstractProtocol):
    """The TCL protocol: a fast linear ramp from ``free`` to ``clamped`` over ``tau_fast``,
    then a slow linear ramp back over ``tau_slow``; period T = tau_fast + tau_slow.

    ``reverse=True`` plays it backwards in time (slow ramp up, fast ramp down), which flips
    the sign of the TCL update. ``tau_fast == tau_slow`` is the symmetric triangle wave.
    """

    tau_fast: Float[ArrayLike, ""]
    tau_slow: Float[ArrayLike, ""]
    free: Float[ArrayLike, ""] = 0.0
    clamped: Float[ArrayLike, ""] = 1.0
    reverse: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        require_positive("tau_fast", self.tau_fast)
        require_positive("tau_slow", self.tau_slow)
        require_finite("free", self.free)
        require_finite("clamped", self.clamped)

    @property
    def period(self):
        return self.tau_fast + self.tau_slow

    def __call__(self, t):
        phase = jnp.mod(-t if self.reverse else t, self.period)
        rise = phase / self.tau_fast
        fall = 1.0 - (phase - self.tau_fast) / self.tau_slow
        fraction = jnp.where(phase < self.tau_fast, rise, fall)
        return self.free + (self.clamped - self.free) * fraction

    def corners(self):
        first = self.tau_slow if self.reverse else self.tau_fast
        return np.array([0.0, float(first)])


def triangle(period, low=0.0, high=1.0) -> Sawtooth:
    """Symmetric triangle wave: equal ramps up and down (a sawtooth with tau_fast = tau_slow,
    which gives no net TCL update)."""
    return Sawtooth(tau_fast=period / 2, tau_slow=period / 2, free=low, clamped=high)


class Square(AbstractProtocol):
    """Two-phase drive: ``high`` for the first ``duty * period`` of each period, then ``low``."""

    period: Float[ArrayLike, ""]
    duty: Float[ArrayLike, ""] = 0.5
    low: Float[ArrayLike, ""] = 0.0
    high: Float[ArrayLike, ""] = 1.0

    def __check_init__(self):
        require_positive("Square period", self.period)
        duty = concrete(self.duty)
        if duty is not None and not np.all((duty > 0) & (duty < 1)):
            raise ValueError(f"Square duty must lie in (0, 1), got {duty!r}.")

    def __call__(self, t):
        phase = jnp.mod(t, self.period)
        return jnp.where(phase < self.duty * self.period, self.high, self.low)

    def corners(self):
        return np.array([0.0, float(self.duty * self.period)])

    jumps = corners


def sample(protocol: AbstractProtocol, t: Float[ArrayLike, " n"]) -> Float[Array, " n"]:
    """The protocol evaluated on an array of times."""
    import jax

    return jax.vmap(protocol)(jnp.asarray(t, dtype=float))
