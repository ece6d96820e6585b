"""Energy to accuracy of network learning (analysis/thermodynamics/energy_accuracy.py): the
heat of a phase is the physical Joule heat (energy balance with the sources, an independent
route), the TCL ramp's heat equals its closed form for a linear network, and the energy to a
target loss reproduces across disjoint sets of seeds within the reported standard error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from synapse_dyn import training
from synapse_dyn.analysis import thermodynamics as th
from synapse_dyn.analysis.thermodynamics import energy_accuracy as ea
from synapse_dyn.networks import random_graph

BASE = training.TrainConfig(
    substrate="resistor",
    task="regression",
    n_nodes=16,
    n_train=16,
    n_test=32,
    batch_size=8,
    epochs=3,
    learning_rate=5.0,
    beta=0.5,
    eta=0.5,
    tau_rest=10.0,  # EP and CpL only here: a short rest keeps the rest heat from dominating
)
# seeds whose random graphs have 38 edges: one compilation for all of them
SEEDS = [s for s in range(40) if random_graph(16, s).n_edges == 38][:10]


@pytest.fixture(scope="module")
def batch():
    network, w, task = training.build(BASE)
    w = w * jnp.exp(jax.random.normal(jax.random.key(1), w.shape))  # non-uniform conductances
    return network, w, jnp.asarray(task.x_train[:8]), jnp.asarray(task.y_train[:8])


def _states(network, w, inputs, targets, rule, strength):
    free = jax.vmap(lambda i: network.equilibrium(w, i))(inputs)
    return jax.vmap(lambda i, y, f: rule.perturb(network, w, i, y, f, strength))(
        inputs, targets, free
    )


@pytest.mark.parametrize("method", ["ep", "cpl"])
def test_phase_heat_is_the_joule_heat_the_sources_supply(batch, method):
    """Explicit EP and CpL: the heat of one cycle equals tau_rest P(x_0) + (tau_fast +
    tau_slow) P(x_b), with P computed two other ways: sum g (B v)^2 (incidence matrix) and the
    power the fixed nodes (sources, ground, clamped outputs) deliver, sum_fixed v_i (L v)_i
    (energy balance: at equilibrium no current leaves the free nodes)."""
    network, w, inputs, targets = batch
    config = training.TrainConfig(**{**BASE.__dict__, "rule": method, "variant": "positive"})
    rule = training._rule(config)  # noqa: SLF001
    incidence = th.incidence_matrix(
        np.stack([network.graph.senders, network.graph.receivers], 1), network.graph.n_nodes
    )
    total = 0.0
    for strength, duration in (
        (0.0, BASE.tau_rest),
        (rule.strength, BASE.tau_fast + BASE.tau_slow),
    ):
        states = _states(network, w, inputs, targets, rule, strength)
        v = jax.vmap(network.potentials)(states, inputs)
        joule = th.joule_power(incidence, w, v)
        free = np.zeros(network.graph.n_nodes, bool)
        free[network.free_nodes] = True
        if strength != 0.0:
            free[network.free_nodes[network.output_slots]] = False  # clamped outputs
        currents = jax.vmap(lambda p: network.currents(p, w))(v)
        np.testing.assert_allclose(np.asarray(currents)[:, free], 0.0, atol=1e-10)
        supplied = th.source_power(jnp.where(free, 0.0, currents), v)
        np.testing.assert_allclose(supplied, joule, rtol=1e-10)
        total += duration * float(jnp.sum(joule))
    heat = ea.cycle_heat(method, network, w, inputs, targets, rule, config)
    assert heat == pytest.approx(total, rel=1e-10)


def test_tcl_ramp_heat_against_adaptive_quadrature(batch):
    """TCL's heat: the nudge of strength u beta (soft nudge, x_{u beta} = (L + u beta c)^-1 ...,
    rational in u) held for an equal share of the ramps, so the ramps' heat is
    (tau_fast + tau_slow) int_0^1 P(x_{u beta}) du; Gauss-Legendre (8 nodes) equals SciPy's
    adaptive quadrature of P to 1e-9, and lies between the rest power and EP's nudged power."""
    network, w, inputs, targets = batch
    config = training.TrainConfig(**{**BASE.__dict__, "rule": "tcl"})
    rule = training._rule(config)  # noqa: SLF001
    beta = float(rule.strength)

    def power(u):
        states = _states(network, w, inputs, targets, rule, u * beta)
        return float(jnp.sum(jax.vmap(lambda x, i: 2 * network.energy(x, w, i))(states, inputs)))

    ramps = BASE.tau_fast + BASE.tau_slow
    mean = integrate.quad(power, 0.0, 1.0, epsabs=0.0, epsrel=1e-12)[0]
    heat = ea.cycle_heat("tcl", network, w, inputs, targets, rule, config)
    assert heat == pytest.approx(BASE.tau_rest * power(0.0) + ramps * mean, rel=1e-9)
    low, high = sorted((power(0.0), power(1.0)))
    assert low <= mean <= high


def test_energy_to_target_reproduces_across_seeds():
    """Two disjoint sets of five seeds give the same mean energy to 0.8 of the initial test loss
    within three combined standard errors, for EP and CpL; units are stated."""
    halves = [
        ea.energy_to_accuracy(BASE, seeds, methods=("ep", "cpl"), target_fraction=0.8)
        for seeds in (SEEDS[:5], SEEDS[5:])
    ]
    first, second = halves
    assert np.all(np.isfinite(first.energy_to_target_mean))
    gap = np.abs(first.energy_to_target_mean - second.energy_to_target_mean)
    error = np.hypot(first.energy_to_target_error, second.energy_to_target_error)
    assert np.all(gap < 3 * error), (gap.values, error.values)
    assert np.all(error > 0)
    assert first.energy.attrs["model_units"] == "energy_unit * time_unit"
    assert first.memory_heat.attrs["model_units"] == "kT"
    # EP and CpL hold no memories; the energy is the Joule heat and it only grows
    np.testing.assert_array_equal(first.memory_heat, 0.0)
    assert np.all(first.energy.diff("epoch") > 0)
