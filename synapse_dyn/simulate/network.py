"""Network-level Temporal Contrastive Learning: the schedule of mini-batches, the quasi-static
mode (exact linear memory between nudge levels) and the relaxation mode (the network state
as an ODE variable)."""

import functools
import warnings

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from synapse_dyn._checks import (
    require_finite,
    require_in_range,
    require_positive,
)
from synapse_dyn._progress import tqdm
from synapse_dyn._tracing import traced
from synapse_dyn.networks.resistor import Thevenin
from synapse_dyn.protocols import AbstractProtocol
from synapse_dyn.synapses.cycle import cycle_response, require_substeps
from synapse_dyn.synapses.memory import Synapse
from synapse_dyn.tasks import Task

from .checkpoint import Checkpointer, _check_finite

# the most substeps the adaptive quadrature refines to (each doubling compiles a new cycle)
MAX_SUBSTEPS = 48
# memory time scales after a corner by which its transient has decayed (t^2 e^{-t/tau} of the
# E. coli cascade: 1e-18 of its peak): the quadrature nodes are graded over that window, where
# u crosses the threshold, not over the whole stretch (tests/test_tcl_network.py measures the
# gain against an independent fine-grid integration)
SETTLE = 50.0


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


# parameter tensors up to this size that share a Synapse are propagated joined (``_shared``)
JOINED_SIZE = 2**14


def _shared(synapses, w) -> tuple[tuple[int, ...], ...]:
    """The parameter leaves grouped for ``_propagate`` (leaf indices): those of at most
    ``JOINED_SIZE`` entries by the Synapse object they share, each larger one alone. Joining
    shortens the program (one memory loop per group, not per tensor: a 3-6-4-2 Hopfield
    network's cycle compiled in 6.4 s instead of 10.4 s) but copies every input into the
    joined vector once per cycle: for the 392,000 weights of a 784-500-10 network that made
    the cycle 2.2-3x slower (131-165 ms, 54-62 ms unjoined), while for small tensors the
    copies cost less than the loop."""
    groups: dict[int, list[int]] = {}
    synapse_leaves = jax.tree.leaves(synapses, is_leaf=_is_synapse)
    for index, (syn, leaf) in enumerate(zip(synapse_leaves, jax.tree.leaves(w), strict=True)):
        key = id(syn) if np.size(leaf) <= JOINED_SIZE else -1 - index
        groups.setdefault(key, []).append(index)
    return tuple(tuple(group) for group in groups.values())


def _propagate(function, groups, synapses, per_group, *trees):
    """``function(synapse, group_data, *leaves)`` once per group of parameter leaves that
    share a Synapse (``_shared``), on the group's leaves raveled and joined (a leaf of a tree
    may carry trailing axes past the parameter's shape, e.g. the memory's state), and each
    output split back into the leaves: one memory loop per group, however many parameter
    tensors it holds (the program's size, so its compile time, grows with the loops)."""
    syn_leaves = jax.tree.leaves(synapses, is_leaf=_is_synapse)
    shapes = [np.shape(leaf) for leaf in jax.tree.leaves(trees[-1])]  # parameter-shaped
    leaves = [jax.tree.leaves(tree) for tree in trees]
    out = [None] * len(syn_leaves)
    for group, data in zip(groups, per_group, strict=True):
        offsets = np.cumsum([0, *(int(np.prod(shapes[i])) for i in group)])
        first = group[0]
        inputs = [  # a tree's leaves may carry trailing axes, e.g. the memory's state
            _join(
                [tree_leaves[i] for i in group],
                offsets,
                np.shape(tree_leaves[first])[len(shapes[first]) :],
            )
            for tree_leaves in leaves
        ]
        results = function(syn_leaves[first], data, *inputs)
        pieces = [jnp.split(r, offsets[1:-1]) for r in results]
        for k, i in enumerate(group):
            out[i] = tuple(
                jnp.reshape(piece[k], (*shapes[i], *np.shape(piece[k])[1:])) for piece in pieces
            )
    return jax.tree.unflatten(jax.tree.structure(trees[-1]), out)


def _join(leaves, offsets, tail):
    """The leaves raveled over their parameter axes into one array of shape
    (offsets[-1], *tail), leaf k in rows ``offsets[k]`` to ``offsets[k + 1]``; written slice
    by slice into one buffer: XLA's concatenation of leaves of very different sizes selects a
    leaf per element (joining all of a 784-500-10 network's leaves, the cycle took 165 ms by
    concatenation, 131 ms by slices)."""
    if len(leaves) == 1:
        return jnp.reshape(leaves[0], (offsets[-1], *tail))
    buffer = jnp.zeros((offsets[-1], *tail))
    for leaf, start, stop in zip(leaves, offsets[:-1], offsets[1:], strict=True):
        part = jnp.reshape(leaf, (stop - start, *tail))
        buffer = jax.lax.dynamic_update_slice_in_dim(buffer, part, start, axis=0)
    return buffer


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
    # |Delta w - Delta w_embedded| / |Delta w|: the quadrature's error estimate (NaN in
    # mode="relaxation", which diffrax solves to its own tolerance)
    quadrature_error: Float[Array, " cycles"]
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
    quadrature_rtol,
    progress,
    checkpoint,
    resume,
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
    if mode == "quasistatic":
        require_substeps(substeps)
    if quadrature_rtol is not None:
        require_positive("quadrature_rtol", quadrature_rtol)
    if thermal is not None and mode != "relaxation":
        raise ValueError(
            "thermal noise acts on the network state, which is an ODE variable only in "
            "mode='relaxation'."
        )
    if thermal is not None:  # dx/dt = -dF/dx / tau_network: mobility 1 / tau_network
        noise = thermal.noise.for_mobility(
            1.0 / network.relaxation_time, "network state (dx/dt = -dF/dx / tau_network)"
        )
        integrator = eqx.tree_at(lambda i: i.thermal.noise, integrator, noise)
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
    if n_cycles > integrator.max_steps:
        raise ValueError(
            f"[t0, t1] = [{t0:g}, {t1:g}] spans {n_cycles} protocol cycles, more than max_steps = "
            f"{integrator.max_steps} (each cycle is at least one step); raise max_steps or split "
            "the run with state0."
        )
    if checkpoint is not None and mode == "relaxation":
        raise ValueError(
            "checkpoint= saves quasi-static runs; in mode='relaxation' the run is one diffrax "
            "solve: split it into shorter runs (state0=run.state, t0=run.t1) to keep states."
        )
    if resume and checkpoint is None:
        raise ValueError("resume=True continues from a checkpoint: pass checkpoint=PATH too.")
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
    _require_unit_range(protocol)
    _warn_regimes(synapse, protocol, network, rule, schedule, w_start, mode, first)
    run = (synapse, protocol, network, rule, schedule, signs, w_start, state0, first, n_cycles)
    if mode == "relaxation":
        return _relax(*run, integrator)
    quadrature = (substeps, quadrature_rtol)
    configuration = (synapse, protocol, network, rule, schedule, levels, quadrature, first, seed)
    saver = Checkpointer(
        checkpoint, (configuration, state0 if state0 is not None else w_start), period
    )
    return _quasistatic(*run, levels, quadrature, progress, saver, resume)


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
    update = _norm(jax.tree.map(jnp.subtract, w_next, w))
    return jnp.stack([jnp.mean(loss), jnp.mean(correct), jnp.mean(energy), _norm(w), update])


@eqx.filter_jit
def _relaxation_records(network, rule, schedule, cycles, ws):
    """``_record`` of each cycle k of a relaxation run (parameters ``ws[k - first]`` at its
    start): its batch's free states, and the change to the next cycle's parameters. One
    program (eagerly, this bookkeeping cost 0.2 s per ``simulate`` call of an 8-node network)."""

    def record(k, w_k, w_next):
        inputs, targets = schedule.inputs[schedule.rows(k)], schedule.targets[schedule.rows(k)]
        free = jax.vmap(lambda i: network.equilibrium(w_k, i))(inputs)
        return _record(network, rule, w_k, inputs, targets, free, w_next)

    return jax.vmap(record)(
        cycles, jax.tree.map(lambda a: a[:-1], ws), jax.tree.map(lambda a: a[1:], ws)
    )


def _norm(tree):
    """The Euclidean norm of all leaves of a pytree together."""
    return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(tree)))


def _require_unit_range(protocol: AbstractProtocol) -> None:
    """Refuse a nudge protocol that leaves [0, 1] (it is linear between its corners)."""
    period = float(protocol.period)
    corners = np.unique(np.append(protocol.corners(), [0.0, period]))
    times = np.concatenate([corners, (corners[:-1] + corners[1:]) / 2])
    values = np.array([float(protocol(t)) for t in times[times < period]])
    if values.min() < -1e-12 or values.max() > 1 + 1e-12:
        raise ValueError(
            f"the nudge protocol must take values in [0, 1], got [{values.min():.3g}, "
            f"{values.max():.3g}]; scale it."
        )


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
    weights = np.clip(1 - np.abs(values[:, None] - grid[None, :]) * (levels - 1), 0.0, 1.0)
    ramp = (
        np.clip((np.asarray(times) / period - (1 - blend)) / blend, 0.0, 1.0)
        if blend > 0
        else np.zeros(len(times))
    )
    return np.asarray(times), weights, ramp, corners


def _has_thevenin(network) -> bool:
    """Whether the network is linear in its state and answers every perturbation of a batch
    from its Thevenin equivalent at the outputs (``ResistorNetwork.thevenin``)."""
    return hasattr(network, "thevenin")


# per cycle: loss, accuracy, energy, parameter norm, update norm (``_record``), quadrature error
RECORDED = 6


@eqx.filter_jit
def _quasistatic_chunk(
    synapse,
    network,
    rule,
    schedule,
    levels,
    groups,
    responses,
    carry,
    cycles,
    signs,
    count,
    thevenin,
):
    """The first ``count`` of ``cycles`` (with their signs) as TCL cycles, in one loop whose
    length is data: chunks of any length up to ``len(cycles)`` run one compiled program (the
    records of the cycles past ``count`` stay zero). ``thevenin``: for a linear network, every
    relaxation under one set of parameters (the free states of the next batch, of the one
    after it, and the Thevenin gain that gives the perturbed levels of a batch) from one
    factorisation, instead of one relaxation per level and sample."""

    def settle(w, inputs):
        """Free states of ``inputs`` under w, and the Thevenin gain (None: relax every
        level)."""
        if thevenin:
            states, equivalent = network.thevenin(w, inputs)
            return states, equivalent.gain
        return jax.vmap(lambda i: network.equilibrium(w, i))(inputs), None

    def cycle(carry, cycle_sign):
        # the free states of this batch were relaxed at the end of the previous cycle, as its
        # inputs came in, and again under the updated parameters; those of the next batch
        # (arriving) under the parameters of this cycle
        z, w, free, arriving, gain = carry
        k, sign = cycle_sign
        inputs, targets = schedule.inputs[schedule.rows(k)], schedule.targets[schedule.rows(k)]
        following = schedule.inputs[schedule.rows(k + 1)]
        signed = sign * rule.strength
        perturbed = network if gain is None else Thevenin(network, gain)
        nudged = jax.vmap(
            lambda b: jax.vmap(lambda i, y, x: rule.perturb(perturbed, w, i, y, x, b))(
                inputs, targets, free
            )
        )(signed * jnp.linspace(0.0, 1.0, levels)[1:])
        # one contraction over the batch per level, kept as separate arrays that the memory
        # reads in place (stacking them would write and read every level once more)
        unstacked = [jax.tree.map(lambda a, k=k: a[k], nudged) for k in range(levels - 1)]
        level_currents = [network.batch_current(x, w, inputs) for x in [free, *unstacked]]
        free_current = level_currents[0]
        arriving_current = network.batch_current(arriving, w, following)
        switch = jax.tree.map(jnp.subtract, arriving_current, free_current)

        def propagate(syn, response, z_, switch_s, *levels_s):
            # amplitudes of the shapes: level currents relative to the setpoint, then the blend
            amplitudes = [s - syn.memory.setpoint for s in levels_s]
            return response(syn.nonlinearity, [*amplitudes, switch_s], z_)

        propagated = _propagate(propagate, groups, synapse, responses, z, switch, *level_currents)
        step = _each(lambda syn, p: syn.learning_rate * p[1] / signed, synapse, propagated)
        w_new = network.project(jax.tree.map(jnp.subtract, w, step))
        embedded = _each(lambda syn, p: syn.learning_rate * p[2] / signed, synapse, propagated)
        # the network settles under the new parameters; their change is slow next to the
        # memory (weights move little per cycle), which follows the current it causes. Both
        # free states of the next batch are relaxed alike (from the solver's initial state),
        # so their difference is the parameters' change alone, also for a solver stopped
        # after a fixed number of sweeps
        after = schedule.inputs[schedule.rows(k + 2)]
        states, gain_next = settle(w_new, jnp.concatenate([following, after]))
        free_next, arriving_next = (
            jax.tree.map(lambda a: a[: len(following)], states),
            jax.tree.map(lambda a: a[len(following) :], states),
        )
        drift = jax.tree.map(
            jnp.subtract, network.batch_current(free_next, w_new, following), arriving_current
        )
        z_new = _each(lambda syn, p, d: syn.memory.follow(p[0], d), synapse, propagated, drift)
        record = _record(network, rule, w, inputs, targets, free, w_new)
        error = _norm(jax.tree.map(jnp.subtract, step, embedded)) / jnp.maximum(_norm(step), 1e-300)
        return (z_new, w_new, free_next, arriving_next, gain_next), jnp.append(record, error)

    def advance(i, state):
        carry, records = state
        carry, record = cycle(carry, (cycles[i], signs[i]))
        return carry, records.at[i].set(record)

    z, w, free = carry
    arriving, gain = settle(w, schedule.inputs[schedule.rows(cycles[0] + 1)])
    records = jnp.zeros((len(cycles), RECORDED))
    (z, w, free, _, _), records = jax.lax.fori_loop(
        0, count, advance, ((z, w, free, arriving, gain), records)
    )
    return (z, w, free), records


def _initial_state(synapse, network, schedule, w, first):
    """(x, z, w) at the start: the free states of the first batch and every memory at its
    steady state for the free current. One compiled program, the models' numbers and
    ``first`` as data (``traced``): run eagerly, the vmap over the batch dispatched every
    operation alone, 47 % of simulate's Python time in 100 seeded runs of an 8-node relaxing
    network (py-spy)."""
    return _settle_first_batch(*traced((synapse, network, schedule)), w, jnp.asarray(first))


@eqx.filter_jit
def _settle_first_batch(synapse, network, schedule, w, first):
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
    quadrature,
    progress,
    saver,
    resume,
    chunk=25,
):
    period = float(protocol.period)
    times, weights, ramp, corners = _knots(protocol, levels, schedule.blend)
    shapes = np.concatenate([weights, ramp[:, None]], axis=1)
    substeps, rtol = quadrature

    groups = _shared(synapse, w)

    @functools.cache
    def responses(n):
        def response(syn):
            timescale = syn.memory.kernel().timescale
            return cycle_response(
                syn.memory, times, shapes, timescale / 8, n, corners, SETTLE * timescale
            )

        syn_leaves = jax.tree.leaves(synapse, is_leaf=_is_synapse)
        return tuple(response(syn_leaves[group[0]]) for group in groups)

    saved = saver.resume(first, n_cycles) if resume else None
    if saved is None:
        initial = _initial_state(synapse, network, schedule, w, first)
        free, z, _ = initial if state0 is None else state0
        carry, resumed_at, records = (z, w, free), first, []
    else:
        carry, resumed_at, records = saved
    # chunks stay aligned on ``first``, so that a run resumed from its own checkpoint repeats
    # the same computations (a checkpoint of a shorter run may end inside a chunk)
    end = first + n_cycles
    bounds = [resumed_at, *(s for s in range(first, end, chunk) if s > resumed_at), end]
    todo = [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    models = traced((synapse, network, rule, schedule))  # their numbers as data: one program
    for start, stop in tqdm(todo, desc="TCL cycles", unit="chunk", disable=not progress):
        cycles = np.arange(start, stop)
        padded = np.pad(cycles, (0, chunk - len(cycles)), mode="edge")  # one program
        # adaptive quadrature: each chunk from ``substeps``, doubled until the error estimate
        # of every cycle is below rtol (a chunk's result does not depend on earlier chunks'
        # refinements, so a resumed run repeats the uninterrupted one)
        n = substeps
        while True:
            following, record = _quasistatic_chunk(
                *models,
                levels,
                groups,
                responses(n),
                carry,
                padded,
                signs[padded],
                jnp.asarray(len(cycles)),
                _has_thevenin(network),
            )
            record = np.asarray(record)[: len(cycles)]
            worst = float(np.nanmax(np.asarray(record)[:, -1]))
            if rtol is None or not worst > rtol or n >= MAX_SUBSTEPS:
                break
            n *= 2
        if rtol is not None and worst > rtol:
            warnings.warn(
                f"cycles {start}-{stop - 1}: quadrature error estimate {worst:.2g} > "
                f"quadrature_rtol = {rtol:g} at {n} substeps (the most); see run.quadrature_error.",
                stacklevel=3,
            )
        _check_finite(following, np.asarray(record), start, saver, carry, records)
        carry = following
        records.append(np.asarray(record))
        saver.save(carry, stop, records, force=stop == end)
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
        names=("network state x", "memory z", "parameters w"),
    )
    xs, zs, ws = solution.ys
    records = _relaxation_records(network, rule, schedule, jnp.arange(first, first + n_cycles), ws)
    final = jax.tree.map(lambda a: a[-1], (xs, zs, ws))
    return TCLRun(starts[:-1], *np.asarray(records).T, np.full(n_cycles, np.nan), final, t1)
