"""Dissipation measurements: Markov synapses along protocols, resistor networks (Tellegen),
Sekimoto heat by two routes, learning against temperature, and the Fig. 6B trend."""

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest

from synapse_dyn.analysis import thermodynamics as th
from synapse_dyn.analysis.figures import fig6b
from synapse_dyn.noise import Thermal, langevin
from synapse_dyn.protocols import Sawtooth
from synapse_dyn.synapses import DeadZone, IntegralFeedback, MarkovLadder, Synapse, cycle_update


def test_steady_dissipation_units_and_time_scale():
    """Per simulation time unit the ladder dissipates time_scale x the Markov-unit rate
    (1.76 kT per Markov time at gamma = 0.1, rate factor 25, s = 0)."""
    ds = th.steady_dissipation(MarkovLadder(0.1, 25.0, time_scale=5.0), [0.0, 100.0])
    assert ds.dissipation.attrs["model_units"] == "kT / time_unit"
    assert float(ds.dissipation[0]) == pytest.approx(5 * 1.76, rel=0.01)
    assert float(ds.dissipation[1]) > 0


@pytest.fixture(scope="module")
def driven_ladder():
    ladder = MarkovLadder(0.1, 25.0)
    drive = Sawtooth(0.3, 1.5, free=0.0, clamped=100.0)
    # a mild drive: the explicit Tsit5 compiles faster than the default implicit solver
    return th.protocol_dissipation(
        ladder, drive, t1=2 * float(drive.period), n_save=61, solver=diffrax.Tsit5()
    )


def test_protocol_entropy_balance(driven_ladder):
    """Integrated total entropy production = Delta S_system + entropy flow to the medium,
    with the total rate integrated inside the solver and S_system from the saved states;
    the second law holds at every time."""
    ds = driven_ladder
    system = ds.system_entropy.values
    np.testing.assert_allclose(
        ds.entropy_production.values,
        system - system[0] + ds.medium_entropy.values,
        rtol=1e-7,
        atol=1e-9,
    )
    assert np.all(ds.entropy_production_rate.values >= 0)
    # the drive pushes the ladder away from its steady state: it dissipates more than at rest
    at_rest = float(th.steady_dissipation(MarkovLadder(0.1, 25.0), 0.0).dissipation[0])
    assert ds.entropy_production.values[-1] / float(ds.time[-1]) > at_rest
    # the trapezoid of the saved rates agrees with the solver's integral
    np.testing.assert_allclose(
        np.trapezoid(ds.entropy_production_rate.values, ds.time.values),
        ds.entropy_production.values[-1],
        rtol=2e-2,
    )


def random_network(seed, n_nodes=12, n_extra=14):
    """A connected random graph: a spanning path plus random chords."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_nodes)
    edges = [(order[k], order[k + 1]) for k in range(n_nodes - 1)]
    while len(edges) < n_nodes - 1 + n_extra:
        i, j = rng.choice(n_nodes, 2, replace=False)
        edges.append((i, j))
    return np.array(edges), rng.uniform(0.1, 2.0, len(edges))


def test_joule_heat_equals_source_power():
    """Tellegen: at the equilibrium of a linear resistor network driven by current sources,
    sum g dv^2 = sum I v, to 1e-9 (node 0 grounded)."""
    edges, conductances = random_network(3)
    incidence = th.incidence_matrix(edges, 12)
    laplacian = np.asarray(incidence).T @ np.diag(conductances) @ np.asarray(incidence)
    currents = np.random.default_rng(4).normal(size=12)
    currents -= currents.mean()
    potentials = np.zeros(12)
    potentials[1:] = np.linalg.solve(laplacian[1:, 1:], currents[1:])
    joule = float(th.joule_power(incidence, conductances, potentials))
    assert joule == pytest.approx(float(th.source_power(currents, potentials)), rel=1e-9)
    np.testing.assert_allclose(laplacian @ potentials, currents, atol=1e-10)  # Kirchhoff


def test_joule_heat_per_cycle_and_phase():
    """Sources modulated as sin(2 pi t / T): v(t) = sin(.) v0 and P = sin^2 P0, so each cycle
    dissipates P0 T / 2, split equally between its halves (free, clamped)."""
    edges, conductances = random_network(5)
    incidence = th.incidence_matrix(edges, 12)
    v0 = np.random.default_rng(6).normal(size=12)
    period = 2.0
    times = np.linspace(0.0, 3 * period, 3001)
    potentials = np.sin(2 * np.pi * times / period)[:, None] * v0[None, :]
    clamped = np.mod(times, period) >= period / 2
    ds = th.joule_heat(times, incidence, conductances, potentials, period=period, clamped=clamped)
    p0 = float(th.joule_power(incidence, conductances, v0))
    np.testing.assert_allclose(ds.heat_per_cycle, p0 * period / 2, rtol=1e-5)
    np.testing.assert_allclose(ds.heat_by_phase, p0 * period / 4, rtol=1e-3)
    assert float(ds.heat[-1]) == pytest.approx(3 * p0 * period / 2, rel=1e-5)
    for name in ds.variables:
        assert {"units", "long_name"} <= set(ds[name].attrs)


def test_sekimoto_heat_two_routes():
    """The heat accumulated inside the SDE solve (Heun, Stratonovich) against the post-hoc
    midpoint sum over the recorded path, on a non-equilibrium 2D trap."""
    rotation = jnp.array([[0.0, -1.0], [1.0, 0.0]])
    force = lambda t, x, a: -x + 2.0 * rotation @ x  # noqa: E731
    solution = langevin(
        force,
        jnp.array([0.5, -0.3]),
        Thermal(1.0),
        t1=2.0,
        dt=1e-3,
        saveat=jnp.linspace(0.0, 2.0, 2001),
    )
    x, heat = solution.ys
    posthoc = np.asarray(th.sekimoto_heat(solution.ts, x, force))
    assert float(heat[-1]) > 5.0  # about 2 eps^2 t = 16 on average
    np.testing.assert_allclose(posthoc, heat, atol=0.02 * float(np.max(np.abs(heat))))


def test_learning_against_temperature():
    """At kT = 0 the SDE route reproduces the exact cycle update of the noise-free synapse;
    the error of the update grows with temperature."""
    memory, threshold = IntegralFeedback(0.02), 0.05
    synapse = Synapse(memory, DeadZone(threshold))
    signal = Sawtooth(0.2, 1.8, free=0.0, clamped=1.0)
    ds = th.learning_vs_temperature(
        synapse,
        signal,
        [0.0, 1e-5, 1e-3],
        mobility=1.0,
        dt=2e-3,
        n_samples=8,
        brownian="increments",
    )
    exact = cycle_update(
        memory.kernel(), DeadZone(threshold), Sawtooth(0.2, 1.8, -0.5, 0.5), jnp.array([1.0]), 0.5
    )
    assert float(ds.dw_noise_free) == pytest.approx(float(exact[0]), rel=1e-3)
    np.testing.assert_allclose(ds.dw.sel(temperature=0.0), float(exact[0]), rtol=1e-3)
    assert np.all(np.diff(ds.rms_error.values) > 0) and float(ds.rms_error[0]) < 1e-12
    with pytest.raises(ValueError, match="temperature"):
        th.learning_vs_temperature(synapse, signal, [-1.0], mobility=1.0, dt=2e-3)


@pytest.fixture
def figure_data(quick_figure):
    return quick_figure("fig6b")


@pytest.mark.xdist_group("figure fig6b")
def test_fig6b_trend(figure_data):
    """Offset falls as dissipation grows (negative rank correlation, p < 0.01)."""
    ds = figure_data
    assert ds.gamma.size == 200 and {
        "gamma",
        "rate_factor",
        "dissipation",
        "kernel_area",
        "offset",
    } <= set(ds.variables)
    result = fig6b.trend(ds)
    assert result.statistic < 0 and result.pvalue < 0.01
    # the dissipation is that of each kernel's own rate matrix (its gamma and rate factor)
    one = int(np.argmax(ds.gamma.values < 0.5))
    own = th.entropy_production_rate(
        MarkovLadder(float(ds.gamma[one]), float(ds.rate_factor[one])).markov_matrix(0.0)
    )
    assert float(ds.dissipation[one]) == pytest.approx(float(own), rel=1e-10)
    figure = fig6b.plot(ds)
    assert figure.axes[0].get_xlabel().startswith("dissipation")


def test_bad_input():
    edges, conductances = random_network(1)
    incidence = th.incidence_matrix(edges, 12)
    with pytest.raises(ValueError, match="conductances"):
        th.joule_power(incidence, -conductances, np.zeros(12))
    with pytest.raises(ValueError, match="outside"):
        th.incidence_matrix(np.array([[0, 12]]), 12)
    with pytest.raises(ValueError, match="increasing"):
        th.joule_heat(np.array([0.0, 0.0]), incidence, conductances, np.zeros((2, 12)))
    with pytest.raises(ValueError, match="temperature"):
        th.total_entropy_production(1.0, -1.0, 0.0, 0.0)
