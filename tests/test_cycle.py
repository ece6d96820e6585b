"""The per-cycle update: reference values of the paper's synapse analysis, and the exact fast
path against the diffrax solution of the memory ODE."""

import jax.numpy as jnp
import numpy as np
import pytest

from synapse_dyn import protocols as P
from synapse_dyn.simulate import cycle_update_ode, simulate
from synapse_dyn.synapses import (
    Cubic,
    DeadZone,
    EColiCascade,
    EColiKernel,
    Identity,
    IntegralFeedback,
    Synapse,
    cycle_response,
    cycle_update,
    occupation_sum,
    periodic_response,
)

KERNEL = EColiKernel(area=0.0, rate=20.0)
SHAPE = P.Sawtooth(1.0, 9.0, free=-0.5, clamped=0.5)


def test_reference_response_curve():
    # tcl_model.md Sec. 2.4 / issue 2: tau_f = 1, tau_s = 9, theta = 100/9, I = 0, mean 0
    amplitudes = jnp.array([5.0, 10.0, 20.0, 50.0, 100.0, 120.0])
    ratio = cycle_update(KERNEL, DeadZone(100 / 9), SHAPE, amplitudes) / amplitudes
    np.testing.assert_allclose(ratio[:2], 0.0, atol=1e-12)
    np.testing.assert_allclose(ratio[2:5], [0.906, 0.955, 0.963], rtol=1e-2)
    assert 0 <= ratio[5] < 0.01


@pytest.mark.parametrize("ratio, expected", [(1, 0.263), (2, 0.497), (4, 0.812), (10, 0.997)])
def test_peak_of_u_over_fast_slope(ratio, expected):
    tau_fast = ratio * 0.05
    _, v = periodic_response(KERNEL, P.Sawtooth(tau_fast, 1000 * tau_fast, -0.5, 0.5), 2**16)
    np.testing.assert_allclose(float(v.max()) * tau_fast, expected, rtol=1e-2)


def test_slow_ramp_is_reproduced_exactly():
    _, v = periodic_response(KERNEL, SHAPE)
    np.testing.assert_allclose(float(v.min()), -1 / 9, rtol=1e-9)


@pytest.mark.parametrize(
    "memory, kernel, g, amplitude, mean",
    [
        (EColiCascade(0.05), KERNEL, DeadZone(100 / 9), 20.0, 0.0),
        (EColiCascade(0.05), KERNEL, DeadZone(100 / 9), 50.0, 0.0),
        (EColiCascade(0.05, area=0.05), EColiKernel(0.05, 20.0), DeadZone(100 / 9), 40.0, 25.0),
        (EColiCascade(0.05), KERNEL, Cubic(10.0), 30.0, 0.0),
        (IntegralFeedback(0.05, leak_time=5.0), None, DeadZone(0.5), 40.0, 5.0),
    ],
)
def test_fast_path_agrees_with_the_memory_ode(memory, kernel, g, amplitude, mean):
    kernel = memory.kernel() if kernel is None else kernel
    fast = cycle_update(kernel, g, SHAPE, jnp.array([amplitude]), mean)[0]
    signal = P.Sawtooth(1.0, 9.0, free=mean - amplitude / 2, clamped=mean + amplitude / 2)
    ode = cycle_update_ode(Synapse(memory, g, learning_rate=0.5), signal)
    assert abs(fast) > 1.0
    np.testing.assert_allclose(fast, ode, rtol=1e-3)


@pytest.mark.parametrize(
    "memory, g",
    [
        (EColiCascade(0.05), DeadZone(3.0)),
        (EColiCascade(0.05, area=0.05, setpoint=0.5), DeadZone(3.0)),
        (IntegralFeedback(0.1, leak_time=2.0), DeadZone(0.3)),
    ],
)
def test_cycle_response_agrees_with_the_memory_ode(memory, g):
    """The exact propagation used by the network simulation (u linear in the shape amplitudes
    and the initial state) against diffrax on the same piecewise-linear currents, with a
    jump, for a few synapses with different amplitudes; threshold crossings inside the
    transients after corners converge with the number of substeps."""
    times = np.array([0.0, 0.4, 1.0, 1.0, 3.0, 6.0])
    shapes = np.array([[0, 1, 1, 0.5, 0.2, 0], [1, 1, 0.5, 0.5, 0.8, 1.0]]).T
    amplitudes = np.array([[2.0, -1.0, 0.3], [0.5, 1.5, -2.0]])  # (shape, synapse)
    current = shapes @ amplitudes + memory.setpoint  # (knot, synapse)
    z0 = memory.steady_state(jnp.asarray(current[0]))
    response = cycle_response(memory, times, shapes, resolution=0.05 / 8, substeps=48)
    z1, integral, _ = response(g, jnp.asarray(amplitudes), z0)
    for k in range(current.shape[1]):
        knots = np.r_[times[:3], times[3] + 1e-9, times[4:]]  # the jump, as a steep ramp
        signal = P.PiecewiseLinear(jnp.asarray(knots), jnp.asarray(current[:, k]), periodic=False)
        solution = simulate(
            Synapse(memory, g, learning_rate=1.0), signal, t1=times[-1], rtol=1e-10, atol=1e-12
        )
        np.testing.assert_allclose(z1[k], solution.ys[0][-1], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(integral[k], -solution.ys[1][-1], rtol=3e-3, atol=1e-3)
    assert np.max(np.abs(integral)) > 0.1


def test_cycle_response_survives_very_long_pieces():
    """A slow ramp of 2e8 kernel times: each cascade stage lags the ramp s = -t / L by
    k tau_K, so at its end y_k = k tau_K / L (no overflow of the matrix exponentials)."""
    length = 1e7
    response = cycle_response(
        EColiCascade(0.05),
        np.array([0.0, 1.0, 1.0 + length]),
        np.array([[0.0, 1.0, 0.0]]).T,
        0.05 / 8,
    )
    z1, _, _ = response(DeadZone(1e-12), jnp.ones((1, 1)), jnp.zeros((1, 3)))
    np.testing.assert_allclose(z1[0], 0.05 * np.arange(1, 4) / length, rtol=1e-6)


def test_reversed_sawtooth_reverses_the_update_and_identity_gives_none():
    amplitudes = jnp.array([20.0, 50.0])
    forward = cycle_update(KERNEL, DeadZone(100 / 9), SHAPE, amplitudes)
    backward = cycle_update(
        KERNEL, DeadZone(100 / 9), P.Sawtooth(1.0, 9.0, -0.5, 0.5, reverse=True), amplitudes
    )
    np.testing.assert_allclose(backward, -forward, rtol=1e-6)
    linear = cycle_update(KERNEL, Identity(), SHAPE, amplitudes)
    np.testing.assert_allclose(linear, 0.0, atol=1e-9 * float(amplitudes.max()))


def test_leaky_memory_offsets_the_update_by_area_times_mean_times_period():
    # g = identity: Delta = integral u dt = I * mean * T exactly (the derivative part
    # integrates to 0)
    kernel = EColiKernel(area=0.05, rate=20.0)
    update = cycle_update(kernel, Identity(), SHAPE, jnp.array([30.0]), mean=25.0)
    np.testing.assert_allclose(update, 0.05 * 25.0 * 10.0, rtol=1e-9)


def test_occupation_sum_equals_the_direct_sum():
    rng = np.random.default_rng(0)
    v = jnp.sort(jnp.asarray(rng.normal(size=500)))
    amplitudes = jnp.array([0.0, 0.3, 1.0, 7.0])
    for g in (DeadZone(0.8), Cubic(2.0), Identity()):
        direct = jnp.stack([jnp.sum(g(0.2 + a * v)) for a in amplitudes])
        np.testing.assert_allclose(
            occupation_sum(g, v, 0.2, amplitudes), direct, rtol=1e-10, atol=1e-10
        )


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="amplitudes must be >= 0"):
        cycle_update(KERNEL, DeadZone(1.0), SHAPE, jnp.array([-1.0]))
    with pytest.raises(ValueError, match="amplitudes is empty"):
        cycle_update(KERNEL, DeadZone(1.0), SHAPE, jnp.array([]))
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        DeadZone(-1.0)
    with pytest.raises(ValueError, match="periodic"):
        cycle_update(KERNEL, DeadZone(1.0), P.Constant(1.0), jnp.array([1.0]))


def test_short_fast_ramp_warns_with_the_ratio():
    with pytest.warns(UserWarning, match="2 kernel times"):
        cycle_update(KERNEL, DeadZone(1.0), P.Sawtooth(0.1, 9.0, -0.5, 0.5), jnp.array([1.0]))


def test_dead_zone_integral_closed_form_equals_the_generic_rule():
    """The dead zone's branch-free closed form against the generic piecewise rule
    (AbstractNonlinearity.integral from g's pieces), on node sequences that cross the
    threshold, stay inside, stay beyond, and repeat a value inside and beyond it."""
    g = DeadZone(1.0)
    rng = np.random.default_rng(0)
    u = [jnp.asarray(rng.uniform(-3, 3, size=64)) for _ in range(5)]
    u[2] = u[1]  # a step with u constant, in the dead zone for some columns, beyond for others
    u = [jnp.concatenate([v, jnp.array([0.5, 2.0, -1.5])]) for v in u]  # inside, above, below
    steps = (0.1, 0.3, 0.2, 0.4)
    area = jnp.asarray(rng.uniform(-3, 3, size=67))
    closed = g.integral(u, steps, area)
    generic = super(DeadZone, g).integral(u, steps, area)
    np.testing.assert_allclose(closed, generic, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(closed[-3:], [0.0, area[-2], area[-1]], atol=1e-15)
