"""Thermal noise: stochastic differential equations solved with diffrax.

A degree of freedom x with mobility mu in contact with a bath at temperature kT obeys the
overdamped Langevin equation

    dx = mu F(x, t) dt + sqrt(2 mu kT) dW,

whose noise amplitude is fixed by the fluctuation-dissipation relation (the Einstein relation
D = mu kT), so that with F = -grad U the stationary state is Boltzmann, p ~ exp(-U/kT).
Brownian paths come from ``diffrax.VirtualBrownianTree`` keyed by an integer seed: the same
seed gives the same path whatever the step size, so runs are reproducible and comparable.

Units: temperatures are energies kT (k_B = 1), times in the simulation's time unit.
"""

import abc
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PyTree

from synapse_dyn._checks import concrete, require_finite, require_positive


class AbstractNoise(eqx.Module):
    """A noise source: the amplitude multiplying dW and its Brownian path."""

    @property
    @abc.abstractmethod
    def amplitude(self) -> Float[Array, "..."]:
        """The diffusion amplitude b in dx = ... dt + b dW."""

    def brownian(
        self,
        like: PyTree[Array],
        t0: float,
        t1: float,
        seed: Int[ArrayLike, ""],
        tol: float,
        kind: str = "virtual",
    ) -> diffrax.AbstractBrownianPath:
        """A Brownian path shaped like ``like`` on [t0, t1], fixed by ``seed``.

        ``kind="virtual"``: a VirtualBrownianTree resolved to ``tol``; solves with any step
        >= tol on the same seed and tol see the same path (step-size studies, adaptive
        steps). ``kind="increments"``: independent increments keyed by (seed, t0, t1), the
        same path only on the same step grid, about 20x cheaper (needs fixed steps and
        ``diffrax.ForwardMode``)."""
        shape = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(jnp.shape(leaf), float), like)
        key = jax.random.key(seed)
        if kind == "virtual":
            require_positive("tol", tol)
            return diffrax.VirtualBrownianTree(t0, t1, tol=tol, shape=shape, key=key)
        if kind == "increments":
            return diffrax.UnsafeBrownianPath(shape=shape, key=key)
        raise ValueError(f"unknown Brownian path kind {kind!r}; choose 'virtual' or 'increments'.")

    def term(
        self, like: PyTree[Array], path: diffrax.AbstractPath, mask: PyTree[bool] | None = None
    ) -> diffrax.ControlTerm:
        """The diffrax term b dW on ``path`` (e.g. ``self.brownian(like, ...)``) for a state
        shaped like ``like``: a control term whose vector field is the diagonal operator b
        (lineax), on every leaf, or on the leaves where ``mask`` (a pytree like ``like``) is
        True, the others deterministic."""
        mask = jax.tree.map(lambda _: True, like) if mask is None else mask
        diagonal = jax.tree.map(
            lambda leaf, on: on * jnp.broadcast_to(self.amplitude, jnp.shape(leaf)), like, mask
        )
        return diffrax.ControlTerm(_Constant(lx.DiagonalLinearOperator(diagonal)), path)


class _Constant(eqx.Module):
    """A vector field that is the same linear operator at every (t, y): a module, not a
    closure, so that solves with new amplitudes or paths reuse the compiled program."""

    operator: lx.AbstractLinearOperator

    def __call__(self, t, y, args):
        return self.operator


class Thermal(AbstractNoise):
    """Thermal noise at temperature kT (>= 0, in energy units) on degrees of freedom with
    mobility mu (> 0): amplitude sqrt(2 mu kT) (fluctuation-dissipation). Both may be arrays
    (one per component).

    ``mobility=None``: the mobility of the dynamics the noise acts on, so that kT alone fixes
    the noise. A network relaxing as dx/dt = -dF/dx / tau_network has mu = 1 / tau_network
    (a different stated mobility is refused); ``langevin``'s dx = mu F dt + ... takes mu = 1.
    A synapse's memory z has no energy, so there the mobility must be stated, in
    z^2 / (kT time unit) (the stationary variance of a memory of time tau is mu kT tau)."""

    temperature: Float[ArrayLike, "..."]
    mobility: Float[ArrayLike, "..."] | None = None

    def __check_init__(self):
        temperature = concrete(self.temperature)
        if temperature is not None and (temperature < 0).any():
            raise ValueError(
                f"temperature must be >= 0 (an energy kT), got {temperature.min()!r}; pass a "
                "non-negative temperature (0 switches the noise off)."
            )
        require_finite("temperature", self.temperature)
        if self.mobility is not None:
            require_positive("mobility", self.mobility)

    def for_mobility(self, mobility: float, variable: str) -> "Thermal":
        """This noise on ``variable``, whose dynamics has mobility ``mobility``; a different
        stated mobility is refused (it would break fluctuation-dissipation)."""
        if self.mobility is None:
            return Thermal(self.temperature, mobility)
        stated = concrete(self.mobility)
        if stated is not None and not np.allclose(stated, mobility, rtol=1e-12, atol=0.0):
            raise ValueError(
                f"the {variable} has mobility {mobility:.6g}, fixed by its dynamics; Thermal("
                f"mobility={stated!r}) would break fluctuation-dissipation: pass Thermal(kT) "
                "and the mobility follows."
            )
        return self

    @property
    def amplitude(self):
        if self.mobility is None:
            raise ValueError(
                "Thermal(kT) has no mobility until it meets the dynamics it acts on; state it: "
                "Thermal(kT, mobility=mu)."
            )
        return jnp.sqrt(
            2.0 * jnp.asarray(self.mobility, float) * jnp.asarray(self.temperature, float)
        )


class _SekimotoNoise(diffrax.AbstractTerm):
    """Noise on the augmented state (x, Q): dx = b dW and dQ = F(x, t) . b dW, so that
    (Stratonovich) Q accumulates the Sekimoto heat integral F o dx. Hand-written: its vector
    field depends on x through F and maps dW to a scalar too, which no lineax diagonal
    operator expresses (a dense one would cost a (n + 1) x n matrix per step)."""

    force: Callable
    amplitude: Array
    path: diffrax.AbstractPath

    def vf(self, t, y, args):
        x, _ = y
        return self.amplitude, self.force(t, x, args) * self.amplitude

    def contr(self, t0, t1, **kwargs):
        return self.path.evaluate(t0, t1, **kwargs)

    def prod(self, vf, control):
        amplitude, weighted = vf
        return amplitude * control, jnp.sum(weighted * control)


def langevin(
    force: Callable[[Float[Array, ""], Float[Array, "..."], PyTree], Float[Array, "..."]],
    x0: Float[ArrayLike, "..."],
    noise: Thermal,
    *,
    t1: float,
    dt: float,
    seed: Int[ArrayLike, ""] = 0,
    t0: float = 0.0,
    saveat: Float[ArrayLike, " n"] | diffrax.SaveAt | None = None,
    args: PyTree = None,
    solver: diffrax.AbstractSolver | None = None,
    tol: float | None = None,
    brownian: str = "virtual",
) -> diffrax.Solution:
    """Solve dx = mu F(x, t) dt + sqrt(2 mu kT) o dW from x(t0) = x0 (mu: the noise's
    mobility, 1 when it states none) with fixed steps dt
    (Stratonovich Heun by default) and the Sekimoto heat Q(t) = integral_t0^t F o dx, the
    energy the force dissipates into the bath (positive: heat flows into the bath).

    ``force(t, x, args)`` returns F with x's shape. ``saveat``: times, a SaveAt (its ``fn``
    sees ``(x, Q)`` and can reduce it to statistics), or None for the end point. ``brownian``
    and ``tol``: the kind of Brownian path (``AbstractNoise.brownian``) and the virtual
    tree's resolution (default dt / 4; fix it to compare step sizes on one path).
    Returns the diffrax solution, ``ys = (x, Q)``. vmap over ``seed`` (and x0) for an ensemble.
    """
    if concrete(t0) is not None and concrete(t1) is not None and not float(t1) > float(t0):
        raise ValueError(f"t1 must be later than t0, got t0 = {t0!r}, t1 = {t1!r}.")
    require_positive("dt", dt)
    require_finite("x0", x0)
    x0 = jnp.asarray(x0, dtype=float)
    if noise.mobility is None:
        noise = Thermal(noise.temperature, 1.0)
    mobility = jnp.broadcast_to(jnp.asarray(noise.mobility, float), x0.shape)

    def drift(t, y, args):
        x, _ = y
        f = force(t, x, args)
        velocity = mobility * f
        return velocity, jnp.sum(f * velocity)

    path = noise.brownian(x0, t0, t1, seed, dt / 4 if tol is None else tol, brownian)
    terms = diffrax.MultiTerm(
        diffrax.ODETerm(drift),
        _SekimotoNoise(force, jnp.broadcast_to(noise.amplitude, x0.shape), path),
    )
    if saveat is None:
        saveat = diffrax.SaveAt(t1=True)
    elif not isinstance(saveat, diffrax.SaveAt):
        saveat = diffrax.SaveAt(ts=jnp.asarray(saveat, dtype=float))
    n_steps = int(round((float(t1) - float(t0)) / float(dt)))
    return diffrax.diffeqsolve(
        terms,
        solver or diffrax.Heun(),
        t0=t0,
        t1=t1,
        dt0=dt,
        y0=(x0, jnp.zeros(())),
        args=args,
        saveat=saveat,
        max_steps=n_steps + 2,
        throw=False,  # fixed steps never exceed max_steps; a check would be a host callback
        adjoint=diffrax.ForwardMode()
        if brownian == "increments"
        else diffrax.RecursiveCheckpointAdjoint(),
    )
