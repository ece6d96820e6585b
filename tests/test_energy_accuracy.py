"""Energy to accuracy of network learning (analysis/thermodynamics/energy_accuracy.py): the
heat of a phase is the physical Joule heat (energy balance with the sources, an independent
route), the TCL ramp's heat equals its closed form for a linear network, and the energy to a
target loss reproduces across disjoint sets of seeds within the reported standard error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from synapse_dyn import networks as nw
from synapse_dyn import training
from synapse_dyn.analysis import thermodynamics as th
from synapse_dyn.analysis.thermodynamics import energy_accuracy as ea
from synapse_dyn.networks import DiodeNetwork, HopfieldNetwork, random_graph

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


def _random_layered(cls, seed):
    """A random layered network converged to 1e-12 (400 sweeps), random parameters, an input
    and a target, and its free, EP-nudged and clamped states with the external current the
    perturbation injects at the outputs (None for the clamp: found from KCL)."""
    rng = np.random.default_rng(seed)
    hidden = 2 * rng.integers(1, 4, size=rng.integers(1, 3))
    sizes = (int(rng.integers(2, 5)), *map(int, hidden), int(rng.integers(1, 4)))
    network = cls(sizes, free_sweeps=400, nudged_sweeps=400)
    w = network.init(jax.random.key(seed))
    if cls is DiodeNetwork:
        w["weights"] = tuple(jnp.asarray(rng.uniform(0.1, 2.0, G.shape)) for G in w["weights"])
    else:
        w["weights"] = tuple(jnp.asarray(rng.normal(0.0, 0.7, W.shape)) for W in w["weights"])
    w["biases"] = tuple(jnp.asarray(rng.normal(0.0, 0.5, b.shape)) for b in w["biases"])
    inputs, target = jnp.asarray(rng.normal(size=sizes[0])), jnp.asarray(rng.normal(size=sizes[-1]))
    beta = 0.7
    free = network.equilibrium(w, inputs)
    nudged = network.equilibrium(w, inputs, nw.SoftNudge(beta, target), free)
    clamped = network.equilibrium(w, inputs, nw.Clamp(0.5 * (free[-1] + target)), free)
    injected = (jnp.zeros(sizes[-1]), -beta * (nudged[-1] - target), None)
    return network, w, inputs, zip((free, nudged, clamped), injected, strict=True)


@pytest.mark.parametrize("seed", range(3))
def test_diode_power_is_the_power_the_sources_deliver(seed):
    """Tellegen on random diode networks at the free, EP-nudged and clamped equilibria: the
    power dissipated in the resistors and diodes (``power``) equals the power the sources
    deliver: the input voltage sources (source potential x the current KCL sends into the
    first crossbar), the bias current sources (b v) and the output's nudge current (J v_out;
    the clamp's current from KCL at the outputs). KCL at the hidden nodes gives the diode
    currents: each carries current only in its forward direction and dissipates nothing
    (I_d v = 0). The heat is not 2 E: the biases deliver power."""
    network, w, inputs, states = _random_layered(DiodeNetwork, seed)
    for x, injected in states:
        layers = (network.sources(inputs), *x)
        leaving = [jnp.zeros_like(v) for v in layers]  # resistor current out of each node
        for k, G in enumerate(w["weights"]):
            flow = G * (layers[k + 1][:, None] - layers[k][None, :])  # up_i -> low_j
            leaving[k + 1] = leaving[k + 1] + flow.sum(1)
            leaving[k] = leaving[k] - flow.sum(0)
        delivered = layers[0] @ leaving[0] + sum(b @ v for b, v in zip(w["biases"], x, strict=True))
        # current into each free node beyond its bias: from its diode, the nudge or the clamp
        excess = [i - b for i, b in zip(leaving[1:], w["biases"], strict=True)]
        if injected is None:
            injected = excess[-1]  # the clamp source's current
        np.testing.assert_allclose(excess[-1], injected, atol=1e-9)
        delivered += injected @ x[-1]
        diodes = 0.0
        for v, current in zip(x[:-1], excess[:-1], strict=True):  # from ground into the node
            half = v.size // 2
            assert np.all(current[:half] >= -1e-9) and np.all(current[half:] <= 1e-9)
            diodes += -current @ v
        assert abs(diodes) < 1e-9
        power = network.power(x, w, inputs)
        assert power > 0 and power == pytest.approx(float(delivered - diodes), rel=1e-9)
        bias = sum(b @ v for b, v in zip(w["biases"], x, strict=True))
        assert power == pytest.approx(2 * float(network.energy(x, w, inputs) + bias), rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_hopfield_circuit_power_is_the_power_the_sources_deliver(seed):
    """Hopfield's analog circuit (PNAS 1984) built element by element for random layered
    networks: amplifier input potentials u from KCL with the known source currents (bias b,
    the EP nudge's J = -beta dC/do at the outputs; the clamp holds u_out = s_out / S). The
    amplifiers' outputs clip(S u) reproduce the equilibrium (the circuit's fixed point is the
    network's), and the resistors' heat (``power``) equals the power the sources deliver:
    voltage sources and amplifier outputs e x their current, current sources u x current."""
    network, w, inputs, states = _random_layered(HopfieldNetwork, seed)
    weights, n = w["weights"], len(network.sizes) - 1
    bounds = network.layer_bounds()
    for state, injected in states:
        x = [np.asarray(s) for s in state]
        terminals = (np.asarray(inputs), *x)
        # resistors (conductance, source terminal potential, free layer and unit fed)
        elements = []
        for k, W in enumerate(weights):  # W couples terminals[k] (below) and free layer k
            for (i, j), value in np.ndenumerate(np.asarray(W)):
                sign = np.sign(value)
                elements.append((abs(value), sign * terminals[k][j], k, i))
                if k > 0:
                    elements.append((abs(value), sign * x[k][i], k - 1, j))
        total = [np.zeros(m) for m in network.sizes[1:]]
        fed = [np.zeros(m) for m in network.sizes[1:]]
        for g, e, k, i in elements:
            total[k][i] += g
            fed[k][i] += g * e
        external = [np.asarray(b) for b in w["biases"]]
        if injected is not None:
            external[-1] = external[-1] + np.asarray(injected)
        u = [(f + c) / s for f, c, s in zip(fed, external, total, strict=True)]
        if injected is None:  # the clamp holds the output amplifier's input
            u[-1] = np.asarray(x[-1]) / total[-1]
            external[-1] = total[-1] * u[-1] - fed[-1]  # its current, from KCL
        for k in range(n):
            lo, hi = bounds[k]
            if injected is not None or k < n - 1:
                np.testing.assert_allclose(np.clip(total[k] * u[k], lo, hi), x[k], atol=1e-9)
        heat = sum(g * (e - u[k][i]) ** 2 for g, e, k, i in elements)
        delivered = sum(g * e * (e - u[k][i]) for g, e, k, i in elements)
        delivered += sum(c @ v for c, v in zip(external, u, strict=True))
        power = float(network.power(state, w, inputs))
        assert power == pytest.approx(heat, rel=1e-10)
        assert power == pytest.approx(float(delivered), rel=1e-9)


def test_hopfield_power_refuses_bounded_outputs():
    network = HopfieldNetwork((2, 2, 1), output_bounds=(0.0, 1.0))
    w = network.init(jax.random.key(0))
    with pytest.raises(ValueError, match="output_bounds"):
        network.power(network.initial_state(), w, jnp.ones(2))


def test_diode_iris_energy_to_target_reproduces_across_seeds():
    """Iris on a diode network (the figure's second task, smaller): two disjoint sets of five
    seeds, every one reaching 0.8 of its initial test loss, give the same mean energy to get
    there within three combined standard errors, for EP and CpL."""
    config = training.TrainConfig(
        substrate="diode",
        task="iris",
        hidden=[4],
        input_gain=2.0,
        free_sweeps=8,
        nudged_sweeps=8,
        batch_size=8,
        epochs=3,
        learning_rate=0.1,
        beta=1.0,
        eta=0.5,
        tau_rest=10.0,
    )
    first, second = (
        ea.energy_to_accuracy(config, seeds, methods=("ep", "cpl"), target_fraction=0.8)
        for seeds in (range(5), range(5, 10))
    )
    assert np.all(np.isfinite(first.energy_to_target)) and np.all(
        np.isfinite(second.energy_to_target)
    )
    gap = np.abs(first.energy_to_target_mean - second.energy_to_target_mean)
    error = np.hypot(first.energy_to_target_error, second.energy_to_target_error)
    assert np.all(gap < 3 * error), (gap.values, error.values)
    assert np.all(error > 0)


def test_energy_to_accuracy_refuses_a_substrate_without_dissipation():
    config = training.TrainConfig(substrate="elastic", task="allostery")
    with pytest.raises(ValueError, match="'elastic' substrate dissipates nothing"):
        ea.learning_energy(config, "ep")
