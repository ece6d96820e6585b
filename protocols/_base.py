"""The protocol interface and its composition (sequence, repeat, scale, offset)."""

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import require_nonempty, require_positive


class AbstractProtocol(eqx.Module):
    """A time-dependent drive p(t): a JAX-traceable function of time that also knows where
    its corners are, so adaptive solvers can be told (diffrax ``step_ts``/``jump_ts``).

    ``period`` is the repeat time of a periodic protocol and ``None`` otherwise.
    ``corners()`` lists the non-smooth times within one period ``[0, period)`` (periodic) or
    over the whole time axis (aperiodic); ``jumps()`` the subset where p itself jumps.
    Protocols compose with arithmetic: ``2.0 * p``, ``p + 1.0``, ``-p``.
    """

    period: eqx.AbstractVar[float | None]

    @abc.abstractmethod
    def __call__(self, t: Float[ArrayLike, ""]) -> Float[Array, ""]:
        """Value of the drive at time ``t``."""

    @abc.abstractmethod
    def corners(self) -> np.ndarray:
        """Times where p is not smooth (kinks and jumps), as a sorted NumPy array."""

    def jumps(self) -> np.ndarray:
        """Times where p is discontinuous (a subset of ``corners()``); none by default."""
        return np.empty(0)

    def breakpoints(self, t0: float, t1: float) -> np.ndarray:
        """Every corner in the closed interval [t0, t1], periodic copies included."""
        return _tile(self.corners(), self.period, t0, t1)

    def jump_times(self, t0: float, t1: float) -> np.ndarray:
        """Every jump in [t0, t1], periodic copies included."""
        return _tile(self.jumps(), self.period, t0, t1)

    def __mul__(self, factor) -> "Scale":
        return Scale(self, factor)

    __rmul__ = __mul__

    def __neg__(self) -> "Scale":
        return Scale(self, -1.0)

    def __add__(self, offset) -> "Offset":
        return Offset(self, offset)

    __radd__ = __add__

    def __sub__(self, offset) -> "Offset":
        return Offset(self, -offset)


def _tile(times: np.ndarray, period, t0: float, t1: float) -> np.ndarray:
    times = np.asarray(times, dtype=float)
    if period is None:
        return times[(times >= t0) & (times <= t1)]
    period = float(period)
    first, last = int(np.floor(t0 / period)) - 1, int(np.ceil(t1 / period)) + 1
    tiled = (times[None, :] + period * np.arange(first, last + 1)[:, None]).ravel()
    return np.unique(tiled[(tiled >= t0) & (tiled <= t1)])


class Scale(AbstractProtocol):
    """p(t) = factor * inner(t)."""

    inner: AbstractProtocol
    factor: Float[ArrayLike, ""]

    @property
    def period(self):
        return self.inner.period

    def __call__(self, t):
        return self.factor * self.inner(t)

    def corners(self):
        return self.inner.corners()

    def jumps(self):
        return self.inner.jumps()


class Offset(AbstractProtocol):
    """p(t) = inner(t) + offset."""

    inner: AbstractProtocol
    offset: Float[ArrayLike, ""]

    @property
    def period(self):
        return self.inner.period

    def __call__(self, t):
        return self.inner(t) + self.offset

    def corners(self):
        return self.inner.corners()

    def jumps(self):
        return self.inner.jumps()


class Repeat(AbstractProtocol):
    """p(t) = inner(t mod period): the first ``period`` of ``inner`` repeated forever."""

    inner: AbstractProtocol
    period: float

    def __check_init__(self):
        require_positive("Repeat period", self.period)

    def __call__(self, t):
        return self.inner(jnp.mod(t, self.period))

    def corners(self):
        inside = self.inner.breakpoints(0.0, float(self.period))
        return np.unique(np.concatenate([[0.0], inside[inside < self.period]]))

    def jumps(self):
        inside = self.inner.jump_times(0.0, float(self.period))
        wrap = [0.0] if float(self.inner(self.period) - self.inner(0.0)) != 0.0 else []
        return np.unique(np.concatenate([wrap, inside[inside < self.period]]))


class Sequence(AbstractProtocol):
    """Protocols played one after another: ``protocols[k]`` runs for ``durations[k]``, with
    its own clock restarted at zero; after the last piece the last protocol keeps running.
    Aperiodic; wrap it in ``Repeat(seq, seq.total_duration)`` to loop it."""

    protocols: tuple[AbstractProtocol, ...]
    durations: tuple[float, ...]
    period = None

    def __init__(self, protocols, durations):
        require_nonempty("Sequence protocols", protocols)
        if len(protocols) != len(durations):
            raise ValueError(
                f"Sequence needs one duration per protocol, got {len(protocols)} protocols "
                f"and {len(durations)} durations."
            )
        require_positive("Sequence durations", durations)
        self.protocols = tuple(protocols)
        self.durations = tuple(float(d) for d in durations)

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(self.durations)[:-1]])

    @property
    def total_duration(self) -> float:
        return float(sum(self.durations))

    def __call__(self, t):
        starts = jnp.asarray(self.starts)
        index = jnp.clip(jnp.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
        values = jnp.stack([p(t - s) for p, s in zip(self.protocols, self.starts, strict=True)])
        return values[index]

    def _pieces(self, method: str) -> np.ndarray:
        pieces = [self.starts[1:]]
        for protocol, start, duration in zip(
            self.protocols, self.starts, self.durations, strict=True
        ):
            local = getattr(protocol, method)(0.0, duration)
            pieces.append(start + local)
        return np.unique(np.concatenate(pieces))

    def corners(self):
        return self._pieces("breakpoints")

    def jumps(self):
        boundary = []
        for k in range(1, len(self.protocols)):
            end = self.protocols[k - 1](self.durations[k - 1])
            if float(end - self.protocols[k](0.0)) != 0.0:
                boundary.append(self.starts[k])
        inner = self._pieces("jump_times")
        inner = inner[~np.isin(inner, self.starts[1:])]
        return np.unique(np.concatenate([boundary, inner]))
