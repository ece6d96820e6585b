"""The one verb: ``simulate`` integrates a learning system through time with diffrax.

Synapse level (``network=None``): the protocol is the synaptic current itself,
s(t) = protocol(t), and the state is (z, w):

    dz/dt = f(z, s(t)),    dw/dt = -alpha g(u(z, s(t))).

Network level (Temporal Contrastive Learning): the protocol p(t) in [0, 1] drives the
perturbation of ``rule`` (the EP nudge beta(t) = eps_k beta p(t), or the coupled-learning
clamp eta(t) = eps_k eta p(t)), cycle k presenting mini-batch k of the ``task`` schedule with
sign eps_k. Every parameter w_ij sees its local current, the batch mean of
s_ij = dE/dw_ij at the network state x(t), and

    dz_ij/dt = f(z_ij, s_ij),    dw_ij/dt = -(alpha / (eps_k b)) g(u_ij),

so that per cycle w moves by -alpha times the rule's estimate of dL/dw in the ideal regime
(the division by the signed strength is the paper's 1/beta). The network is either
quasi-static (``mode="quasistatic"``: x(t) is the perturbed equilibrium at every instant) or
relaxes at its own speed (``mode="relaxation"``: dx/dt = -dF/dx / tau_network, EP only).
Within each cycle the inputs move linearly to the next batch's over the last ``blend`` of
the cycle (while the nudge is small), so the free current changes slowly and stays inside
the dead zone instead of jumping.
"""

from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from protocols import AbstractProtocol
from synapse_dyn._checks import concrete, require_finite, require_in_range

from .synapses.memory import Synapse


class SimulationError(RuntimeError):
    """The solver failed (step-size collapse, too many steps, non-finite state)."""


class Schedule(eqx.Module):
    """Which samples each protocol cycle presents: cycle k shows rows
    (k * batch_size + j) mod n_samples, j < batch_size, of ``inputs`` and ``targets``."""

    inputs: Float[Array, "n n_in"]
    targets: Float[Array, "n n_out"]
    batch_size: int = eqx.field(static=True, default=1)
    blend: float = eqx.field(static=True, default=0.5)

    def __check_init__(self):
        require_finite("Schedule inputs", self.inputs)
        require_finite("Schedule targets", self.targets)
        if np.ndim(self.inputs) != 2 or np.ndim(self.targets) != 2 or np.shape(self.inputs)[0] != np.shape(self.targets)[0]:
            raise ValueError(
                f"Schedule needs inputs (n, n_in) and targets (n, n_out) with the same n, got "
                f"{np.shape(self.inputs)} and {np.shape(self.targets)}."
            )
        if not 1 <= self.batch_size <= np.shape(self.inputs)[0]:
            raise ValueError(f"batch_size must be in [1, {np.shape(self.inputs)[0]}], got {self.batch_size}.")
        require_in_range("Schedule blend", self.blend, 0.0, 1.0, closed=(True, False))

    def rows(self, cycle):
        n = self.inputs.shape[0]
        return (cycle * self.batch_size + jnp.arange(self.batch_size)) % n

    def at(self, t, period):
        """(inputs, targets) of the batch presented at time t (inputs blended at cycle ends)."""
        cycle = jnp.floor(t / period).astype(int)
        phase = t / period - cycle
        weight = jnp.clip((phase - (1 - self.blend)) / jnp.maximum(self.blend, 1e-12), 0.0, 1.0)
        now, then = self.inputs[self.rows(cycle)], self.inputs[self.rows(cycle + 1)]
        return (1 - weight) * now + weight * then, self.targets[self.rows(cycle)]


class _SynapseField(eqx.Module):
    """d(z, w)/dt for a synapse driven directly by s(t) = protocol(t)."""

    synapse: Synapse
    protocol: AbstractProtocol

    def __call__(self, t, state, args):
        z, _ = state
        s = self.protocol(t)
        memory = self.synapse.memory
        velocity = -self.synapse.learning_rate * self.synapse.nonlinearity(memory.output(z, s))
        return memory.vector_field(z, s), velocity


class _NetworkField(eqx.Module):
    """d(x, z, w)/dt of a network whose synapses learn by TCL (module docstring)."""

    synapse: Synapse
    protocol: AbstractProtocol
    network: eqx.Module
    rule: eqx.Module
    schedule: Schedule
    signs: Float[Array, " cycles"]
    relaxing: bool = eqx.field(static=True)

    def strength(self, t):
        """(b(t), eps_k b): the perturbation strength now and its signed cycle amplitude."""
        cycle = jnp.floor(t / self.protocol.period).astype(int)
        signed = self.signs[jnp.minimum(cycle, self.signs.shape[0] - 1)] * self.rule.strength
        return signed * self.protocol(t), signed

    def perturbed(self, t, w):
        """Quasi-static network states of the batch: the perturbed equilibria at b(t)."""
        inputs, targets = self.schedule.at(t, self.protocol.period)
        b, _ = self.strength(t)

        def one(inputs, target):
            free = self.network.equilibrium(w, inputs)
            return self.rule.perturb(self.network, w, inputs, target, free, b)

        return jax.vmap(one)(inputs, targets)

    def current(self, t, x, w):
        """Batch mean of the local currents s = dE/dw at the states x."""
        inputs, _ = self.schedule.at(t, self.protocol.period)
        per_sample = jax.vmap(lambda x_, i: self.network.synaptic_current(x_, w, i))(x, inputs)
        return jax.tree.map(lambda s: jnp.mean(s, axis=0), per_sample)

    def relaxation(self, t, x, w):
        """dx/dt = -dF/dx / tau_network for every sample of the batch (EP nudge b(t))."""
        from synapse_dyn.networks import SoftNudge

        inputs, targets = self.schedule.at(t, self.protocol.period)
        b, _ = self.strength(t)
        field = lambda x_, i, y: self.network.vector_field(t, x_, (w, i, SoftNudge(b, y, self.rule.cost)))  # noqa: E731
        return jax.vmap(field)(x, inputs, targets)

    def __call__(self, t, state, args):
        x, z, w = state
        s = self.current(t, x if self.relaxing else self.perturbed(t, w), w)
        memory, g, rate = self.synapse.memory, self.synapse.nonlinearity, self.synapse.learning_rate
        _, signed = self.strength(t)
        dz = jax.tree.map(memory.vector_field, z, s)
        dw = jax.tree.map(lambda z_, s_: -rate * g(memory.output(z_, s_)) / signed, z, s)
        dx = self.relaxation(t, x, w) if self.relaxing else None
        return dx, dz, dw


def cycle_signs(variant: str, n_cycles: int, seed: int) -> np.ndarray:
    """eps_k per cycle: +1 (positive), -1 (negative) or a seeded random sign (random)."""
    if variant == "positive":
        return np.ones(n_cycles)
    if variant == "negative":
        return -np.ones(n_cycles)
    if variant == "random":
        return np.random.default_rng(seed).choice([-1.0, 1.0], n_cycles)
    raise ValueError(
        f"a TCL protocol realises one perturbation per cycle: rule variant must be 'positive', "
        f"'negative' or 'random' (a random sign per cycle), got {variant!r}."
    )


def simulate(
    synapse: Synapse,
    protocol: AbstractProtocol,
    *,
    t1: float,
    t0: float = 0.0,
    network: eqx.Module | None = None,
    rule: eqx.Module | None = None,
    schedule: Schedule | None = None,
    w0: PyTree[ArrayLike] = 0.0,
    mode: Literal["quasistatic", "relaxation"] = "quasistatic",
    seed: int = 0,
    saveat: Float[ArrayLike, " n"] | diffrax.SaveAt | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 1_000_000,
) -> diffrax.Solution:
    """Integrate memory and weights (and, in relaxation mode, the network state) from ``t0``
    to ``t1`` under ``protocol`` (module docstring for the equations).

    Synapse level: leave ``network`` out; ``w0`` is the initial weight. Network level: give
    ``network``, ``rule`` (``rules.EP`` or ``rules.CpL`` with variant positive, negative or
    random), ``schedule`` and the initial parameters ``w0``; the protocol must be periodic
    with values in [0, 1].

    ``saveat``: an array of times, a ``diffrax.SaveAt``, or None for the end point only.
    The protocol's corners (and the schedule's blend points) are declared to the step-size
    controller. Returns the diffrax solution: ``ys = (z, w)`` at synapse level,
    ``(x, z, w)`` at network level (x is None when quasi-static). Raises
    ``SimulationError`` if the solver fails.
    """
    t0_value, t1_value = concrete(t0), concrete(t1)
    if t0_value is not None and t1_value is not None and not t1_value > t0_value:
        raise ValueError(f"t1 must be later than t0, got t0 = {t0!r}, t1 = {t1!r}.")
    if saveat is None:
        saveat = diffrax.SaveAt(t1=True)
    elif not isinstance(saveat, diffrax.SaveAt):
        saveat = diffrax.SaveAt(ts=jnp.asarray(saveat, dtype=float))
    as_arrays = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, dtype=float), tree)  # noqa: E731
    # Python floats in the modules become arrays, so new parameter values reuse the
    # compiled solve instead of tracing it again.
    synapse, protocol = as_arrays(synapse), as_arrays(protocol)
    step_ts = protocol.breakpoints(float(t0), float(t1))
    if network is None:
        require_finite("w0", w0)
        w0 = jnp.asarray(w0, dtype=float)
        field = _SynapseField(synapse, protocol)
        y0 = (synapse.memory.steady_state(protocol(t0) + jnp.zeros_like(w0)), w0)
    else:
        field, y0, blend_ts = _network_problem(synapse, protocol, network, rule, schedule, w0, mode, seed, t0, t1)
        step_ts = np.union1d(step_ts, blend_ts)
    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol),
        step_ts=jnp.asarray(step_ts) if len(step_ts) else None,
        jump_ts=_or_none(protocol.jump_times(float(t0), float(t1))),
    )
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver or diffrax.Tsit5(),
        t0=t0,
        t1=t1,
        dt0=None,
        y0=y0,
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=False,
    )
    _raise_on_failure(solution)
    return solution


def _network_problem(synapse, protocol, network, rule, schedule, w0, mode, seed, t0, t1):
    """The vector field, initial state and blend times of a network-level simulation."""
    from synapse_dyn.rules import AbstractContrastiveRule, CpL

    if not isinstance(rule, AbstractContrastiveRule):
        raise ValueError(f"rule must be rules.EP or rules.CpL for a TCL simulation, got {type(rule).__name__}.")
    if not isinstance(schedule, Schedule):
        raise ValueError("a network simulation needs schedule=Schedule(inputs, targets, batch_size).")
    if mode not in ("quasistatic", "relaxation"):
        raise ValueError(f"mode must be 'quasistatic' or 'relaxation', got {mode!r}.")
    if mode == "relaxation" and isinstance(rule, CpL):
        raise ValueError("the relaxation mode drives the EP nudge; use mode='quasistatic' for coupled learning.")
    if protocol.period is None:
        raise ValueError("the nudge protocol must be periodic (one cycle per mini-batch).")
    network.check_inputs(schedule.inputs, "schedule inputs")
    network.check_parameters(w0)
    period = float(protocol.period)
    n_cycles = int(np.ceil((float(t1) - float(t0)) / period)) + 1
    signs = jnp.asarray(cycle_signs(rule.variant, n_cycles, seed))
    field = _NetworkField(synapse, protocol, network, rule, schedule, signs, mode == "relaxation")
    w0 = jax.tree.map(lambda a: jnp.asarray(a, dtype=float), w0)
    x0 = field.perturbed(t0, w0)
    s0 = field.current(t0, x0, w0)
    z0 = jax.tree.map(synapse.memory.steady_state, s0)
    blend_ts = period * (np.arange(n_cycles) + 1 - schedule.blend)
    blend_ts = blend_ts[(blend_ts > float(t0)) & (blend_ts < float(t1))]
    return field, (x0 if mode == "relaxation" else None, z0, w0), blend_ts


def _or_none(times):
    return jnp.asarray(times) if len(times) else None


def _raise_on_failure(solution: diffrax.Solution) -> None:
    if concrete(solution.result._value) is None:
        return  # traced (inside jit): diffrax's own error channel applies
    if solution.result != diffrax.RESULTS.successful:
        reached = solution.stats.get("num_steps", "?")
        raise SimulationError(
            f"the solver failed after {reached} steps: {solution.result}. Loosen rtol/atol, "
            "raise max_steps, or check the inputs for NaN."
        )
