"""The weight update over one protocol period, Delta = integral_0^T g(u(t)) dt, in the periodic
steady state of the memory (the parameter itself moves by -alpha * Delta).

Two independent routes:

* ``cycle_update``: the exact fast path for linear memory. u = K * s is linear in the signal,
  so for s(t) = mean + A phi(t) one periodic convolution v = K * phi (an FFT on a uniform grid,
  trapezoid weights for the periodised kernel) serves every amplitude:
  u_A(t) = I mean + A v(t). Because g is piecewise polynomial, the sum over grid points of
  g(I mean + A v_j) is a sum of power sums of v over the index ranges where u_A falls in each
  piece; with v sorted these ranges are two binary searches per piece, so a sweep over n_A
  amplitudes costs O(N log N + n_A log N) instead of O(n_A N).
* ``synapse_dyn.simulate.cycle_update_ode``: integrate the memory ODE and the weight together
  with diffrax, the protocol's corners declared to the step-size controller.

For many synapses driven by combinations of the same piecewise-linear current shapes (the
network simulation), ``cycle_response`` precomputes the exact linear response once and
``CycleResponse`` applies it per cycle.
"""

import functools
import math
import warnings
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import concrete, require_finite, require_nonempty, require_positive
from synapse_dyn.protocols import AbstractProtocol, Sawtooth, sample

from .kernels import AbstractKernel
from .memory import AbstractLinearMemory
from .nonlinearities import AbstractNonlinearity


def wraps_needed(kernel: AbstractKernel, period) -> int:
    """How many periods the kernel spans (the static size of its periodisation)."""
    period = concrete(period)
    if period is None:
        raise ValueError(
            "the protocol period is traced (inside jit/vmap); pass n_wraps explicitly, e.g. "
            "wraps_needed(kernel, smallest_period)."
        )
    return int(math.ceil(kernel.support / float(np.min(period)))) + 1


def kernel_weights(kernel: AbstractKernel, period, n_grid: int, n_wraps: int) -> Float[Array, " n"]:
    """Weights w_j of the periodic quadrature u(t_i) = dt sum_j w_j s(t_i - t_j): the
    periodised kernel K_T(t_j) = sum_m K(t_j + m T), plus the feedthrough d as a discrete
    delta d/dt.

    The first two samples carry end corrections chosen so that the weights reproduce the
    kernel's area and first moment exactly: linear stretches of the signal (the sawtooth's
    ramps) are then convolved without discretisation error.
    """
    dt = period / n_grid
    t = dt * jnp.arange(n_grid * n_wraps)
    values = kernel(t)
    area_error = kernel.area - kernel.feedthrough - dt * jnp.sum(values)
    moment_error = kernel.first_moment - dt * jnp.sum(t * values)
    second = moment_error / dt**2
    values = values.at[1].add(second).at[0].add(area_error / dt - second + kernel.feedthrough / dt)
    return values.reshape(n_wraps, n_grid).sum(axis=0)


def periodic_response(
    kernel: AbstractKernel,
    signal: AbstractProtocol,
    n_grid: int = 2**15,
    n_wraps: int | None = None,
) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    """(t, u) on a uniform grid over one period: u = d s + K * s in the periodic steady state."""
    n_wraps = wraps_needed(kernel, signal.period) if n_wraps is None else n_wraps
    period = signal.period
    dt = period / n_grid
    t = dt * jnp.arange(n_grid)
    weights = kernel_weights(kernel, period, n_grid, n_wraps)
    s = sample(signal, t)
    u = dt * jnp.fft.irfft(jnp.fft.rfft(weights) * jnp.fft.rfft(s), n=n_grid)
    return t, u


def occupation_sum(
    nonlinearity: AbstractNonlinearity,
    v_sorted: Float[Array, " n"],
    offset: Float[ArrayLike, ""],
    amplitudes: Float[ArrayLike, " a"],
) -> Float[Array, " a"]:
    """sum_j g(offset + A v_j) for every amplitude A >= 0, exactly, with v sorted ascending."""
    edges, coeffs = nonlinearity.pieces()
    degree = coeffs.shape[1] - 1
    powers = v_sorted[None, :] ** jnp.arange(degree + 1)[:, None]
    prefix = jnp.concatenate([jnp.zeros((degree + 1, 1)), jnp.cumsum(powers, axis=1)], axis=1)
    orders = range(degree + 1)
    binomial = np.array([[math.comb(m, r) for r in orders] for m in orders], dtype=float)
    exponent = np.maximum(np.subtract.outer(orders, orders), 0)

    def one(amplitude):
        positive = amplitude > 0
        scaled = (edges - offset) / jnp.where(positive, amplitude, 1.0)
        cuts = jnp.where(positive, scaled, jnp.where(edges > offset, jnp.inf, -jnp.inf))
        index = jnp.searchsorted(v_sorted, cuts, side="left")
        sums = prefix[:, index[1:]] - prefix[:, index[:-1]]  # (r, piece)
        # sum_j (offset + A v_j)^m = sum_r C(m, r) offset^(m-r) A^r S_r
        expand = binomial * offset**exponent * amplitude ** jnp.arange(degree + 1)[None, :]
        return jnp.sum(coeffs * (expand @ sums).T)

    return jax.vmap(one)(jnp.asarray(amplitudes, dtype=float))


def cycle_update(
    kernel: AbstractKernel,
    nonlinearity: AbstractNonlinearity,
    shape: AbstractProtocol,
    amplitudes: Float[ArrayLike, " a"],
    mean: Float[ArrayLike, ""] = 0.0,
    n_grid: int = 2**15,
    n_wraps: int | None = None,
) -> Float[Array, " a"]:
    """Delta(A) = integral over one period of g(u) for the signal s(t) = mean + A shape(t),
    for every amplitude A, by the exact fast path for linear memory (module docstring).

    ``shape`` is a periodic protocol of unit amplitude, e.g. ``Sawtooth(tau_fast, tau_slow,
    free=-0.5, clamped=0.5)``. Accuracy is that of the periodic trapezoid rule on ``n_grid``
    points per period (relative error ~1e-4 at the default for the paper's protocols).
    """
    if not isinstance(n_grid, int) or n_grid < 16:
        raise ValueError(f"n_grid must be an integer >= 16, got {n_grid!r}.")
    if shape.period is None:
        raise ValueError(f"shape must be a periodic protocol, got {type(shape).__name__}.")
    amplitudes_concrete = concrete(amplitudes)
    if amplitudes_concrete is not None:
        require_nonempty("amplitudes", amplitudes_concrete)
        require_positive("amplitudes", amplitudes_concrete, allow_zero=True)
    require_finite("mean", mean)
    warn_if_fast_ramp_short(kernel, shape)
    _, v = periodic_response(kernel, shape, n_grid, n_wraps)
    dt = shape.period / n_grid
    return dt * occupation_sum(nonlinearity, jnp.sort(v), mean * kernel.area, amplitudes)


def warn_if_fast_ramp_short(kernel: AbstractKernel, shape: AbstractProtocol) -> None:
    """Warn when a sawtooth's fast ramp is shorter than 10 kernel times: the kernel then
    smooths the ramp and the update underestimates the contrast (tcl_model.md, Sec. 2.4)."""
    if not isinstance(shape, Sawtooth):
        return
    fast = concrete(jnp.minimum(shape.tau_fast, shape.tau_slow))
    if fast is None:
        return
    ratio = float(np.min(fast)) / kernel.timescale
    if ratio < 10:
        warnings.warn(
            f"the sawtooth's fast ramp is {ratio:.3g} kernel times long (tau_fast/tau_K < 10): "
            "the kernel smooths it, the peak of u stays below A/tau_fast and the update "
            "underestimates the contrast; lengthen tau_fast or shorten the kernel.",
            stacklevel=3,
        )


def _reaches(maps, axis) -> tuple:
    """Which inputs reach the outputs: ``maps`` nonzero anywhere along ``axis``, as nested
    tuples of bools (hashable: a static field)."""
    used = np.any(np.asarray(maps) != 0, axis=axis)
    return tuple(map(tuple, used.tolist())) if used.ndim > 1 else tuple(used.tolist())


class CycleResponse(eqx.Module):
    """A linear memory's response over one cycle to a current that is a combination of fixed
    piecewise-linear shapes, s(t) - u0 = sum_m a_m phi_m(t), starting from the state z0.

    dz/dt = M z + b (s - u0) and u = c.z + d (s - u0) are linear, so u at every quadrature node,
    integral u dt over every stretch and the final state are fixed linear maps of the inputs
    (a, z0), computed once (``cycle_response``) with no discretisation error. A cycle of any
    number of synapses then costs, per synapse, the combinations of its inputs and, per
    stretch, the integral of g(u) (``AbstractNonlinearity.integral``: exact where u stays on
    one affine piece of g): one fused elementwise loop over the synapses. The maps are data
    (a memory with other time scales runs the same program); which inputs reach each stretch
    is static (a level's shape is zero on the stretches before the ramp crosses it), so the
    others are left out of the program.
    """

    nodes: Float[Array, "stretch input node_area"]  # u at the nodes, then the stretch's area
    steps: Float[Array, "stretch spacing"]  # node spacings
    final: Float[Array, "input state"]
    used: tuple = eqx.field(static=True)  # (inputs reaching each stretch, the final state)

    def __init__(self, nodes, steps, final):
        self.nodes, self.steps, self.final = map(jnp.asarray, (nodes, steps, final))
        self.used = (_reaches(self.nodes, 2), _reaches(self.final, 1))

    def __call__(
        self,
        nonlinearity: AbstractNonlinearity,
        amplitudes: Sequence[Float[Array, "..."]],
        z0: Float[Array, "... n"],
    ) -> tuple[Float[Array, "... n"], Float[Array, "..."], Float[Array, "..."]]:
        """(z at the end of the cycle, integral of g(u) over it, the same integral by the
        embedded rule on every other node) for the amplitudes a_m of the shapes (one array, or
        row, per shape) and the initial memory states z0 (last axis). The rule is second
        order in the node spacing, so the embedded rule errs about 4 times more than the
        full one: their difference bounds the full rule's error."""
        inputs = [*amplitudes, *jnp.moveaxis(z0, -1, 0)]
        zero = jnp.zeros(jnp.broadcast_shapes(*map(jnp.shape, inputs)))

        def combine(weights, used):
            terms = zip(weights, used, inputs, strict=True)
            return sum((w * x for w, on, x in terms if on), zero)

        total, embedded = zero, zero
        reaching, reaching_final = self.used
        for maps, used, steps in zip(self.nodes, reaching, self.steps, strict=True):
            values = [combine(maps[:, j], used) for j in range(maps.shape[1])]
            nodes, area = values[:-1], values[-1]
            spacings = list(steps)
            total = total + nonlinearity.integral(nodes, spacings, area)
            every_other = [*range(0, len(spacings), 2), len(spacings)]
            coarse = [
                sum(spacings[a:b]) for a, b in zip(every_other[:-1], every_other[1:], strict=True)
            ]
            embedded = embedded + nonlinearity.integral(
                [nodes[i] for i in every_other], coarse, area
            )
        columns = range(self.final.shape[1])
        final = jnp.stack([combine(self.final[:, j], reaching_final) for j in columns], -1)
        return final, total, embedded


def require_substeps(substeps) -> None:
    """Refuse a quadrature of fewer than 2 intervals per stretch."""
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 2:
        raise ValueError(
            f"substeps must be an integer >= 2 (the error estimate drops every other node), "
            f"got {substeps!r}."
        )


def cycle_response(
    memory: AbstractLinearMemory,
    times: Float[ArrayLike, " k"],
    shapes: Float[ArrayLike, "k m"],
    resolution: float,
    substeps: int = 8,
    corners: Float[ArrayLike, " c"] | None = None,
    settle: float = np.inf,
) -> CycleResponse:
    """The ``CycleResponse`` of ``memory`` to shapes known at the knot ``times`` (linear in
    between; equal times make a jump) over [times[0], times[-1]].

    The quadrature nodes: ``substeps`` intervals from each of the ``corners`` (default: every
    knot) to the next, geometrically graded from ``resolution`` (a fraction of the memory's
    time scale) up to ``settle`` after the corner (where its transient has decayed, and u
    crosses the nonlinearity's kinks) with all but the last eighth of them, and on to the next
    corner with those (``settle = inf``: one grading over the stretch). u at the nodes is
    exact whatever knots lie between them: the memory is propagated through every knot and
    node by matrix exponentials of the augmented system d(z, s, s', q)/dt = (M z + b s, s', 0,
    u), so only the integral of g(u) - u between nodes (exact for u linear between them)
    approximates.
    Give as corners the times where the current's slope changes much (a protocol's corners),
    not the small kinks between them, to spend the nodes where the transients are.
    """
    times = np.asarray(times, dtype=float)
    values = np.asarray(shapes, dtype=float)
    if times.ndim != 1 or times.size < 2 or np.any(np.diff(times) < 0):
        raise ValueError("cycle_response needs at least two non-decreasing knot times.")
    if np.ptp(times) <= 0:
        raise ValueError("cycle_response needs knot times spanning a positive duration.")
    require_substeps(substeps)
    marks = times if corners is None else np.asarray(corners, dtype=float)
    starts = np.unique(np.append(marks[(marks > times[0]) & (marks < times[-1])], times[0]))
    ends = np.append(starts[1:], times[-1])
    spans = ends - starts
    # inner nodes graded geometrically from ``resolution`` to ``settle`` (the transient after
    # a corner), then on to the stretch's end over its last eighth of intervals; where the
    # stretch is too short for that, one geometric grading over all of it
    tail = max(1, substeps // 8)
    smallest = np.clip(resolution / spans, 1e-12, 1.0 / substeps)
    upper = np.clip(settle / spans, smallest, smallest ** (tail / (substeps - 1)))
    fractions = np.concatenate(
        [
            np.geomspace(smallest, upper, substeps - tail, axis=1),
            np.geomspace(upper, np.ones_like(upper), tail + 1, axis=1)[:, 1:-1],
        ],
        axis=1,
    )
    nodes = starts[:, None] + spans[:, None] * np.concatenate(
        [np.zeros((len(spans), 1)), fractions, np.ones((len(spans), 1))], axis=1
    )
    nodes[:, -1] = ends

    # the evaluation grid: every knot and node; each interval lies within one knot piece
    grid = np.unique(np.concatenate([times, nodes.ravel()]))
    piece = np.clip(np.searchsorted(times, grid[:-1], side="right") - 1, 0, len(times) - 2)
    length = np.where(times[piece + 1] > times[piece], times[piece + 1] - times[piece], 1.0)
    slope = (values[piece + 1] - values[piece]) / length[:, None]
    start_value = values[piece] + (grid[:-1] - times[piece])[:, None] * slope
    steps = np.diff(grid)

    state_space = memory.state_space()
    # e^{A h} = (e^{A h / 2^k})^(2^k), with |A h| / 2^k small enough for the Pade approximant
    entries = max(float(np.max(np.abs(part), initial=0.0)) for part in state_space)
    squarings = max(0, math.ceil(math.log2(max(entries, 1.0) * (1 + steps.max()) / 1e3)))
    # the rest is bookkeeping on small arrays, in NumPy: as JAX operations outside a program
    # each would compile on its own (about 30 of them, 1-2 s for every new grid)
    u_start, u_end, areas, final = map(
        np.asarray, _unit_responses(state_space, steps, start_value, slope, squarings)
    )
    # node j of a stretch: the right limit at its start, then left limits at interval ends
    index = np.searchsorted(grid, nodes)
    at_nodes = np.concatenate([u_start[:, index[:, :1]], u_end[:, index[:, 1:] - 1]], axis=2)
    cumulative = np.concatenate([np.zeros((areas.shape[0], 1)), np.cumsum(areas, axis=1)], 1)
    stretch_areas = cumulative[:, index[:, -1]] - cumulative[:, index[:, 0]]
    outputs = np.concatenate([at_nodes, stretch_areas[:, :, None]], axis=2)  # (m+n, c, nodes+1)
    return CycleResponse(np.moveaxis(outputs, 0, 1), np.diff(nodes, axis=1), final)


@functools.partial(jax.jit, static_argnums=4)
def _unit_responses(state_space, steps, start_values, slopes, squarings):
    """For each unit input (the m shapes with z0 = 0, then each unit z0 with no current) and
    each grid interval: u at its start (right limit) and end (left limit), integral u dt over
    it, and the final state (m + n, n). The augmented state is (z, s, s', q), dq/dt = u."""
    matrix, b, c, d = state_space
    n, m = matrix.shape[0], start_values.shape[1]
    augmented = (
        jnp.zeros((n + 3, n + 3))
        .at[:n, :n]
        .set(matrix)
        .at[:n, n]
        .set(b)
        .at[n, n + 1]
        .set(1.0)
        .at[n + 2, :n]
        .set(c)
        .at[n + 2, n]
        .set(d)
    )

    def propagator(h):
        small = jax.scipy.linalg.expm(augmented * h / 2**squarings)
        return jax.lax.fori_loop(0, squarings, lambda _, p: p @ p, small)

    intervals = steps.shape[0]
    inputs = (
        jax.vmap(propagator)(steps),
        jnp.concatenate([start_values, jnp.zeros((intervals, n))], axis=1),
        jnp.concatenate([slopes, jnp.zeros((intervals, n))], axis=1),
    )

    def interval(z, inputs):
        propagator, start, slope = inputs  # (n+3, n+3), (m+n,), (m+n,)
        y = jnp.concatenate([z, start[:, None], slope[:, None], jnp.zeros((m + n, 1))], axis=1)
        end = y @ propagator.T
        u_start = z @ c + d * start
        u_end = end[:, :n] @ c + d * end[:, n]
        return end[:, :n], (u_start, u_end, end[:, n + 2])

    z0 = jnp.concatenate([jnp.zeros((m, n)), jnp.eye(n)])
    final, (u_start, u_end, areas) = jax.lax.scan(interval, z0, inputs)
    return u_start.T, u_end.T, areas.T, final
