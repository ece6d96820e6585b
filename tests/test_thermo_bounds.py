"""Information-thermodynamic bounds: Sartori et al. (2014) for a sensing memory, full counting
statistics of currents against Gillespie trajectories, and the uncertainty relations (Barato-
Seifert for constant driving, Koyuk-Seifert 2019 for periodic driving), each over hundreds of
random rate matrices of the Fig. 6B ladder family and of generic networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy import integrate

from synapse_dyn.analysis import thermodynamics as th
from synapse_dyn.analysis.figures import fig6b
from synapse_dyn.protocols import Sawtooth
from synapse_dyn.synapses import MarkovLadder, esa_rate_matrix, stationary_distribution

RING = np.roll(np.eye(3), 1, axis=0) - np.roll(np.eye(3), 1, axis=0).T  # +1 per jump i -> i+1


def generators(rng, shape, n, spread=1.5):
    """Random irreducible rate matrices with every transition reversible (lognormal rates)."""
    rates = rng.lognormal(0.0, spread, (*shape, n, n)) * (1 - np.eye(n))
    return rates - np.eye(n) * rates.sum(-2)[..., None, :]


def ladder_family(count, seed=0):
    """gamma, rate factor and ligand step of the first ``count`` ladders of the Fig. 6B family."""
    ladders = fig6b.random_ladders(-(-count // fig6b.PER_BATCH), seed)
    return {k: v[:count] for k, v in ladders.items()}


@jax.jit
def _ladder_matrices(gamma, rate_factor, signals):
    return jax.vmap(lambda g, r, s: MarkovLadder(g, r).rate_matrix(s))(gamma, rate_factor, signals)


def _relative_slack(value, bound):
    return (value - bound) / np.maximum(np.abs(value), 1.0)


# ---------------------------------------------------------------------------------------------
# Sartori et al. 2014


@pytest.fixture(scope="module")
def sensing_random():
    rng = np.random.default_rng(1)
    generic = th.sensing_bounds(
        generators(rng, (600, 3), 4),
        np.array([0.2, 0.3, 0.5]),
        rng.uniform(0.02, 5.0, 600),
    )
    family = ladder_family(600, seed=2)
    signals = np.stack([np.zeros(600), family["step"]], axis=1)
    ladders = th.sensing_bounds(
        np.asarray(_ladder_matrices(family["gamma"], family["rate_factor"], signals)),
        np.array([0.5, 0.5]),
        rng.uniform(0.01, 2.0, 600),
    )
    return generic, ladders


def test_sartori_inequalities_hold(sensing_random):
    """Sigma >= I_erased and Q/kT >= I_written on 600 generic and 600 Fig. 6B ladders; both
    slacks equal the entropy produced given the present signal (chain rule), >= 0."""
    for ds in sensing_random:
        sigma, erased = ds.entropy_production.values, ds.information_erased.values
        heat, written = ds.heat.values, ds.information_written.values
        present = ds.entropy_production_present.values
        assert np.all(_relative_slack(sigma, erased) >= -1e-10)
        assert np.all(_relative_slack(heat, written) >= -1e-10)
        assert np.all(erased >= -1e-12) and np.all(written >= -1e-12)
        np.testing.assert_allclose(sigma - erased, present, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(heat - written, present, rtol=1e-9, atol=1e-11)
        # cycle-stationary: what is written this cycle is what the next switch finds
        np.testing.assert_allclose(written, ds.information_old.values, rtol=1e-9, atol=1e-12)
        assert np.all(ds.erasure_tightness.values <= 1 + 1e-9)
        assert np.all(ds.writing_tightness.values <= 1 + 1e-9)
        assert ds.heat.attrs["model_units"] == "kT" and ds.information_written.attrs["units"] == "1"
    generic, ladders = sensing_random
    assert np.max(generic.writing_tightness) > 0.1  # the bound is not trivially loose


def _two_state(a, b, pi, tau):
    """Closed form for a two-state memory (rates 0 -> 1 = a_x, 1 -> 0 = b_x): p1(t) relaxes to
    a/(a+b) at rate a+b; the cycle-stationary start solves q = sum pi (eq + (q - eq) e^{-k tau});
    each net jump 0 -> 1 delivers ln(a/b) to the medium."""
    k, eq = a + b, a / (a + b)
    decay = np.exp(-k * tau)
    q = np.sum(pi * eq * (1 - decay)) / (1 - np.sum(pi * decay))
    end = eq + (q - eq) * decay  # p1 at the end of a cycle of signal x, from q

    def h(p):
        return -(p * np.log(p) + (1 - p) * np.log(1 - p))

    mixed = np.sum(pi * end)
    written = h(mixed) - np.sum(pi * h(end))
    heat = np.sum(pi * np.log(a / b) * (end - q))
    return written, heat


def test_sartori_two_state_closed_form():
    rng = np.random.default_rng(3)
    for _ in range(5):
        a, b = rng.lognormal(0, 1, 3), rng.lognormal(0, 1, 3)
        pi = rng.dirichlet(np.ones(3))
        tau = rng.uniform(0.1, 3.0)
        matrices = np.stack([[[-ai, bi], [ai, -bi]] for ai, bi in zip(a, b, strict=True)])
        ds = th.sensing_bounds(matrices, pi, tau)
        written, heat = _two_state(a, b, pi, tau)
        assert float(ds.information_written) == pytest.approx(written, rel=1e-10)
        assert float(ds.heat) == pytest.approx(heat, rel=1e-10, abs=1e-13)


def test_sartori_equilibrium_memory_fully_relaxed():
    """Sartori's setting: an equilibrium memory (energies E(m, x)) relaxing fully each cycle
    pays Q/kT = E_{x0, x1} KL(p_eq(.|x0) || p_eq(.|x1)) per cycle, writes I(M; X) of the
    equilibrium conditionals, and erases all it held."""
    rng = np.random.default_rng(4)
    energy = rng.normal(0, 1.5, (2, 5))
    barrier = rng.normal(0, 1, (5, 5))
    barrier = barrier + barrier.T
    rates = np.exp(-(barrier[None] - energy[:, None, :])) * (1 - np.eye(5))
    matrices = rates - np.eye(5) * rates.sum(-2)[:, None, :]
    pi = np.array([0.3, 0.7])
    ds = th.sensing_bounds(matrices, pi, 400.0)
    eq = np.exp(-energy) / np.exp(-energy).sum(1, keepdims=True)
    kl = np.sum(eq[:, None] * np.log(eq[:, None] / eq[None, :]), axis=-1)
    mixture = pi @ eq
    assert float(ds.heat) == pytest.approx(pi @ kl @ pi, rel=1e-8)
    mutual = np.sum(pi[:, None] * eq * np.log(eq / mixture))
    assert float(ds.information_written) == pytest.approx(mutual, rel=1e-8)
    assert float(ds.information_erased) == pytest.approx(mutual, rel=1e-8)


def test_sartori_entropy_by_quadrature():
    """Sigma (history-conditioned) against Simpson quadrature of Schnakenberg's rate along
    p(t | x0, x1) = exp(W(x1) t) p(start | x0), an independent route (NumPy/SciPy)."""
    rng = np.random.default_rng(5)
    matrices, pi, tau = generators(rng, (2,), 3), np.array([0.4, 0.6]), 0.8
    ds = th.sensing_bounds(matrices, pi, tau)
    cycle = sum(p * scipy.linalg.expm(w * tau) for p, w in zip(pi, matrices, strict=True))
    values, vectors = np.linalg.eig(cycle)
    q = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    q /= q.sum()
    times = np.linspace(0, tau, 1001)
    total = 0.0
    for x0 in range(2):
        start = scipy.linalg.expm(matrices[x0] * tau) @ q
        for x1 in range(2):
            w = matrices[x1]
            hop = scipy.linalg.expm(w * (times[1] - times[0]))
            path = [start]
            for _ in times[1:]:
                path.append(hop @ path[-1])
            flux = w[None] * np.asarray(path)[:, None, :]  # J_ij = W_ij p_j
            off = ~np.eye(3, dtype=bool)
            ratio = np.where(off, flux / np.where(off, np.swapaxes(flux, 1, 2), 1.0), 1.0)
            rate = 0.5 * np.sum((flux - np.swapaxes(flux, 1, 2)) * np.log(ratio), axis=(1, 2))
            total += pi[x0] * pi[x1] * integrate.simpson(rate, x=times)
    assert float(ds.entropy_production) == pytest.approx(total, rel=1e-7)


# ---------------------------------------------------------------------------------------------
# Full counting statistics and uncertainty relations


def _z_scores(samples, mean, variance):
    centred = samples - samples.mean()
    n = samples.size
    se_mean = samples.std(ddof=1) / np.sqrt(n)
    se_variance = np.sqrt((np.mean(centred**4) - samples.var() ** 2) / n)
    return (samples.mean() - mean) / se_mean, (samples.var(ddof=1) - variance) / se_variance


def test_fcs_against_gillespie_generic():
    rng = np.random.default_rng(1)
    matrices, durations = generators(rng, (2,), 3, 1.0), np.array([0.7, 1.3])
    increments = rng.normal(size=(3, 3))
    increments -= increments.T
    channels = rng.lognormal(0, 1, (2, 3))
    kwargs = dict(channels=channels, step=0.5)
    ds = th.current_statistics(matrices, durations, increments, n_periods=3, **kwargs)
    samples = th.gillespie_current(
        matrices, durations, increments, n_periods=3, n_trajectories=20_000, seed=7, **kwargs
    )
    z_mean, z_variance = _z_scores(samples, 3 * float(ds["mean"]), float(ds.variance_finite))
    assert abs(z_mean) < 3 and abs(z_variance) < 3


def test_fcs_against_gillespie_ladder_weight():
    """The weight of a ladder synapse under a sawtooth ligand drive (the walker of
    ``weight_channels``), exact against 20,000 seeded trajectories over two periods."""
    ladder = MarkovLadder(0.1, rate_factor=1.0, time_scale=1.0)
    drive = Sawtooth(0.3, 0.9, free=0.0, clamped=60.0)
    kwargs = dict(force=2.0, rate=3.0, step=1.0)
    ds = th.synapse_current_statistics(ladder, drive, n_steps=2, n_periods=2, **kwargs)
    values, durations = th.piecewise_drive(drive, 2)
    samples = th.gillespie_current(
        np.asarray(ladder.rate_matrix(values)),
        durations,
        channels=np.asarray(th.weight_channels(ladder, 2.0, 3.0)),
        n_periods=2,
        n_trajectories=20_000,
        seed=11,
    )
    z_mean, z_variance = _z_scores(samples, 2 * float(ds["mean"]), float(ds.variance_finite))
    assert abs(z_mean) < 3 and abs(z_variance) < 3


def test_fcs_mean_slope_and_long_time_variance():
    """Three independent routes: the mean per period from the eigenvalue equals the flux
    integral sum d_ij W_ij int p_j (augmented exponential); T d<J>/dT equals a central
    difference of exact means; the variance over n periods grows by the scaled variance."""
    rng = np.random.default_rng(2)
    matrices, durations = generators(rng, (3,), 4), rng.uniform(0.2, 1.5, 3)
    increments = rng.normal(size=(4, 4))
    increments -= increments.T
    ds = th.current_statistics(matrices, durations, increments)
    p = np.asarray(th.periodic_state(matrices, durations))
    flux_mean = 0.0
    for w, tau in zip(matrices, durations, strict=True):
        augmented = np.zeros((5, 5))
        augmented[:4, :4], augmented[:4, 4] = w, p
        integral = scipy.linalg.expm(augmented * tau)[:4, 4]
        flux_mean += np.sum(increments * w * integral[None, :])
        p = scipy.linalg.expm(w * tau) @ p
    assert float(ds["mean"]) == pytest.approx(flux_mean, rel=1e-10)
    h = 1e-5
    up, down = (
        float(th.current_statistics(matrices, durations * (1 + s), increments)["mean"])
        for s in (h, -h)
    )
    assert float(ds.period_derivative) == pytest.approx((up - down) / (2 * h), rel=1e-6)
    late = [
        float(th.current_statistics(matrices, durations, increments, n_periods=k).variance_finite)
        for k in (40, 41)
    ]
    assert late[1] - late[0] == pytest.approx(float(ds.variance), rel=1e-8)


def _moving_trap(rng, count):
    """A three-state pump: in piece k a trap of depth V sits on state k (rates out of it e^-V,
    into it 1, with random perturbations) and a barrier V closes the way round the back; the
    pieces are long enough to relax, so the particle is carried round the ring almost
    deterministically: J is precise and cheap per period."""
    depth = rng.uniform(4.0, 8.0, (count, 1, 1))
    energy = -depth * np.eye(3)[None] + rng.normal(0, 0.3, (count, 3, 3))  # [piece, state]
    barrier = rng.normal(0, 0.3, (count, 3, 3, 3))
    gate = np.zeros((3, 3, 3))  # piece k closes the short cut between k - 1 and k + 1
    for k in range(3):
        gate[k, (k - 1) % 3, (k + 1) % 3] = 1.0
    barrier = barrier + depth[..., None] * gate
    barrier = barrier + np.swapaxes(barrier, -1, -2)
    rates = np.exp(-(barrier - energy[:, :, None, :])) * (1 - np.eye(3))
    matrices = rates - np.eye(3) * rates.sum(-2)[..., None, :]
    return matrices


@pytest.fixture(scope="module")
def periodic_cases():
    rng = np.random.default_rng(6)
    kwargs = dict(generalised=True)
    generic = th.current_statistics(
        generators(rng, (500, 3), 3), rng.uniform(0.05, 3.0, 3), RING, **kwargs
    )
    pump = th.current_statistics(
        _moving_trap(rng, 500), np.array([12.0, 12.0, 12.0]), RING, **kwargs
    )
    family = ladder_family(500, seed=3)
    values, durations = th.piecewise_drive(Sawtooth(0.6, 3.0, free=0.0, clamped=1.0), 2)
    signals = family["step"][:, None] * values[None, :]
    matrices = _ladder_matrices(family["gamma"], family["rate_factor"], signals)
    channels = jax.vmap(lambda g, r: th.weight_channels(MarkovLadder(g, r)))(
        jnp.asarray(family["gamma"]), jnp.asarray(family["rate_factor"])
    )
    ladders = th.current_statistics(
        np.asarray(matrices), durations, channels=np.asarray(channels), **kwargs
    )
    return generic, pump, ladders


def test_periodic_bound_holds_everywhere_tur_fails_for_pumps(periodic_cases):
    """Koyuk-Seifert 2019 and the generalised TUR (effective entropy) hold on 1,500
    periodically driven cases (generic, pumps, Fig. 6B ladders' weight currents); the
    steady-state TUR fails for most moving-trap pumps."""
    generic, pump, ladders = periodic_cases
    for ds in periodic_cases:
        assert np.all(ds.periodic_ratio.values >= 1 - 1e-9)
        assert np.all(ds.generalised_ratio.values >= 1 - 1e-9)
        assert np.all(ds.entropy_production.values >= 0)
        assert np.all(ds.effective_entropy.values > 0)
    assert np.mean(pump.tur_ratio.values < 1) > 0.5
    assert float(pump.tur_ratio.min()) < 0.1
    # the test can fail: with the opposite sign of the frequency term, 1 + dln j / dln Omega,
    # i.e. 2 <J>_T - T d<J>_T/dT per period, the relation is violated
    for ds in (generic, pump):
        other = 2 * ds["mean"] - ds.period_derivative
        assert float((ds.variance * ds.entropy_production / (2 * other**2)).min()) < 1


def _effective_entropy_by_quadrature(matrices, durations, channels):
    """Sigma~ by adaptive quadrature (SciPy quad_vec) of the edge weights
    ln(a/b)/(a - b) along p(t) = exp(W t) p_k, Q assembled edge by edge with explicit loops and
    minimised over sum(pbar) = 1 by a Lagrange system: an independent route."""
    n = matrices.shape[-1]
    p = np.asarray(th.periodic_state(matrices, durations))
    form = np.zeros((n, n))
    edges = [(i, j) for i in range(n) for j in range(i + 1, n)]
    for w, tau in zip(matrices, durations, strict=True):
        start = p

        def weights(t, w=w, start=start):
            q = scipy.linalg.expm(w * t) @ start
            fluxes = [(w[i, j] * q[j], w[j, i] * q[i]) for i, j in edges]
            fluxes += [(channels[0, j] * q[j], channels[1, j] * q[j]) for j in range(n)]
            return np.array([np.log(a / b) / (a - b) if a != b else 1 / a for a, b in fluxes])

        integral = integrate.quad_vec(weights, 0.0, tau, epsabs=0.0, epsrel=1e-12)[0]
        for c, (i, j) in zip(integral, edges, strict=False):
            v = np.zeros(n)
            v[j], v[i] = w[i, j], -w[j, i]
            form += c * np.outer(v, v)
        form += np.diag(integral[len(edges) :] * (channels[0] - channels[1]) ** 2)
        p = scipy.linalg.expm(w * tau) @ p
    lagrange = np.block([[2 * form, np.ones((n, 1))], [np.ones((1, n)), np.zeros((1, 1))]])
    pbar = np.linalg.solve(lagrange, np.append(np.zeros(n), 1.0))[:n]
    return pbar @ form @ pbar


def test_effective_entropy_against_quadrature_and_limits():
    """Sigma~ (graded Gauss-Legendre, squaring) equals adaptive quadrature to 1e-7 on random
    two-piece drives with weight channels; fast driving recovers the TUR, Sigma~ <= Sigma
    (1 + 1e-3) at T = 1e-4 (pbar = the nearly constant state), while slow driving does not."""
    rng = np.random.default_rng(9)
    matrices, channels = generators(rng, (500, 2), 4, 1.0), rng.lognormal(0, 1, (500, 2, 4))
    slow, fast = (
        th.current_statistics(matrices, durations, channels=channels, generalised=True)
        for durations in ([0.6, 1.4], [6e-5, 4e-5])
    )
    assert np.all(fast.effective_entropy <= fast.entropy_production * (1 + 1e-3))
    assert float((slow.effective_entropy / slow.entropy_production).max()) > 1.5
    for case in range(2):
        reference = _effective_entropy_by_quadrature(matrices[case], [0.6, 1.4], channels[case])
        assert float(slow.effective_entropy[case]) == pytest.approx(reference, rel=1e-7)


def test_constant_driving_tur_and_linear_response():
    """One piece = constant driving: Var Sigma >= 2 <J>^2 on 500 random networks (currents with
    random increments), T d<J>/dT = <J> so both ratios agree; near equilibrium the entropy
    current saturates it, ratio - 1 = O(force)."""
    rng = np.random.default_rng(8)
    matrices = generators(rng, (500, 1), 4)
    increments = rng.normal(size=(4, 4))
    increments -= increments.T
    ds = th.current_statistics(matrices, np.array([1.0]), increments, generalised=True)
    assert np.all(ds.tur_ratio.values >= 1 - 1e-9)
    assert np.all(ds.generalised_ratio.values >= 1 - 1e-9)
    np.testing.assert_allclose(ds.period_derivative, ds["mean"], rtol=1e-8)
    assert np.all(ds.effective_entropy <= ds.entropy_production * (1 + 1e-9))  # pbar = p_ss
    energy = rng.normal(0, 1, 4)
    barrier = rng.normal(0, 1, (4, 4))
    barrier = barrier + barrier.T
    ring = np.roll(np.eye(4), 1, axis=0)
    rates = np.stack(
        [
            np.exp(-(barrier - energy[None, :])) * np.exp(force / 2 * (ring - ring.T))
            for force in (1e-1, 1e-2, 1e-3)  # a force around the 4-cycle
        ]
    ) * (1 - np.eye(4))
    matrices = rates - np.eye(4) * rates.sum(-2)[:, None, :]
    entropy_current = np.log(
        np.where(rates > 0, rates, 1) / np.where(rates > 0, rates, 1).swapaxes(1, 2)
    )
    excess = []
    for matrix, increments in zip(matrices, entropy_current, strict=True):
        stats = th.current_statistics(matrix[None], [1.0], increments, generalised=True)
        excess.append([float(stats[k]) - 1 for k in ("tur_ratio", "generalised_ratio")])
    excess = np.array(excess).T  # [relation, force]
    assert np.all(excess[:, 0] > excess[:, 1]) and np.all(excess[:, 1] > excess[:, 2])
    assert np.all(excess[:, 2] > -1e-9) and np.all(excess[:, 2] < 1e-3)


def test_bad_input():
    good = generators(np.random.default_rng(0), (2,), 3)
    unbalanced = good.copy()
    unbalanced[1, 0, 2] += 0.5
    with pytest.raises(ValueError, match="column 2"):
        th.sensing_bounds(unbalanced, [0.5, 0.5], 1.0)
    with pytest.raises(ValueError, match=r"entry \[1\] is 0.0"):
        th.sensing_bounds(good, [1.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="sums to 0.9"):
        th.sensing_bounds(good, [0.5, 0.4], 1.0)
    one_way = good.copy()
    one_way[0, 0, 1] = 0.0  # 1 -> 0 removed, 0 -> 1 kept
    one_way[0] -= np.diag(one_way[0].sum(0))
    with pytest.raises(ValueError, match="one-way transition 0 -> 1.*infinite"):
        th.sensing_bounds(one_way, [0.5, 0.5], 1.0)
    with pytest.raises(ValueError, match="one-way transition"):
        th.entropy_production_rate(one_way[0])
    with pytest.raises(ValueError, match="antisymmetric"):
        th.current_statistics(good, [1.0, 1.0], np.ones((3, 3)))
    with pytest.raises(ValueError, match="steps one way only"):
        th.current_statistics(good, [1.0, 1.0], channels=np.array([[1.0, 1, 1], [1, 0, 1]]))
    with pytest.raises(ValueError, match="period"):
        th.sensing_bounds(good, [0.5, 0.5], -1.0)


@pytest.mark.xdist_group("figure thermo_bounds")
def test_thermo_bounds_figure_quick(quick_figure):
    """The figure's 100 quick kernels: no point below any of its three bounds; units."""
    from synapse_dyn.analysis.figures import thermo_bounds

    ds = quick_figure("thermo_bounds")
    assert ds.sizes["kernel"] == 100
    assert np.all(ds.entropy_production >= ds.information_erased - 1e-9)
    assert np.all(ds.heat >= ds.information_written - 1e-9)
    assert np.all(ds.periodic_ratio >= 1 - 1e-9)
    for name in ds.variables:
        assert {"units", "long_name"} <= set(ds[name].attrs), name
    figure = thermo_bounds.plot(ds)
    assert len(figure.axes) == 5


# ---------------------------------------------------------------------------------------------
# Energy-speed-accuracy: the birth-death closed form (Wang, Lan, Tang)


@pytest.mark.parametrize(("s", "gamma"), [(0.0, 0.3), (100.0, 1e-2), (250.0, 1e-6)])
def test_esa_closed_form_against_ladder_code(s, gamma):
    """The closed form against the ladder code (esa_rate_matrix): (i) pi is the steady state of
    the birth-death generator assembled from the ladder's own methylation rates weighted by
    the activity, to 1e-12; (ii) at the product occupation every activity transition balances
    and Schnakenberg's sigma of the full ladder equals 2 ln(1/gamma) sum_m J_m to 1e-10, for
    any rate factor; (iii) the ladder's steady state approaches it as 1 / rate factor."""
    closed = {k: np.asarray(v) for k, v in th.birth_death_ladder(s, gamma).items()}
    a = closed["activity"]
    for rate_factor in (1.0, 25.0, 99.0):
        w = np.asarray(esa_rate_matrix(s, gamma, rate_factor))
        top, bottom = np.arange(5), 5 + np.arange(5)
        up = a[:-1] * w[top[1:], top[:-1]] + (1 - a[:-1]) * w[bottom[1:], bottom[:-1]]
        down = a[1:] * w[top[:-1], top[1:]] + (1 - a[1:]) * w[bottom[:-1], bottom[1:]]
        walk = np.diag(up, -1) + np.diag(down, 1)
        walk -= np.diag(walk.sum(0))
        np.testing.assert_allclose(
            stationary_distribution(walk),
            closed["methylation"],
            rtol=1e-12,
            atol=1e-15,
        )
        p = closed["occupation"]
        np.testing.assert_allclose(w[bottom, top] * p[top], w[top, bottom] * p[bottom], rtol=1e-12)
        sigma = float(th.entropy_production_rate(w, p))
        assert sigma == pytest.approx(float(closed["entropy_production"]), rel=1e-10, abs=1e-14)
    gaps = [
        np.max(
            np.abs(
                np.asarray(MarkovLadder(gamma, rate_factor, time_scale=1.0).steady_state(s))
                - closed["occupation"]
            )
        )
        for rate_factor in (1e3, 1e4)
    ]
    if gamma < 1:
        assert 8 < gaps[0] / gaps[1] < 12 and gaps[1] < 1e-5


@pytest.mark.xdist_group("figure esa")
def test_esa_figure_quick(quick_figure):
    """Dissipation buys accuracy: the error falls and the dissipation per unit speed rises as
    gamma falls; the closed form tracks the ladder at rate factor 25 within 5%."""
    from synapse_dyn.analysis.figures import esa

    ds = quick_figure("esa")
    assert np.all(np.diff(ds.error.values) < 0) and np.all(np.diff(ds.dissipation.values) > 0)
    assert np.all(np.diff(ds.cost_per_speed.values) > 0)
    np.testing.assert_allclose(ds.error_closed_form, ds.error, rtol=0.05)
    np.testing.assert_allclose(ds.dissipation_closed_form, ds.dissipation, rtol=0.05, atol=1e-12)
    assert len(esa.plot(ds).axes) == 3
