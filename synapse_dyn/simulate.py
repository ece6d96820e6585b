"""The one verb: ``simulate`` integrates a learning system through time with diffrax.

Synapse level (``network=None``): the protocol is the synaptic current itself,
s(t) = protocol(t), and the state is (z, w):

    dz/dt = f(z, s(t)),    dw/dt = -alpha g(u(z, s(t))).

Network level (Temporal Contrastive Learning): the protocol p(t) in [0, 1] drives the
perturbation of ``rule`` (the EP nudge beta(t) = eps_k beta p(t), or the coupled-learning
clamp eta(t) = eps_k eta p(t)), cycle k presenting mini-batch k of the task's ``Schedule`` with
sign eps_k. Every parameter w_ij sees its local current, the batch mean of
s_ij = dE/dw_ij at the network state x(t), and

    dz_ij/dt = f(z_ij, s_ij),    dw_ij/dt = -(alpha / (eps_k b)) g(u_ij),

so that per cycle w moves by -alpha times the rule's estimate of dL/dw in the ideal regime
(the division by the signed strength is the paper's 1/beta). The network is either
quasi-static (``mode="quasistatic"``: x(t) is the perturbed equilibrium at every instant, the
parameters move once per cycle, after which the network re-settles and the memory follows
the current change adiabatically) or relaxes at its own speed (``mode="relaxation"``:
dx/dt = -dF/dx / tau_network, EP only, everything continuous).
Within each cycle the inputs move linearly to the next batch's over the last ``blend`` of
the cycle (while the nudge is small), so the free current changes slowly and stays inside
the dead zone instead of jumping.
"""

import warnings
from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree
from tqdm.auto import tqdm

from synapse_dyn._checks import (
    concrete,
    require_finite,
    require_in_range,
    require_positive,
    require_x64,
)
from synapse_dyn.protocols import AbstractProtocol

from .io import save_state
from .noise import DiagonalNoise
from .synapses.cycle import cycle_response
from .synapses.memory import Synapse
from .tasks import Task


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
        if (
            np.ndim(self.inputs) != 2
            or np.ndim(self.targets) != 2
            or np.shape(self.inputs)[0] != np.shape(self.targets)[0]
        ):
            raise ValueError(
                f"Schedule needs inputs (n, n_in) and targets (n, n_out) with the same n, got "
                f"{np.shape(self.inputs)} and {np.shape(self.targets)}."
            )
        if not 1 <= self.batch_size <= np.shape(self.inputs)[0]:
            raise ValueError(
                f"batch_size must be in [1, {np.shape(self.inputs)[0]}], got {self.batch_size}."
            )
        require_in_range("Schedule blend", self.blend, 0.0, 1.0, closed=(True, False))

    @classmethod
    def from_task(cls, task, batch_size: int = 1, blend: float = 0.5, seed: int | None = None):
        """The training split of a ``synapse_dyn.tasks.Task``, shuffled once by ``seed``
        (None: in order)."""
        order = np.arange(len(task.x_train))
        if seed is not None:
            order = np.random.default_rng(seed).permutation(order)
        inputs, targets = jnp.asarray(task.x_train)[order], jnp.asarray(task.y_train)[order]
        return cls(inputs, targets, batch_size, blend)

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
        return self.synapse.memory.vector_field(z, s), self.synapse.velocity(z, s)


class _Relaxation(eqx.Module):
    """d(x, z, w)/dt of a network relaxing at its own speed while its synapses learn by TCL
    (``mode="relaxation"``, EP nudge)."""

    synapse: Synapse
    protocol: AbstractProtocol
    network: eqx.Module
    rule: eqx.Module
    schedule: Schedule
    signs: Float[Array, " cycles"]

    def __call__(self, t, state, args):
        from synapse_dyn.networks import SoftNudge

        x, z, w = state
        period = self.protocol.period
        cycle = jnp.floor(t / period).astype(int)
        signed = self.signs[jnp.minimum(cycle, self.signs.shape[0] - 1)] * self.rule.strength
        inputs, targets = self.schedule.at(t, period)
        s = self.network.batch_current(x, w, inputs)
        dz = _each(lambda syn, z_, s_: syn.memory.vector_field(z_, s_), self.synapse, z, s)
        dw = _each(lambda syn, z_, s_: syn.velocity(z_, s_) / signed, self.synapse, z, s)
        nudge = lambda y: SoftNudge(signed * self.protocol(t), y, self.rule.cost)  # noqa: E731
        dx = jax.vmap(lambda x_, i, y: self.network.vector_field(t, x_, (w, i, nudge(y))))(
            x, inputs, targets
        )
        return dx, dz, dw


def _is_synapse(node) -> bool:
    return isinstance(node, Synapse)


def _each(function, synapses, *trees):
    """``function(synapse, *leaves)`` for every parameter leaf and its own synapse."""
    return jax.tree.map(function, synapses, *trees, is_leaf=_is_synapse)


def _per_parameter(synapse, w):
    """One Synapse per parameter leaf: a single Synapse is shared by all; a pytree of
    Synapses (e.g. per-tensor thresholds and learning rates) must match the structure of w."""
    if _is_synapse(synapse):
        return jax.tree.map(lambda _: synapse, w)
    if jax.tree.structure(synapse, is_leaf=_is_synapse) != jax.tree.structure(w):
        raise ValueError(
            "synapse must be one Synapse or a pytree of Synapses with the structure of the "
            f"parameters w, got {jax.tree.structure(synapse, is_leaf=_is_synapse)} for "
            f"{jax.tree.structure(w)}."
        )
    return synapse


class TCLRun(eqx.Module):
    """Result of a network-level ``simulate``: per-cycle records (free-state statistics of
    the cycle's batch with the parameters at the start of the cycle) and the final state
    ``(x, z, w)``, which ``simulate(state0=...)`` resumes from (x: the network states of the
    batch; when quasi-static, the free states of the next batch, relaxed as its inputs came in)."""

    cycle_start: Float[Array, " cycles"]
    loss: Float[Array, " cycles"]
    accuracy: Float[Array, " cycles"]
    energy: Float[Array, " cycles"]
    parameter_norm: Float[Array, " cycles"]
    update_norm: Float[Array, " cycles"]  # |w_(k+1) - w_k|, the parameter change of the cycle
    state: tuple
    t1: float


def cycle_signs(variant: str, n_cycles: int, seed: int) -> np.ndarray:
    """eps_k per cycle: +1 (positive), -1 (negative) or a seeded random sign (random)."""
    if variant == "positive":
        return np.ones(n_cycles)
    if variant == "negative":
        return -np.ones(n_cycles)
    if variant == "random":  # one seeded stream over cycle indices: resuming draws the same signs
        return np.where(np.random.default_rng(seed).random(n_cycles) < 0.5, 1.0, -1.0)
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
    task: Task | Schedule | None = None,
    w0: PyTree[ArrayLike] = 0.0,
    state0: tuple | None = None,
    mode: Literal["quasistatic", "relaxation"] = "quasistatic",
    seed: int = 0,
    levels: int = 9,
    substeps: int = 6,
    saveat: Float[ArrayLike, " n"] | diffrax.SaveAt | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 1_000_000,
    progress: bool = False,
    checkpoint: str | None = None,
    noise: eqx.Module | None = None,
    noise_seed: int = 0,
    dt: float | None = None,
    brownian: str = "virtual",
):
    """Integrate a learning system from ``t0`` to ``t1`` under ``protocol`` (module docstring
    for the equations).

    Synapse level (no ``network``): returns the diffrax solution, ``ys = (z, w)`` at
    ``saveat`` (an array of times, a ``diffrax.SaveAt``, or None for the end point), ``w0``
    the initial weight. The protocol's corners are declared to the step-size controller.

    Network level: give ``network``, ``rule`` (``rules.EP`` or ``rules.CpL``, variant
    positive, negative or random), ``task`` (a ``tasks.Task``: its training split, one sample
    per cycle in order; or a ``Schedule`` for mini-batches, shuffling and the blend) and the
    initial parameters ``w0`` (or ``state0`` from a previous run, to resume); the protocol
    must be periodic with values in [0, 1] and [t0, t1] a whole number of cycles. Returns a
    ``TCLRun``.

    * ``mode="quasistatic"``: the network sits at its perturbed equilibrium; it is solved at
      ``levels`` evenly spaced nudge strengths per cycle, the current is linear in the nudge
      between them, and the linear memory is propagated exactly (``cycle_response``: matrix
      exponentials, once per configuration), the weights integrating g(u) with ``substeps``
      graded intervals per stretch between the protocol's corners (docs/tcl.md for the
      accuracy). Parameters are projected
      onto their physical range after every cycle. With ``checkpoint=PATH`` the state is
      saved every 25 cycles (``synapse_dyn.io.load_state(PATH)`` gives ``(state0, t0)`` to
      resume); if a variable turns non-finite the run stops naming it, the cycle and time,
      and the last good state stays in PATH.
    * ``mode="relaxation"``: the network state is an ODE variable too,
      dx/dt = -dF/dx / tau_network, solved with diffrax (default Kvaerno5: the memory is stiff).

    Thermal noise (``noise=synapse_dyn.noise.Thermal(kT, mobility)``): the SDE
    dy = f dt + sqrt(2 mobility kT) dW, fluctuation-dissipation amplitude, acts on the memory z
    at synapse level and on the network state x in relaxation mode; it is solved with fixed
    steps ``dt`` (Heun), the Brownian path fixed by ``noise_seed`` (``brownian`` "virtual":
    the same path at any dt; "increments": faster, same path only on the same grid).

    Raises ``SimulationError`` if the solver fails or a state becomes non-finite.
    """
    require_x64("simulate")
    t0_value, t1_value = concrete(t0), concrete(t1)
    if t0_value is not None and t1_value is not None and not t1_value > t0_value:
        raise ValueError(f"t1 must be later than t0, got t0 = {t0!r}, t1 = {t1!r}.")
    as_arrays = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, dtype=float), tree)  # noqa: E731
    # Python floats in the modules become arrays, so new parameter values reuse the
    # compiled solve instead of tracing it again.
    synapse = as_arrays(synapse)
    integrator = _Integrator(
        solver, rtol, atol, max_steps, _thermal(noise, noise_seed, dt, brownian)
    )
    if network is not None:
        if saveat is not None:
            raise ValueError(
                "saveat applies to a synapse-level run; a network run records every cycle (the "
                "TCLRun fields) and returns its final state: drop saveat, or split the run with "
                "state0 to keep intermediate states."
            )
        return _simulate_network(
            synapse,
            protocol,
            float(t0),
            float(t1),
            integrator,
            network=network,
            rule=rule,
            task=task,
            w0=w0,
            state0=state0,
            mode=mode,
            seed=seed,
            levels=levels,
            substeps=substeps,
            progress=progress,
            checkpoint=checkpoint,
        )
    protocol = as_arrays(protocol)
    if saveat is None:
        saveat = diffrax.SaveAt(t1=True)
    elif not isinstance(saveat, diffrax.SaveAt):
        saveat = diffrax.SaveAt(ts=jnp.asarray(saveat, dtype=float))
    require_finite("w0", w0)
    w0 = jnp.asarray(w0, dtype=float)
    y0 = (synapse.memory.steady_state(protocol(t0) + jnp.zeros_like(w0)), w0)
    field = _SynapseField(synapse, protocol)
    return integrator.solve(
        field, y0, protocol, t0, t1, saveat, diffrax.Tsit5(), mask=(True, False)
    )


def _thermal(noise, seed, dt, kind):
    """The Thermalised spec of a simulation, or None without noise."""
    if noise is None:
        return None
    if dt is None:
        raise ValueError(
            "a simulation with thermal noise takes fixed steps: pass dt (e.g. a tenth of the "
            "fastest time scale)."
        )
    require_positive("dt", dt)
    return Thermalised(noise, seed, float(dt), kind)


class Thermalised(eqx.Module):
    """Thermal noise on part of the state: ``noise`` (e.g. ``noise.Thermal(kT, mobility)``)
    on the leaves where ``mask`` is True, a Brownian path fixed by ``seed`` (kind "virtual"
    or "increments", see ``synapse_dyn.noise``), fixed steps ``dt``."""

    noise: eqx.Module
    seed: int
    dt: float
    kind: str = eqx.field(static=True, default="virtual")

    def term(self, y0, mask, t0, t1):
        path = self.noise.brownian(y0, t0, t1, self.seed, self.dt / 4, self.kind)
        amplitude = jax.tree.map(
            lambda leaf, on: on * jnp.broadcast_to(self.noise.amplitude, jnp.shape(leaf)), y0, mask
        )
        return DiagonalNoise(amplitude, path)


class _Integrator(eqx.Module):
    """How ``simulate`` integrates: adaptive steps (``solver``, ``rtol``, ``atol``) with the
    protocol's corners declared, or, with thermal noise, fixed steps of the SDE (Heun)."""

    solver: diffrax.AbstractSolver | None
    rtol: float
    atol: float
    max_steps: int
    thermal: Thermalised | None

    def solve(self, field, y0, protocol, t0, t1, saveat, default_solver, mask, extra_steps=()):
        """diffeqsolve of ``field`` from ``y0``; thermal noise acts where ``mask`` is True."""
        if self.thermal is None:
            terms, dt0, solver = diffrax.ODETerm(field), None, self.solver or default_solver
            step_ts = np.union1d(protocol.breakpoints(float(t0), float(t1)), extra_steps)
            controller = diffrax.ClipStepSizeController(
                diffrax.PIDController(rtol=self.rtol, atol=self.atol),
                step_ts=jnp.asarray(step_ts) if len(step_ts) else None,
                jump_ts=_or_none(protocol.jump_times(float(t0), float(t1))),
            )
        else:
            noise = self.thermal.term(y0, mask, t0, t1)
            terms = diffrax.MultiTerm(diffrax.ODETerm(field), noise)
            dt0, controller, solver = self.thermal.dt, diffrax.ConstantStepSize(), diffrax.Heun()
        increments = self.thermal is not None and self.thermal.kind == "increments"
        solution = diffrax.diffeqsolve(
            terms,
            solver,
            t0=t0,
            t1=t1,
            dt0=dt0,
            y0=y0,
            saveat=saveat,
            stepsize_controller=controller,
            max_steps=self.max_steps,
            throw=False,
            adjoint=diffrax.ForwardMode() if increments else diffrax.RecursiveCheckpointAdjoint(),
        )
        _raise_on_failure(solution)
        return solution


def _simulate_network(
    synapse,
    protocol,
    t0,
    t1,
    integrator,
    *,
    network,
    rule,
    task,
    w0,
    state0,
    mode,
    seed,
    levels,
    substeps,
    progress,
    checkpoint,
):
    """The network-level simulation (``simulate``'s docstring)."""
    thermal = integrator.thermal
    from synapse_dyn.rules import AbstractContrastiveRule, CpL
    from synapse_dyn.synapses import AbstractLinearMemory

    if not isinstance(rule, AbstractContrastiveRule):
        raise ValueError(
            f"rule must be rules.EP or rules.CpL for a TCL simulation, got {type(rule).__name__}."
        )
    schedule = Schedule.from_task(task) if isinstance(task, Task) else task
    if not isinstance(schedule, Schedule):
        raise ValueError(
            "a network simulation needs task=: a tasks.Task (its training split, one sample per "
            "cycle) or a Schedule(inputs, targets, batch_size) (mini-batches, shuffling, blend); "
            f"got {type(task).__name__}."
        )
    if mode not in ("quasistatic", "relaxation"):
        raise ValueError(f"mode must be 'quasistatic' or 'relaxation', got {mode!r}.")
    if mode == "quasistatic" and (
        isinstance(levels, bool) or not isinstance(levels, int) or levels < 2
    ):
        raise ValueError(
            "levels must be an integer >= 2 (the free state and at least the full "
            f"perturbation), got {levels!r}."
        )
    if thermal is not None and mode != "relaxation":
        raise ValueError(
            "thermal noise acts on the network state, which is an ODE variable only in "
            "mode='relaxation'."
        )
    if mode == "relaxation" and isinstance(rule, CpL):
        raise ValueError(
            "the relaxation mode drives the EP nudge; use mode='quasistatic' for coupled learning."
        )
    if protocol.period is None:
        raise ValueError("the nudge protocol must be periodic (one cycle per mini-batch).")
    period = float(protocol.period)
    n_cycles = (t1 - t0) / period
    first = t0 / period
    if abs(n_cycles - round(n_cycles)) > 1e-9 or abs(first - round(first)) > 1e-9:
        raise ValueError(
            f"a network simulation runs whole protocol cycles: t0 = {t0} and t1 = {t1} must be "
            f"multiples of the period {period}."
        )
    n_cycles, first = int(round(n_cycles)), int(round(first))
    network.check_inputs(schedule.inputs, "schedule inputs")
    w_start = state0[-1] if state0 is not None else w0
    network.check_parameters(w_start)
    signs = cycle_signs(rule.variant, first + n_cycles, seed)
    w_start = jax.tree.map(lambda a: jnp.asarray(a, dtype=float), w_start)
    synapse = _per_parameter(synapse, w_start)
    nonlinear = [
        type(syn.memory).__name__
        for syn in jax.tree.leaves(synapse, is_leaf=_is_synapse)
        if not isinstance(syn.memory, AbstractLinearMemory)
    ]
    if mode == "quasistatic" and nonlinear:
        raise ValueError(
            f"the quasi-static mode propagates linear memory exactly; {nonlinear[0]} needs "
            "mode='relaxation'."
        )
    _warn_regimes(synapse, protocol, network, rule, schedule, w_start, mode, first)
    run = (synapse, protocol, network, rule, schedule, signs, w_start, state0, first, n_cycles)
    if mode == "relaxation":
        return _relax(*run, integrator)
    return _quasistatic(*run, levels, substeps, progress, checkpoint)


def _warn_regimes(synapses, protocol, network, rule, schedule, w, mode, first):
    """Warn when the protocol is fast compared with the memory (or the relaxing network), and
    when the first batch's contrasts A = b * g_explicit fall outside the dead zones'
    learning range: no update for |A| r_fast < theta, cancellation for |A| r_return > theta,
    with r_fast the steepest slope of p(t) and r_return the steepest of opposite sign."""
    from synapse_dyn.rules import update
    from synapse_dyn.synapses import DeadZone

    corners = np.append(np.unique(protocol.corners()), float(protocol.period))
    values = np.array([float(protocol(t)) for t in corners])
    slopes = np.diff(values) / np.maximum(np.diff(corners), 1e-300)
    steepest = int(np.argmax(np.abs(slopes)))
    fast = float(np.diff(corners)[steepest])
    opposite = np.abs(slopes[np.sign(slopes) == -np.sign(slopes[steepest])])
    leaves = jax.tree.leaves(synapses, is_leaf=_is_synapse)
    kernel_time = max(syn.memory.kernel().timescale for syn in leaves)
    slow_times = [("kernel", kernel_time)] + (
        [("network", float(network.relaxation_time))] if mode == "relaxation" else []
    )
    for name, time in slow_times:
        if fast < 10 * time:
            warnings.warn(
                f"the protocol's fastest ramp lasts {fast / time:.3g} {name} times (< 10): the "
                f"{name} cannot follow it and TCL underestimates the contrast; slow the "
                "protocol down.",
                stacklevel=4,
            )
    if not all(isinstance(syn.nonlinearity, DeadZone) for syn in leaves):
        return
    rows = schedule.rows(first)
    explicit = update(
        network, w, (schedule.inputs[rows], schedule.targets[rows]), rule, key=jax.random.key(0)
    )
    counts = np.zeros(3)
    for syn, g in zip(leaves, jax.tree.leaves(explicit), strict=True):
        contrast = np.abs(float(rule.strength) * np.asarray(g)).ravel()
        contrast = contrast[
            contrast > 1e-12 * max(contrast.max(), 1e-300)
        ]  # silent currents need no update
        theta = float(syn.nonlinearity.threshold)
        cancel = contrast * (opposite.max() if opposite.size else 0.0) > theta
        silent = contrast * abs(slopes[steepest]) <= theta
        counts += [silent.sum(), cancel.sum(), contrast.size]
    silent, cancel = counts[0] / counts[2], counts[1] / counts[2]
    if silent > 0.5 or cancel > 0.01:
        warnings.warn(
            "nudge outside the synapses' learning range on the first batch: "
            f"{100 * silent:.0f}% of synapses in the no-update regime, {100 * cancel:.1f}% in "
            "the cancellation regime; adjust the thresholds or the nudge strength.",
            stacklevel=4,
        )


def _record(network, rule, w, inputs, targets, free, w_next):
    """Free-state loss, accuracy, energy (batch means), parameter norm and the norm of the
    cycle's parameter change."""
    outputs = jax.vmap(network.output)(free)
    loss = jax.vmap(rule.cost)(outputs, targets)
    correct = jnp.argmax(outputs, axis=-1) == jnp.argmax(targets, axis=-1)
    energy = jax.vmap(lambda x, i: network.energy(x, w, i))(free, inputs)
    norm = jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(w)))
    change = jax.tree.leaves(jax.tree.map(jnp.subtract, w_next, w))
    update = jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in change))
    return jnp.stack([jnp.mean(loss), jnp.mean(correct), jnp.mean(energy), norm, update])


def _knots(protocol: AbstractProtocol, levels: int, blend: float):
    """Times within one cycle where the current is known (corners, crossings of the nudge
    levels, the blend start), the matrix that interpolates the level currents onto them, the
    blend weight there, and the corners (where the current's slope changes much)."""
    period = float(protocol.period)
    corners = np.unique(
        np.concatenate([protocol.corners(), [0.0], [(1 - blend) * period] if blend > 0 else []])
    )
    corners = np.append(corners[(corners >= 0) & (corners < period)], period)
    grid = np.linspace(0.0, 1.0, levels)
    times, values = [], []
    for a, b in zip(corners[:-1], corners[1:], strict=True):
        start = float(protocol(a))
        end = 2 * float(protocol((a + b) / 2)) - start  # left limit at b (segments are linear)
        crossing = (grid - start) * (grid - end) < 0
        inner = (
            a + (grid[crossing] - start) / (end - start) * (b - a)
            if crossing.any()
            else np.empty(0)
        )
        times.extend([a, *np.sort(inner), b])
        values.extend([start, *np.interp(np.sort(inner), [a, b], [start, end]), end])
    values = np.asarray(values)
    if values.min() < -1e-12 or values.max() > 1 + 1e-12:
        raise ValueError(
            f"the nudge protocol must take values in [0, 1], got [{values.min():.3g}, "
            f"{values.max():.3g}]; scale it."
        )
    weights = np.clip(1 - np.abs(values[:, None] - grid[None, :]) * (levels - 1), 0.0, 1.0)
    ramp = (
        np.clip((np.asarray(times) / period - (1 - blend)) / blend, 0.0, 1.0)
        if blend > 0
        else np.zeros(len(times))
    )
    return np.asarray(times), weights, ramp, corners


@eqx.filter_jit
def _quasistatic_chunk(synapse, network, rule, schedule, levels, responses, carry, cycles, signs):
    def cycle(carry, cycle_sign):
        # the free states of this batch were relaxed at the end of the previous cycle, as its
        # inputs came in, and again under the updated parameters
        z, w, free = carry
        k, sign = cycle_sign
        inputs, targets = schedule.inputs[schedule.rows(k)], schedule.targets[schedule.rows(k)]
        following = schedule.inputs[schedule.rows(k + 1)]
        signed = sign * rule.strength
        nudged = jax.vmap(
            lambda b: jax.vmap(lambda i, y, x: rule.perturb(network, w, i, y, x, b))(
                inputs, targets, free
            )
        )(signed * jnp.linspace(0.0, 1.0, levels)[1:])
        # one contraction over the batch per level, kept as separate arrays that the memory
        # reads in place (stacking them would write and read every level once more)
        unstacked = [jax.tree.map(lambda a, k=k: a[k], nudged) for k in range(levels - 1)]
        level_currents = [network.batch_current(x, w, inputs) for x in [free, *unstacked]]
        free_current = level_currents[0]
        arriving = jax.vmap(lambda i: network.equilibrium(w, i))(following)
        arriving_current = network.batch_current(arriving, w, following)
        switch = jax.tree.map(jnp.subtract, arriving_current, free_current)

        def propagate(syn, response, z_, switch_s, *levels_s):
            # amplitudes of the shapes: level currents relative to the setpoint, then the blend
            amplitudes = [s - syn.memory.setpoint for s in levels_s]
            return response(syn.nonlinearity, [*amplitudes, switch_s], z_)

        propagated = _each(propagate, synapse, responses, z, switch, *level_currents)
        w_new = network.project(
            _each(lambda syn, w_, p: w_ - syn.learning_rate * p[1] / signed, synapse, w, propagated)
        )
        # the network settles under the new parameters; their change is slow next to the
        # memory (weights move little per cycle), which follows the current it causes. Both
        # free states of the next batch are relaxed alike (from the solver's initial state),
        # so their difference is the parameters' change alone, also for a solver stopped
        # after a fixed number of sweeps
        free_next = jax.vmap(lambda i: network.equilibrium(w_new, i))(following)
        drift = jax.tree.map(
            jnp.subtract, network.batch_current(free_next, w_new, following), arriving_current
        )
        z_new = _each(lambda syn, p, d: syn.memory.follow(p[0], d), synapse, propagated, drift)
        record = _record(network, rule, w, inputs, targets, free, w_new)
        return (z_new, w_new, free_next), record

    return jax.lax.scan(cycle, carry, (cycles, signs))


def _check_finite(state, record, start, period, checkpoint, last_good):
    """Raise SimulationError naming the first non-finite variable and cycle of a chunk."""
    bad = [
        ("memory z", "parameters w")[path[0].idx] + jax.tree_util.keystr(path[1:])
        for path, leaf in jax.tree_util.tree_leaves_with_path(state)
        if not np.all(np.isfinite(leaf))
    ]
    broken = ~np.all(np.isfinite(record), axis=1)
    if bad or broken.any():
        cycle = start + int(np.argmax(broken))
        what = f"{bad[0] if bad else 'the network state'} became non-finite"
        _diverged(what, cycle, cycle + 1, period, checkpoint, last_good, start)


def _diverged(what, first, last, period, checkpoint, last_good, good_until=None):
    """Save the last good state (reached at cycle ``good_until``, default ``first``) and raise
    SimulationError saying what failed where."""
    good_until = first if good_until is None else good_until
    where = ""
    if checkpoint:
        save_state(checkpoint, (last_good[2], *last_good[:2]), good_until * period)
        where = f"; the last good state (t = {good_until * period:g}) is saved in {checkpoint}"
    cycles = f"cycle {first}" if last == first + 1 else f"cycles {first}-{last - 1}"
    raise SimulationError(
        f"TCL simulation diverged in {cycles} (t = {first * period:g} to {last * period:g}): "
        f"{what}{where}. "
        "Lower the learning rate or the nudge, or raise the thresholds."
    )


def _initial_state(synapse, network, schedule, w, first):
    """(x, z, w) at the start: the free states of the first batch and every memory at its
    steady state for the free current."""
    inputs = schedule.inputs[schedule.rows(first)]
    x = jax.vmap(lambda i: network.equilibrium(w, i))(inputs)
    current = network.batch_current(x, w, inputs)
    return x, _each(lambda syn, s: syn.memory.steady_state(s), synapse, current), w


def _quasistatic(
    synapse,
    protocol,
    network,
    rule,
    schedule,
    signs,
    w,
    state0,
    first,
    n_cycles,
    levels,
    substeps,
    progress,
    checkpoint,
    chunk=25,
):
    period = float(protocol.period)
    times, weights, ramp, corners = _knots(protocol, levels, schedule.blend)
    shapes = np.concatenate([weights, ramp[:, None]], axis=1)
    responses = _each(
        lambda syn: cycle_response(
            syn.memory, times, shapes, syn.memory.kernel().timescale / 8, substeps, corners
        ),
        synapse,
    )
    free, z, _ = _initial_state(synapse, network, schedule, w, first) if state0 is None else state0
    carry, records = (z, w, free), []
    starts = range(first, first + n_cycles, chunk)
    for start in tqdm(starts, desc="TCL cycles", unit="chunk", disable=not progress):
        cycles = np.arange(start, min(start + chunk, first + n_cycles))
        try:
            following, record = _quasistatic_chunk(
                synapse, network, rule, schedule, levels, responses, carry, cycles, signs[cycles]
            )
        except (
            eqx.EquinoxRuntimeError
        ) as error:  # a runtime check of the network (e.g. non-finite state)
            _diverged(
                str(error).strip().splitlines()[0],
                start,
                start + len(cycles),
                period,
                checkpoint,
                carry,
            )
        _check_finite(following[:2], np.asarray(record), start, period, checkpoint, carry)
        carry = following
        records.append(np.asarray(record))
        if checkpoint is not None:
            save_state(checkpoint, (carry[2], *carry[:2]), period * (start + len(cycles)))
    record = np.concatenate(records)
    z, w, free = carry
    return TCLRun(
        period * np.arange(first, first + n_cycles),
        *record.T,
        (free, z, w),
        period * (first + n_cycles),
    )


def _relax(
    synapse, protocol, network, rule, schedule, signs, w, state0, first, n_cycles, integrator
):
    period = float(protocol.period)
    t0, t1 = first * period, (first + n_cycles) * period
    x, z, _ = _initial_state(synapse, network, schedule, w, first) if state0 is None else state0
    field = _Relaxation(
        synapse,
        jax.tree.map(lambda a: jnp.asarray(a, dtype=float), protocol),
        network,
        rule,
        schedule,
        signs,
    )
    starts = period * np.arange(first, first + n_cycles + 1)
    blend = period * (np.arange(first, first + n_cycles) + 1 - schedule.blend)
    saveat = diffrax.SaveAt(ts=jnp.asarray(starts))
    solution = integrator.solve(
        field,
        (x, z, w),
        protocol,
        t0,
        t1,
        saveat,
        diffrax.Kvaerno5(),
        mask=(True, False, False),
        extra_steps=blend,
    )
    xs, zs, ws = solution.ys

    def record(k, w_k, w_next):
        inputs, targets = schedule.inputs[schedule.rows(k)], schedule.targets[schedule.rows(k)]
        free = jax.vmap(lambda i: network.equilibrium(w_k, i))(inputs)
        return _record(network, rule, w_k, inputs, targets, free, w_next)

    cycles = jnp.arange(first, first + n_cycles)
    records = jax.vmap(record)(
        cycles, jax.tree.map(lambda a: a[:-1], ws), jax.tree.map(lambda a: a[1:], ws)
    )
    final = jax.tree.map(lambda a: a[-1], (xs, zs, ws))
    return TCLRun(starts[:-1], *np.asarray(records).T, final, t1)


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
