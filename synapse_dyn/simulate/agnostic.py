"""Agnostic equilibrium propagation in physical time: the network state s and the parameters
theta relax with finite mobilities while a controller drives the nudge beta(t) and the knobs
u(t), so the three phases of ``rules.AgnosticEP`` are one time-dependent process.

Total energy (mean over the B copies of the mini-batch, as in ``rules.agnostic``)

    F(s, theta; u, b) = |theta - u|^2 / (2 epsilon) + mean_k [E(theta, s_k) + b C(o(s_k), y_k)],

dynamics (overdamped, the network's own relaxation for s, bounds respected)

    ds_k/dt = network.vector_field = -dF_k/ds_k / tau_network,
    dtheta/dt = -(epsilon / tau_theta) dF/dtheta = -[(theta - u) + epsilon dE/dtheta] / tau_theta,

protocol per example (``AgnosticProtocol``; local time 0 .. period): beta = 0 for ``free``,
ramps over ``ramp`` to beta_1 and holds until ``free + homeostatic``, then ramps to beta_2 and
holds for the rest of ``nudged``. The knobs are homeostatic until then, u = theta +
epsilon dE/dtheta(theta, s) (so dtheta/dt = 0: the controller holds theta where it is), and
frozen afterwards. At the start of each example the inputs switch to the new mini-batch and the
knobs are reset to their homeostatic value: instantaneous changes at fixed (s, theta).

Energetics per example, from the switch to the end (first law, W_u + W_b = Delta F + Q):
  * knob work     W_u = int dF/du . du/dt dt,
  * nudge work    W_b = int mean C(o(s)) db/dt dt,
  * heat released Q   = -int (dF/ds . ds/dt + dF/dtheta . dtheta/dt) dt >= 0;
the knobs' reset at the switch (a jump of u at fixed state) is recorded apart.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from synapse_dyn._checks import require_positive
from synapse_dyn.networks._base import SoftNudge
from synapse_dyn.protocols import PiecewiseLinear

from .network import Schedule


class AgnosticProtocol(eqx.Module):
    """Timing of one AEqProp example in physical time: phase durations ``free``,
    ``homeostatic`` and ``nudged`` (each includes the ramp that starts it, ``ramp`` long) and
    the parameters' relaxation time ``theta_time`` (tau_theta above). The network's own
    ``relaxation_time`` sets the state's."""

    free: float
    homeostatic: float
    nudged: float
    ramp: float
    theta_time: float

    def __check_init__(self):
        for name in ("free", "homeostatic", "nudged", "ramp", "theta_time"):
            require_positive(f"AgnosticProtocol {name}", getattr(self, name))
        if not self.ramp < min(self.homeostatic, self.nudged):
            raise ValueError(
                f"AgnosticProtocol ramp ({self.ramp}) must be shorter than the homeostatic "
                f"({self.homeostatic}) and nudged ({self.nudged}) phases it starts."
            )

    @property
    def period(self) -> float:
        return float(self.free + self.homeostatic + self.nudged)

    @property
    def freeze(self) -> float:
        """Local time at which the knobs freeze and the nudge starts its ramp to beta_2."""
        return float(self.free + self.homeostatic)

    def nudge(self, beta_1: float, beta_2: float) -> PiecewiseLinear:
        """beta(t) over one example (local time), an aperiodic piecewise-linear protocol."""
        times = [0.0, self.free, self.free + self.ramp, self.freeze, self.freeze + self.ramp]
        values = [0.0, 0.0, beta_1, beta_1, beta_2]
        return PiecewiseLinear(
            np.array([*times, self.period]), np.array([*values, beta_2]), periodic=False
        )


class AgnosticRun(eqx.Module):
    """Per-example records of a physical-time AEqProp run (leading axis: example) and the final
    state ``(s, theta)``. Energies in the substrate's energy units."""

    theta: PyTree[Array]  # the parameters at the end of each example
    knob_work: Float[Array, " examples"]  # int dF/du du/dt dt over the example
    reset_work: Float[Array, " examples"]  # the knobs' jump to hold theta for the new inputs
    nudge_work: Float[Array, " examples"]
    heat: Float[Array, " examples"]
    energy_change: Float[Array, " examples"]  # F(end) - F(start), the start after the switch
    state: tuple  # (s, theta, u) at the end, for state0


class _Field(eqx.Module):
    """d(s, theta, u, W_u, W_b, Q)/dt of the module docstring."""

    network: eqx.Module
    epsilon: Float[Array, ""]
    theta_time: float
    freeze: float
    nudge: PiecewiseLinear
    inputs: Float[Array, "batch n_in"]
    targets: Float[Array, "batch n_out"]
    cost: eqx.Module

    def total(self, s, theta, u, beta):
        return _total(
            self.network, self.cost, self.epsilon, s, theta, u, beta, self.inputs, self.targets
        )

    def __call__(self, t, y, args):
        s, theta, u, *_ = y
        beta = self.nudge(t)
        ds = jax.vmap(
            lambda x, i, target: self.network.vector_field(
                t, x, (theta, i, SoftNudge(beta, target, self.cost))
            )
        )(s, self.inputs, self.targets)
        force_s, force_theta, force_u = jax.grad(self.total, argnums=(0, 1, 2))(s, theta, u, beta)
        dtheta = jax.tree.map(lambda f: -self.epsilon * f / self.theta_time, force_theta)

        def holding(s_, theta_):  # the homeostatic knob setting
            return _homeostatic(self.network, self.epsilon, s_, theta_, self.inputs)

        du = jax.jvp(holding, (s, theta), (ds, dtheta))[1]
        du = jax.tree.map(lambda d: jnp.where(t < self.freeze, d, 0.0), du)
        dbeta = jax.jvp(self.nudge, (t,), (jnp.ones_like(t),))[1]
        outputs = jax.vmap(self.network.output)(s)
        knob_power = _dot(force_u, du)
        nudge_power = jnp.mean(jax.vmap(self.cost)(outputs, self.targets)) * dbeta
        heat_rate = -(_dot(force_s, ds) + _dot(force_theta, dtheta))
        return ds, dtheta, du, knob_power, nudge_power, heat_rate


def _dot(a, b):
    return sum(jnp.sum(x * y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _total(network, cost, epsilon, s, theta, u, beta, inputs, targets):
    spring = sum(jnp.sum(d**2) for d in jax.tree.leaves(jax.tree.map(jnp.subtract, theta, u))) / (
        2 * epsilon
    )
    nudged = jax.vmap(lambda x, i, y: network.total_energy(x, theta, i, SoftNudge(beta, y, cost)))(
        s, inputs, targets
    )
    return spring + jnp.mean(nudged)


def _homeostatic(network, epsilon, s, theta, inputs):
    current = network.batch_current(s, theta, inputs)
    return jax.tree.map(lambda p, d: p + epsilon * d, theta, current)


def simulate_agnostic(
    protocol: AgnosticProtocol,
    t0: float,
    t1: float,
    integrator,
    *,
    network,
    rule,
    schedule: Schedule,
    w0: PyTree[Array],
    state0: tuple | None,
) -> AgnosticRun:
    """Examples (mini-batches of ``schedule``) k = t0/period .. t1/period - 1, one diffrax
    solve each, chained by a scan; ``simulate``'s docstring has the call."""
    if not isinstance(protocol, AgnosticProtocol):
        raise ValueError(
            "simulate with rule=AgnosticEP needs protocol=AgnosticProtocol(free, homeostatic, "
            f"nudged, ramp, theta_time), got {type(protocol).__name__}."
        )
    period = protocol.period
    n, first = (t1 - t0) / period, t0 / period
    if abs(n - round(n)) > 1e-9 or abs(first - round(first)) > 1e-9 or round(n) < 1:
        raise ValueError(
            f"an AEqProp simulation runs whole examples: t0 = {t0} and t1 = {t1} must be "
            f"multiples of the period {period} (free + homeostatic + nudged), t1 > t0."
        )
    network.check_inputs(schedule.inputs, "schedule inputs")
    w = jax.tree.map(lambda a: jnp.asarray(a, dtype=float), w0 if state0 is None else state0[1])
    network.check_parameters(w)
    if state0 is None:
        start = jax.tree.map(
            lambda a: jnp.stack([a] * schedule.batch_size), network.initial_state()
        )
        rows = schedule.rows(round(first))
        knobs = _homeostatic(network, rule.epsilon, start, w, schedule.inputs[rows])
    else:
        start, _, knobs = state0
    beta_1, beta_2 = (float(b) for b in rule.betas)
    cycles = jnp.arange(round(first), round(first) + round(n))
    nudge = protocol.nudge(beta_1, beta_2)
    theta, records, final = _run(
        protocol, integrator, network, rule, schedule, nudge, (start, w, knobs), cycles
    )
    moved = jax.tree.map(jnp.not_equal, jax.vmap(network.project)(theta), theta)
    outside = [np.asarray(m).reshape(len(cycles), -1).any(axis=1) for m in jax.tree.leaves(moved)]
    bad = np.flatnonzero(np.any(outside, axis=0))
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            f"the knobs drove theta outside the {type(network).__name__}'s feasible set during "
            f"example {int(cycles[k])} (t in [{t0 + k * period}, {t0 + (k + 1) * period}]): "
            "lower epsilon or beta."
        )
    return AgnosticRun(theta, *records.T, final)


def _run(protocol, integrator, network, rule, schedule, nudge, carry, cycles):
    epsilon = rule.epsilon

    def example(carry, cycle):
        s, theta, u_old = carry
        rows = schedule.rows(cycle)
        inputs, targets = schedule.inputs[rows], schedule.targets[rows]

        def total(s_, theta_, u_, beta):
            return _total(network, rule.cost, epsilon, s_, theta_, u_, beta, inputs, targets)

        # the inputs switch, the nudge is off and the knobs are reset to hold theta
        u = _homeostatic(network, epsilon, s, theta, inputs)
        reset_work = total(s, theta, u, 0.0) - total(s, theta, u_old, 0.0)
        start = total(s, theta, u, 0.0)
        field = _Field(
            network,
            epsilon,
            protocol.theta_time,
            protocol.freeze,
            nudge,
            inputs,
            targets,
            rule.cost,
        )
        zero = jnp.zeros(())
        solution = integrator.solve(
            field,
            (s, theta, u, zero, zero, zero),
            nudge,
            0.0,
            protocol.period,
            diffrax.SaveAt(t1=True),
            diffrax.Tsit5(),
            mask=(True, True, False, False, False, False),
        )
        s, theta, u, knob, nudge_work, heat = jax.tree.map(lambda a: a[-1], solution.ys)
        end = total(s, theta, u, nudge(protocol.period))
        record = jnp.stack([knob, reset_work, nudge_work, heat, end - start])
        return (s, theta, u), (theta, record)

    final, (thetas, records) = jax.lax.scan(example, carry, cycles)
    return thetas, records, final
