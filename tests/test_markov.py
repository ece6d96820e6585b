"""The ESA-ladder Markov synapse: rate matrix, steady state, kernel, entropy production."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synapse_dyn.analysis.thermodynamics import entropy_production_rate
from synapse_dyn.synapses.markov import (
    MarkovLadder,
    check_rate_matrix,
    esa_rate_matrix,
    stationary_distribution,
)

ACTIVITY = np.r_[np.ones(5), np.zeros(5)]


@pytest.fixture(scope="module")
def ladder_sigma():
    """Steady entropy production for a batch of (s, gamma, rate factor), one compilation."""
    matrices = jax.jit(jax.vmap(esa_rate_matrix))
    return jax.jit(lambda s, g, rf: entropy_production_rate(matrices(s, g, rf)))


@pytest.mark.parametrize("rate_factor", [1.0, 25.0, 99.0])
def test_equilibrium_at_gamma_one(ladder_sigma, rate_factor):
    s = jnp.array([0.0, 5.0, 200.0])
    sigma = ladder_sigma(s, jnp.ones(3), jnp.full(3, rate_factor))
    np.testing.assert_allclose(sigma, 0.0, atol=1e-12)
    # detailed balance itself: every flux pair balances
    p = stationary_distribution(esa_rate_matrix(200.0, 1.0, rate_factor))
    flux = np.asarray(esa_rate_matrix(200.0, 1.0, rate_factor)) * np.asarray(p)[None, :]
    off = ~np.eye(10, dtype=bool)
    np.testing.assert_allclose(flux[off], flux.T[off], atol=1e-14)


def test_reference_dissipation_and_monotonic(ladder_sigma):
    gamma = jnp.array([0.1, 0.01, 1e-3])
    sigma = ladder_sigma(jnp.zeros(3), gamma, jnp.full(3, 25.0))
    np.testing.assert_allclose(sigma, [1.76, 4.36, 6.67], rtol=0.01)
    sweep = jnp.logspace(0, -24, 49)
    sigma = np.asarray(ladder_sigma(jnp.zeros(49), sweep, jnp.full(49, 25.0)))
    assert np.all(np.diff(sigma) > 0)


def test_loop_affinity_and_medium_entropy():
    """Each square loop carries ln(forward/backward rate products) = 2 ln(1/gamma); in steady
    state the medium entropy flow sum_ij J_ij ln(M_ij/M_ji) equals Schnakenberg's sigma."""
    gamma = 0.03
    m = np.asarray(esa_rate_matrix(50.0, gamma, 7.0))
    for k in range(4):  # loop top k -> top k+1 -> bottom k+1 -> bottom k -> top k
        a, b, c, d = k, k + 1, 6 + k, 5 + k
        forward = m[b, a] * m[c, b] * m[d, c] * m[a, d]
        backward = m[a, b] * m[b, c] * m[c, d] * m[d, a]
        assert np.log(backward / forward) == pytest.approx(2 * np.log(1 / gamma), rel=1e-12)
    p = np.asarray(stationary_distribution(m))
    off = ~np.eye(10, dtype=bool) & (m > 0)
    ratio = np.where(off, m / np.where(off, m.T, 1.0), 1.0)
    medium = np.sum(np.where(off, m * p[None, :] * np.log(ratio), 0.0))
    assert float(entropy_production_rate(m)) == pytest.approx(medium, rel=1e-10)


def test_stationary_distribution_is_the_relaxed_state():
    """Independent route: relax an arbitrary distribution, p(t) = exp(M t) p(0), t ~ 1e4."""
    ladder = MarkovLadder(gamma=1e-3, rate_factor=25.0)
    p0 = jnp.full(10, 0.1)
    propagator = jax.scipy.linalg.expm(ladder.rate_matrix(30.0) * 0.01)
    for _ in range(20):  # exp(M 0.01 2^20)
        propagator = propagator @ propagator
    relaxed = propagator @ p0
    np.testing.assert_allclose(relaxed, ladder.steady_state(30.0), atol=1e-10)
    assert float(jnp.sum(ladder.vector_field(p0, 30.0))) == pytest.approx(0.0, abs=1e-12)


def test_adaptation_reference_values():
    """tcl_model.md Sec. 2.7 [computed]: steady activity shift for a 0 -> 200 uM step is 0.48
    at gamma = 1 and ~0.017 at gamma <= 1e-3; the kernel area floor is ~0.35 (Sec. 9.13)."""

    def shift(gamma):
        ladder = MarkovLadder(gamma)
        return float((ladder.steady_state(0.0) - ladder.steady_state(200.0)) @ ACTIVITY)

    assert shift(1.0) == pytest.approx(0.484, abs=0.005)
    assert shift(1e-3) == pytest.approx(0.017, rel=0.03)
    assert float(MarkovLadder(1e-6).kernel(200.0).area) == pytest.approx(0.35, rel=0.03)


@pytest.fixture(scope="module")
def kernels():
    ladders = MarkovLadder(
        gamma=jnp.array([1e-3, 0.3, 1e-3]), rate_factor=jnp.array([25.0, 5.0, 99.0])
    )
    steps = jnp.array([200.0, 50.0, 250.0])
    batch = eqx.filter_jit(eqx.filter_vmap(lambda ladder, step: ladder.kernel(step)))(
        ladders, steps
    )
    responses = eqx.filter_jit(eqx.filter_vmap(lambda ladder, step: ladder.step_response(step)))(
        ladders, steps
    )
    return ladders, steps, batch, responses


def test_kernel_moments_against_step_response(kernels):
    """Area and first moment of the sampled kernel against the exact integrals of the step
    response u: integral K = u(W) - u(0), integral t K = W (u(W) - u(0)) - integral (u - u(0))."""
    _, _, batch, (t, u) = kernels
    for k in range(3):
        values, times, response = np.asarray(batch.values[k]), np.asarray(t[k]), np.asarray(u[k])
        dt = times[1]
        first = np.trapezoid(times * values, dx=dt)
        assert first == pytest.approx(-1.0, abs=1e-12)
        change = response[-1] - response[0]
        moment = times[-1] * change - np.trapezoid(response - response[0], dx=dt)
        assert np.trapezoid(values, dx=dt) == pytest.approx(-change / moment, rel=2e-3)


def test_kernel_batch_matches_single_and_is_bilobed(kernels):
    ladders, steps, batch, _ = kernels
    single = MarkovLadder(float(ladders.gamma[2]), float(ladders.rate_factor[2])).kernel(
        float(steps[2])
    )
    np.testing.assert_allclose(batch.values[2], single.values, rtol=1e-10)
    values = np.asarray(single.values)
    assert values[0] > 0 and values.min() < 0  # positive lobe first, then negative


def test_step_response_matches_diffrax(kernels):
    """Exact propagation exp(M dt) against an adaptive implicit solve of dp/dt = M p."""
    ladders, steps, _, (t, u) = kernels
    ladder = MarkovLadder(float(ladders.gamma[0]), float(ladders.rate_factor[0]))
    step = float(steps[0])
    term = diffrax.ODETerm(lambda time, p, s: ladder.vector_field(p, s))
    ts = jnp.asarray(t[0][::500])
    solution = diffrax.diffeqsolve(
        term,
        diffrax.Kvaerno5(),
        0.0,
        1.0,
        None,
        ladder.steady_state(0.0),
        args=step,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-13),
    )
    np.testing.assert_allclose(ladder.output(solution.ys, step), u[0][::500], atol=1e-9)


def test_bad_input():
    good = np.asarray(esa_rate_matrix(0.0, 0.5))
    with pytest.raises(ValueError, match="gamma"):
        MarkovLadder(gamma=0.0)
    with pytest.raises(ValueError, match="gamma"):
        MarkovLadder(gamma=1.5)
    with pytest.raises(ValueError, match="rate_factor"):
        MarkovLadder(gamma=0.5, rate_factor=-1.0)
    with pytest.raises(ValueError, match="rate_factor"):
        esa_rate_matrix(0.0, 0.5, np.nan)
    with pytest.raises(ValueError, match="step response to step = 0.0 is flat"):
        MarkovLadder(gamma=0.5).kernel(0.0)
    with pytest.raises(ValueError, match="ligand"):
        esa_rate_matrix(-1.0, 0.5)
    negative = good.copy()
    negative[3, 2] = -1.0
    with pytest.raises(ValueError, match="negative rate"):
        check_rate_matrix(negative)
    infinite = good.copy()
    infinite[3, 2] = np.inf
    with pytest.raises(ValueError, match="finite"):
        check_rate_matrix(infinite)
    unbalanced = good.copy()
    unbalanced[4, 7] += 0.5
    with pytest.raises(ValueError, match="column 7"):
        check_rate_matrix(unbalanced)
    with pytest.raises(ValueError, match="column 7"):
        entropy_production_rate(unbalanced)
    cut = good.copy()  # sever state 4 (top, m = 4) from everything
    cut[:, 4] = 0.0
    cut[4, :] = 0.0
    cut -= np.diag(np.diag(cut))
    cut -= np.diag(cut.sum(axis=0))
    with pytest.raises(ValueError, match=r"not irreducible: state\(s\) \[4\]"):
        check_rate_matrix(cut)
