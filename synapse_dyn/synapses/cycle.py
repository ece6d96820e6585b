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
* ``cycle_update_ode``: integrate the memory ODE and the weight together with diffrax, the
  protocol's corners declared to the step-size controller.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from protocols import AbstractProtocol, Sawtooth, sample
from synapse_dyn._checks import concrete, require_finite, require_nonempty, require_positive

from .kernels import AbstractKernel
from .memory import AbstractLinearMemory, Synapse
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


def cycle_update_ode(
    synapse: Synapse,
    signal: AbstractProtocol,
    warmup_cycles: int = 2,
    rtol: float = 1e-9,
    atol: float = 1e-12,
) -> Float[Array, ""]:
    """Delta = integral over one period of g(u) from a diffrax solve of the memory ODE and
    the weight together (after ``warmup_cycles`` periods to reach the periodic steady state):
    Delta = -(w(end) - w(end - T)) / learning_rate."""
    from synapse_dyn.simulate import simulate

    period = float(signal.period)
    t1 = (warmup_cycles + 1) * period
    solution = simulate(
        synapse, signal, t1=t1, saveat=jnp.array([t1 - period, t1]), rtol=rtol, atol=atol
    )
    weights = solution.ys[1]
    return -(weights[1] - weights[0]) / synapse.learning_rate


def propagate_linear(
    memory: AbstractLinearMemory,
    nonlinearity: AbstractNonlinearity,
    z0: Float[Array, "... n"],
    times: Float[Array, " k"],
    values: Float[Array, "k ..."],
    resolution: float,
    substeps: int = 24,
) -> tuple[Float[Array, "... n"], Float[Array, "..."]]:
    """Exact propagation of a linear memory, dz/dt = M z + b (s - u0), through a current s
    that is piecewise linear between (times[j], values[j]) (equal times make a jump), and
    the integral of g(u) over [times[0], times[-1]].

    Each piece is cut into ``substeps`` intervals, geometrically graded from ``resolution``
    (a fraction of the memory's time scale, where the transient after a corner lives) up to
    the piece length, and each interval is one matrix exponential of the augmented system
    d(z, s, s')/dt = (M z + b s, s', 0): the memory has no discretisation error and g(u) is
    integrated by the trapezoid rule on the graded points. Returns (z at times[-1], integral).
    """
    matrix, b, c, d = memory.state_space()
    n = matrix.shape[0]
    augmented = (
        jnp.zeros((n + 2, n + 2)).at[:n, :n].set(matrix).at[:n, n].set(b).at[n, n + 1].set(1.0)
    )
    lengths = jnp.diff(times)
    smallest = jnp.clip(resolution / jnp.where(lengths > 0, lengths, 1.0), 1e-12, 1.0 / substeps)
    nodes = jnp.concatenate(
        [
            jnp.zeros((lengths.shape[0], 1)),
            smallest[:, None] ** (1 - jnp.arange(substeps) / (substeps - 1))[None, :],
        ],
        axis=1,
    )
    steps = lengths[:, None] * jnp.diff(nodes, axis=1)  # (pieces, substeps)
    propagators = jax.vmap(jax.vmap(lambda h: jax.scipy.linalg.expm(augmented * h)))(steps)
    expand = (-1,) + (1,) * (values.ndim - 1)
    safe = jnp.where(lengths > 0, lengths, 1.0).reshape(expand)
    slopes = jnp.where((lengths > 0).reshape(expand), jnp.diff(values, axis=0) / safe, 0.0)

    def output(y):
        return y[..., :n] @ c + d * y[..., n]

    def substep(state, inputs):
        y, total = state
        propagator, step = inputs
        following = y @ propagator.T
        total = total + 0.5 * step * (nonlinearity(output(y)) + nonlinearity(output(following)))
        return (following, total), None

    def piece(carry, inputs):
        z, total = carry
        propagator, step, start, slope = inputs
        y = jnp.concatenate([z, (start - memory.setpoint)[..., None], slope[..., None]], axis=-1)
        (y, total), _ = jax.lax.scan(substep, (y, total), (propagator, step))
        return (y[..., :n], total), None

    total0 = jnp.zeros(values.shape[1:])
    (z, total), _ = jax.lax.scan(piece, (z0, total0), (propagators, steps, values[:-1], slopes))
    return z, total
