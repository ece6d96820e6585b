"""Thermal noise and overdamped Langevin dynamics: fluctuation-dissipation, reproducible
Brownian paths, and analytic stochastic thermodynamics (each statistical check is seeded
and passes when the estimate lies within three standard errors of the exact value)."""

import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synapse_dyn import networks as nw
from synapse_dyn import protocols as P
from synapse_dyn import rules
from synapse_dyn.analysis.thermodynamics import (
    heat_statistics,
    mean_with_error,
    total_entropy_production,
)
from synapse_dyn.noise import Thermal, langevin
from synapse_dyn.simulate import Schedule, simulate
from synapse_dyn.synapses import DeadZone, EColiCascade, IntegralFeedback, Synapse

N_SAMPLES, DURATION, DT = 400, 5.0, 0.01
STIFFNESS = 1.0


def within_three_errors(samples, exact):
    mean, error = mean_with_error(samples)
    assert abs(mean - exact) < 3 * error, f"{mean} +- {error} vs {exact}"
    return mean, error


def runner(force, initial, noise, duration=DURATION, dt=DT, brownian="virtual"):
    """Jitted seeds -> (x0, x(T), Q(T)) of seeded trajectories, x0 drawn by ``initial(key)``."""

    def one(seed):
        x0 = initial(jax.random.key(10_000 + seed))
        x, heat = langevin(force, x0, noise, t1=duration, dt=dt, seed=seed, brownian=brownian).ys
        return x0, x[-1], heat[-1]

    return jax.jit(jax.vmap(one))


def ensemble(*args, **kwargs):
    """(x0, x(T), Q(T)) for N_SAMPLES trajectories (see ``runner``)."""
    return runner(*args, **kwargs)(jnp.arange(N_SAMPLES))


def test_thermal_amplitude_and_bad_input():
    assert float(Thermal(2.0, mobility=0.5).amplitude) == pytest.approx(np.sqrt(2.0))
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        Thermal(-0.1)
    with pytest.raises(ValueError, match="temperature"):
        Thermal(np.nan)
    with pytest.raises(ValueError, match="mobility"):
        Thermal(1.0, mobility=0.0)
    with pytest.raises(ValueError, match="t1 must be later"):
        langevin(lambda t, x, a: -x, jnp.zeros(1), Thermal(1.0), t1=0.0, dt=0.1)
    with pytest.raises(ValueError, match="no mobility until"):
        Thermal(1.0).amplitude  # noqa: B018
    memory = Synapse(IntegralFeedback(0.1), DeadZone(1.0), 0.0)
    with pytest.raises(ValueError, match="memory z needs its mobility"):
        simulate(memory, P.Constant(0.0), t1=1.0, noise=Thermal(1.0), dt=0.01)


@pytest.mark.parametrize("brownian", ["virtual", "increments"])
def test_einstein_relation(brownian):
    """Free diffusion: <(x(t) - x0)^2> = 2 mu kT t per component (fluctuation-dissipation),
    400 samples x 8 components, with either kind of seeded Brownian path."""
    noise = Thermal(2.0, mobility=0.5)
    free = lambda t, x, a: jnp.zeros_like(x)  # noqa: E731
    run = runner(free, lambda key: jnp.zeros(8), noise, duration=1.5, dt=0.1, brownian=brownian)
    x0, x, heat = run(jnp.arange(N_SAMPLES))
    within_three_errors(np.asarray((x - x0) ** 2).ravel(), 2 * 0.5 * 2.0 * 1.5)
    np.testing.assert_array_equal(heat, 0.0)
    np.testing.assert_array_equal(x, run(jnp.arange(N_SAMPLES))[1])  # the seeds fix the paths
    assert not np.array_equal(x, run(jnp.arange(N_SAMPLES) + N_SAMPLES)[1])
    with pytest.raises(ValueError, match="Brownian path kind"):
        noise.brownian(jnp.zeros(8), 0.0, 1.0, 0, 0.1, kind="pink")


def test_seeded_paths_are_reproducible_across_step_sizes():
    """Same seed and Brownian tolerance: the same path whatever the step; new seed, new path."""
    noise = Thermal(1.0)
    ou = lambda t, x, a: -STIFFNESS * x  # noqa: E731

    @functools.partial(jax.jit, static_argnums=1)
    def run(seed, steps):
        ends = [
            langevin(ou, jnp.zeros(3), noise, t1=1.0, dt=1.0 / n, seed=seed, tol=5e-3)
            for n in steps
        ]
        return [end.ys[0][-1] for end in ends]

    coarse, fine = run(7, (20, 40))
    again, _ = run(7, (20, 40))
    other, _ = run(8, (20, 40))
    np.testing.assert_array_equal(coarse, again)
    assert float(jnp.max(jnp.abs(coarse - fine))) < 0.1  # Heun's strong error, O(dt)
    assert float(jnp.max(jnp.abs(coarse - other))) > 0.3


def test_ornstein_uhlenbeck_equilibrium_produces_no_entropy():
    """Equilibrium OU particle (x0 ~ Boltzmann): <x^2> = kT/k, mean heat 0 and mean total
    entropy production Q/kT + ln p(x0) - ln p(x) = 0."""
    temperature = 1.5
    noise = Thermal(temperature)
    variance = temperature / STIFFNESS
    x0, x, heat = ensemble(
        lambda t, x, a: -STIFFNESS * x,
        lambda key: jnp.sqrt(variance) * jax.random.normal(key, (1,)),
        noise,
    )
    x0, x, heat = np.asarray(x0[:, 0]), np.asarray(x[:, 0]), np.asarray(heat)
    within_three_errors(x**2, variance)
    within_three_errors(heat / temperature, 0.0)  # mean entropy flow into the medium
    # the system entropy change cancels it path by path: with the Stratonovich heat,
    # Q = -k/2 (x^2 - x0^2) exactly (Ito would add mu k kT t), so Delta s_tot = 0 up to O(dt)
    log_density = lambda y: -(y**2) / (2 * variance)  # noqa: E731  (normalisation cancels)
    entropy = np.asarray(
        total_entropy_production(heat, temperature, log_density(x0), log_density(x))
    )
    np.testing.assert_allclose(entropy, 0.0, atol=2e-3)


def test_dragged_trap_dissipates_friction_times_speed_squared():
    """Trap U = k/2 (x - v t)^2 dragged at speed v: in steady state the heat rate is
    gamma v^2 with friction gamma = 1/mu."""
    speed, mobility = 1.0, 0.5
    noise = Thermal(1.0, mobility=mobility)
    lag = -speed / (mobility * STIFFNESS)

    def initial(key):  # the steady state: Gaussian about the lagging mean
        return lag + jnp.sqrt(1.0 / STIFFNESS) * jax.random.normal(key, (1,))

    _, _, heat = ensemble(lambda t, x, a: -STIFFNESS * (x - speed * t), initial, noise)
    heat = np.asarray(heat)
    ds = heat_statistics([0.0, DURATION], np.stack([np.zeros_like(heat), heat], axis=1), 1.0)
    rate, error = float(ds.heat_rate), float(ds.heat_rate_standard_error)
    assert abs(rate - speed**2 / mobility) < 3 * error, (rate, error)
    assert float(ds.medium_entropy[-1]) == pytest.approx(rate * DURATION)  # kT = 1


def test_rotational_force_entropy_production():
    """2D trap F = -k x + eps R x (R a quarter turn), mu = kT = 1: the steady state stays
    Boltzmann and the entropy production rate is 2 eps^2 / k."""
    epsilon = 0.8
    rotation = jnp.array([[0.0, -1.0], [1.0, 0.0]])
    force = lambda t, x, a: -STIFFNESS * x + epsilon * rotation @ x  # noqa: E731
    _, x, heat = ensemble(
        force, lambda key: jax.random.normal(key, (2,)) / np.sqrt(STIFFNESS), Thermal(1.0)
    )
    within_three_errors(np.asarray(heat) / DURATION, 2 * epsilon**2 / STIFFNESS)
    within_three_errors(np.asarray(jnp.sum(x**2, axis=1)), 2.0 / STIFFNESS)


def test_noise_term_drives_any_diffrax_solve():
    """``Thermal.term`` (for wiring noise into other solves) reproduces ``langevin``'s path:
    same seed and tolerance, same x(t); a zero-amplitude leaf stays deterministic."""
    noise, x0 = Thermal(0.7, mobility=1.0), jnp.array([0.3, -0.2])
    force = lambda t, x, a: -2.0 * x  # noqa: E731
    reference = langevin(force, x0, noise, t1=1.0, dt=0.01, seed=3).ys[0][-1]
    terms = diffrax.MultiTerm(
        diffrax.ODETerm(lambda t, y, a: (force(t, y[0], a), -y[1])),
        noise.term(
            (x0, jnp.ones(())),
            noise.brownian((x0, jnp.ones(())), 0.0, 1.0, 3, 0.01 / 4),
            mask=(True, False),
        ),
    )
    y = diffrax.diffeqsolve(terms, diffrax.Heun(), 0.0, 1.0, 0.01, (x0, jnp.ones(()))).ys
    np.testing.assert_allclose(y[0][-1], reference, rtol=1e-12)
    assert float(y[1][-1]) == pytest.approx(np.exp(-1.0), rel=1e-4)  # Heun on dy = -y dt
    single = noise.term(x0, noise.brownian(x0, 0.0, 1.0, 3, 0.01 / 4))
    np.testing.assert_allclose(
        diffrax.diffeqsolve(
            diffrax.MultiTerm(diffrax.ODETerm(lambda t, x, a: force(t, x, a)), single),
            diffrax.Heun(),
            0.0,
            1.0,
            0.01,
            x0,
        ).ys[-1],
        reference,
        rtol=1e-12,
    )


def test_noisy_resistor_network_equipartition():
    """Node potentials of a grounded resistor network with current sources and thermal
    (Johnson) noise, energy E = v.K v / 2 - I.v: started in equilibrium they stay Gaussian
    about K^-1 I with covariance kT K^-1 (equipartition), whatever the mobility."""
    rng = np.random.default_rng(2)
    n = 5
    laplacian = np.zeros((n, n))
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2)]:
        g = rng.uniform(0.5, 2.0)
        laplacian[[i, j], [i, j]] += g
        laplacian[[i, j], [j, i]] -= g
    stiffness = jnp.asarray(laplacian + 0.3 * np.eye(n))
    sources = jnp.asarray(rng.normal(size=n))
    temperature = 0.5
    covariance = temperature * np.linalg.inv(np.asarray(stiffness))
    mean = np.linalg.solve(np.asarray(stiffness), np.asarray(sources))
    factor = jnp.asarray(np.linalg.cholesky(covariance))
    noise = Thermal(temperature, mobility=jnp.asarray(rng.uniform(0.5, 2.0, n)))
    _, v, _ = ensemble(
        lambda t, v, a: sources - stiffness @ v,
        lambda key: mean + factor @ jax.random.normal(key, (n,)),
        noise,
        duration=2.0,
        dt=0.005,
        brownian="increments",
    )
    deviation = np.asarray(v) - mean
    within_three_errors(np.sum(deviation**2, axis=1), np.trace(covariance))
    within_three_errors(deviation @ np.ones(n), 0.0)


def test_simulate_with_thermal_noise_on_the_memory_is_an_ornstein_uhlenbeck_process():
    """Integral-feedback memory at constant current: dx = -x/tau dt + sqrt(2 mu kT) dW, so the
    stationary variance of x is mu kT tau (the time average over a long run, within 3 SE)."""
    tau, kT, mobility = 0.1, 0.5, 2.0
    synapse = Synapse(IntegralFeedback(tau), DeadZone(1e9), 0.0)
    times = np.linspace(10.0, 410.0, 8001)
    run = functools.partial(
        simulate,
        synapse,
        P.Constant(0.0),
        t1=410.0,
        saveat=times,
        noise=Thermal(kT, mobility),
        dt=0.01,
        brownian="increments",
        noise_seed=3,
    )
    solution = run()
    x = np.asarray(solution.ys[0][:, 0])
    expected = mobility * kT * tau
    effective = (times[-1] - times[0]) / (2 * tau)  # independent samples of x^2
    assert abs(np.var(x) - expected) < 3 * expected * np.sqrt(2 / effective)
    np.testing.assert_array_equal(run().ys[0], solution.ys[0])  # a seed fixes the path
    with pytest.raises(ValueError, match="pass dt"):
        simulate(synapse, P.Constant(0.0), t1=1.0, noise=Thermal(kT))
    with pytest.raises(ValueError, match="noise_seed must be an integer, got 0.5"):
        run(noise_seed=0.5)


def test_relaxing_network_noise_follows_from_kt_alone():
    """A resistor network relaxing as dx/dt = -dF/dx / tau with Thermal(kT) (no mobility: it
    is 1 / tau) fluctuates about its equilibrium with covariance kT H^-1, H = d^2F/dx^2
    (equipartition): the Mahalanobis norm of the deviation has mean n over seeded runs. A
    stated mobility other than 1 / tau is refused."""
    graph = nw.random_graph(8, seed=1)
    probe = nw.ResistorNetwork(graph, [0], [5], ground_nodes=[2])
    w, inputs, targets = probe.init(jax.random.key(0)), jnp.array([[1.0]]), jnp.array([[0.2]])
    free = probe.equilibrium(w, inputs[0])
    hessian = np.asarray(jax.jit(jax.hessian(probe.energy))(free, w, inputs[0]))
    tau = 0.2 * np.linalg.eigvalsh(hessian).max()  # the fastest mode decays at rate 5
    network = nw.ResistorNetwork(graph, [0], [5], ground_nodes=[2], relaxation_time=tau)
    kT = 0.3
    run = functools.partial(
        simulate,
        Synapse(EColiCascade(0.1), DeadZone(1.0), 0.0),  # learning rate 0: w stays
        P.Sawtooth(1.0, 9.0),
        t1=10.0,  # 10 times the slowest relaxation
        network=network,
        rule=rules.EP(1e-9, "positive"),  # a negligible nudge
        task=Schedule(inputs, targets, blend=0.0),
        w0=w,
        mode="relaxation",
        dt=0.02,
        brownian="increments",
    )
    precision = np.linalg.inv(kT * np.linalg.inv(hessian))
    with pytest.warns(UserWarning, match="network times|learning range"):
        deviations = np.array(
            [
                np.asarray(run(noise=Thermal(kT), noise_seed=seed).state[0][0] - free)
                for seed in range(100)
            ]
        )
        within_three_errors(np.einsum("si,ij,sj->s", deviations, precision, deviations), len(free))
        stated = run(noise=Thermal(kT, mobility=1 / tau), noise_seed=3).state[0][0]
    np.testing.assert_allclose(stated - free, deviations[3], rtol=1e-12)
    with pytest.raises(ValueError, match="would break fluctuation-dissipation"):
        run(noise=Thermal(kT, mobility=2 / tau))
