"""Quantum equilibrium propagation: Ising networks (exact and DMRG ground states, shots) and
quantum oscillator networks, against finite differences, classical limits and closed forms."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synapse_dyn import rules
from synapse_dyn.networks import Graph, ResistorNetwork, SoftNudge, random_graph
from synapse_dyn.networks import quantum as q
from synapse_dyn.networks.quantum import dynamics
from synapse_dyn.protocols import PiecewiseLinear

BETAS = np.array([0.1, 0.05, 0.025, 0.0125])


def flat(tree):
    return np.concatenate([np.ravel(tree[key]) for key in ("J", "h", "Gamma")])


def finite_difference_gradient(network, w, x, y, eps=1e-5):
    """Central differences of the exact ground-state loss <C>."""
    gradient = {}
    for key in ("J", "h", "Gamma"):
        gradient[key] = np.zeros_like(w[key])
        for i in range(w[key].size):
            shifted = []
            for step in (eps, -eps):
                v = {k: np.array(a, dtype=float) for k, a in w.items()}
                v[key][i] += step
                shifted.append(q.evaluate(network, v, x, y)["loss"])
            gradient[key][i] = (shifted[0] - shifted[1]) / (2 * eps)
    return gradient


@pytest.fixture(scope="module")
def ising8():
    network = q.TransverseFieldIsing(random_graph(8, seed=1), [0, 1], [6, 7])
    w = network.init(seed=0)
    x, y = np.array([[0.3, -0.5]]), np.array([[1.0, -1.0]])
    return network, w, x, y, finite_difference_gradient(network, w, x, y)


def slope(betas, errors):
    return np.polyfit(np.log(betas), np.log(errors), 1)[0]


# ---- Ising: gradients -------------------------------------------------------------------------


def test_adjoint_gradient_equals_finite_differences(ising8):
    network, w, x, y, reference = ising8
    adjoint = q.exact_gradient(network, w, x, y)
    np.testing.assert_allclose(flat(adjoint), flat(reference), atol=1e-8)
    assert np.abs(flat(reference)).max() > 0.1  # a real gradient, not zeros


def test_ep_bias_is_first_order_for_one_sided_and_second_order_for_centered(ising8):
    network, w, x, y, reference = ising8
    expected = {"positive": 1.0, "negative": 1.0, "centered": 2.0}
    for variant, order in expected.items():
        errors = [
            np.linalg.norm(
                flat(q.ep_gradient(network, w, x, y, rules.EP(b, variant))) - flat(reference)
            )
            for b in BETAS
        ]
        assert abs(slope(BETAS, errors) - order) < 0.15, (variant, errors)


def test_ep_bias_orders_hold_on_a_32_qubit_chain_by_dmrg():
    """The same orders beyond exact diagonalisation: a paramagnetic 32-qubit chain, DMRG ground
    states, against central differences of the DMRG loss on four parameters by the output.
    The estimates are ep_gradient's (g = [s(b2) - s(b1)] / (b2 - b1) over the rule's phase
    strengths) from one free state and one nudged state per strength, shared by the variants
    (ep_gradient itself, which solves every phase of every call, is tested above)."""
    n = 32  # gapped (Gamma > J): bond dimension 32 holds the state to the solver's tolerance
    network = q.TransverseFieldIsing(q.chain(n), [0], [n - 1], method="dmrg", bond_dims=(8, 16, 32))
    rng = np.random.default_rng(1)
    w = {
        "J": rng.uniform(0.5, 1.0, n - 1),
        "h": rng.uniform(-0.2, 0.2, n),
        "Gamma": rng.uniform(1.2, 1.6, n),
    }
    x, y = np.array([0.3]), np.array([1.0])
    probes = [("J", n - 2), ("h", n - 1), ("Gamma", n - 1), ("Gamma", n - 2)]
    eps, reference = 1e-3, []
    for key, i in probes:
        losses = []
        for step in (eps, -eps):
            v = {k: a.copy() for k, a in w.items()}
            v[key][i] += step
            losses.append(network.loss(network.solve(v, x), y))
        reference.append((losses[0] - losses[1]) / (2 * eps))
    assert np.linalg.norm(reference) > 0.05  # a real gradient
    betas = BETAS[:3]
    free = network.solve(w, x)
    states = {None: free} | {
        b: network.solve(w, x, SoftNudge(b, y, rules.EP(abs(b)).cost), free)
        for b in (*betas, *-betas)
    }
    currents = {b: network.synaptic_current(state) for b, state in states.items()}
    for variant, order in {"positive": 1.0, "negative": 1.0, "centered": 2.0}.items():
        errors = []
        for b in betas:
            b1, b2 = (None if v is None else float(v) for v in rules.EP(b, variant).strengths(1.0))
            estimate = [
                (currents[b2][k][i] - currents[b1][k][i]) / ((b2 or 0.0) - (b1 or 0.0))
                for k, i in probes
            ]
            errors.append(np.linalg.norm(np.array(estimate) - reference))
        assert abs(slope(betas, errors) - order) < 0.15, (variant, errors)


def test_dmrg_equals_exact_diagonalisation_at_12_qubits():
    for graph in (q.chain(12), q.ladder(6)):
        exact = q.TransverseFieldIsing(graph, [0], [11])
        dmrg = q.TransverseFieldIsing(graph, [0], [11], method="dmrg")
        w = exact.init(seed=3, gamma=1.5)
        a, b = exact.solve(w, [0.2]), dmrg.solve(w, [0.2])
        assert abs(a.energy - b.energy) < 1e-8
        ea, eb = exact.expectations(a), dmrg.expectations(b)
        for key in ea:
            np.testing.assert_allclose(ea[key], eb[key], atol=1e-7)
        # the nudged phase (warm-started from the free MPS) too, constant of beta C included
        nudge = SoftNudge(0.3, [1.0])
        assert (
            abs(exact.solve(w, [0.2], nudge).energy - dmrg.solve(w, [0.2], nudge, b).energy) < 1e-8
        )


# ---- Ising: measurement model ---------------------------------------------------------------


def test_shot_noise_variance_scales_as_one_over_beta_squared_shots(ising8):
    network, w, x, y, _ = ising8
    beta, repeats, shots = 0.1, 200, np.array([100, 400, 1600, 6400])
    rule = rules.EP(beta, "positive")
    exact = flat(q.ep_gradient(network, w, x, y, rule))
    variances = []
    for n in shots:
        estimates = q.ep_gradient(
            network, w, x, y, rule, shots=int(n), seed=int(n), repeats=repeats
        )
        g = np.concatenate([estimates[k].reshape(repeats, -1) for k in ("J", "h", "Gamma")], 1)
        variances.append(g.var(axis=0, ddof=1).sum())
        assert np.abs(g.mean(0) - exact).max() < 6 * np.sqrt(g.var(0).max() / repeats)  # unbiased
    assert abs(slope(shots, variances) + 1.0) < 0.1, variances
    # the prediction: independent phases, Var(O) = 1 - <O>^2 for every Pauli string O
    free = network.solve(w, x[0])
    nudged = network.solve(w, x[0], SoftNudge(beta, y[0]))
    predicted = (
        sum(np.sum(1 - flat(network.synaptic_current(s)) ** 2) for s in (free, nudged)) / beta**2
    )
    np.testing.assert_allclose(np.asarray(variances) * shots, predicted, rtol=0.2)


def test_mps_shots_are_unbiased_with_binomial_spread():
    network = q.TransverseFieldIsing(q.chain(6), [0], [5], method="dmrg")
    w = network.init(seed=2, gamma=1.2)
    state = network.solve(w, [0.4])
    exact = network.expectations(state)
    shots, repeats = 100, 8
    sampled = network.expectations(state, shots, np.random.default_rng(0), repeats)
    z2 = [(sampled[k] - exact[k]) ** 2 / ((1 - exact[k] ** 2) / shots) for k in ("Z", "ZZ", "X")]
    mean_z2 = np.mean(np.concatenate([z.ravel() for z in z2]))
    assert 0.6 < mean_z2 < 1.5  # chi-square / dof over 136 draws


# ---- the nudge in physical time ------------------------------------------------------------


def test_linear_ramp_diabatic_error_follows_the_adiabatic_law():
    network = q.TransverseFieldIsing(random_graph(6, seed=3), [0], [5])
    w = network.init(seed=1, gamma=1.0)
    x, y, beta = np.array([0.3]), np.array([1.0]), 0.1
    durations = np.geomspace(4.0, 64.0, 9)
    predicted, _ = dynamics.linear_ramp_prediction(network, w, x, y, beta, durations)
    measured = np.array(
        [
            dynamics.diabatic_error(
                network, w, x, y, PiecewiseLinear([0.0, t], [0.0, beta], periodic=False), t
            )["infidelity"]
            for t in durations
        ]
    )
    # first-order adiabatic perturbation theory, no free parameter: within 10% at every T
    np.testing.assert_allclose(measured, predicted, rtol=0.1)
    # fitted power law once the kinks' interference factor (T^2 times the prediction) is
    # divided out: 1 - F ~ T^-2
    exponent = slope(durations, measured / (predicted * durations**2))
    assert abs(exponent + 2.0) < 0.15, exponent
    assert measured.max() / measured.min() > 100  # a real fall over the range


# ---- training -------------------------------------------------------------------------------


def test_qep_training_on_iris_matches_exact_gradient_training():
    train, test = q.iris_two_class()  # versicolor vs virginica, petal length and width
    graph, _ = q.from_couplings(1.0 - np.eye(4))  # all-to-all: 2 inputs, 1 hidden, 1 output
    network = q.TransverseFieldIsing(graph, [0, 1], [3], min_transverse_field=0.5)
    w0 = network.init(seed=0)
    settings = dict(learning_rate=0.06, epochs=30, batch_size=len(train[0]), test=test)
    _, exact = q.train(network, w0, train, None, **settings)
    _, qep = q.train(network, w0, train, rules.EP(0.05, "centered"), **settings)
    assert qep["test_accuracy"][-1] >= 0.9
    assert abs(qep["test_accuracy"][-1] - exact["test_accuracy"][-1]) <= 0.03
    assert qep["train_loss"][-1] < 0.3 * qep["train_loss"][0]
    np.testing.assert_allclose(qep["train_loss"], exact["train_loss"], atol=0.01)


# ---- Oscillators ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def springs():
    graph = random_graph(10, seed=2)
    nodes = dict(input_nodes=[0, 1], output_nodes=[7, 8], ground_nodes=[9])
    classical = ResistorNetwork(graph, **nodes)
    w = classical.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (5, 2))
    y = jax.random.uniform(jax.random.key(2), (5, 2))
    return graph, nodes, classical, w, x, y


def test_oscillators_at_vanishing_hbar_give_classical_spring_ep(springs):
    graph, nodes, classical, w, x, y = springs
    quantum = q.QuantumOscillatorNetwork(graph, **nodes, hbar=1e-12, masses=np.linspace(1, 2, 7))
    for variant in ("positive", "negative", "centered"):
        rule = rules.EP(0.05, variant)
        a = rules.update(quantum, w, (x, y), rule)
        b = rules.update(classical, w, (x, y), rule)
        np.testing.assert_allclose(a, b, atol=1e-8, rtol=0)
        assert np.abs(b).max() > 1e-3


def test_zero_point_current_equals_covariance_formula(springs):
    graph, nodes, classical, w, x, _ = springs
    quantum = q.QuantumOscillatorNetwork(graph, **nodes, hbar=0.7, masses=np.linspace(1, 2, 7))
    mean, covariance = quantum.equilibrium(w, x[0])
    np.testing.assert_allclose(mean, classical.equilibrium(w, x[0]), atol=1e-12)
    # Hellmann-Feynman on the zero-point energy (hbar/2) tr Omega vs 1/2 Var(x_a - x_b) from
    # Sigma = (hbar/2) M^-1/2 Omega^-1 M^-1/2
    zero_point = jax.grad(quantum.zero_point_energy)(w)
    quantum_part = quantum.synaptic_current((mean, covariance), w, x[0]) - (
        classical.synaptic_current(mean, w, x[0])
    )
    np.testing.assert_allclose(zero_point, quantum_part, atol=1e-12)
    assert np.abs(zero_point).max() > 0.01
    energy_of = eqx.filter_jit(quantum.energy)
    energy = energy_of((mean, covariance), w, x[0])
    np.testing.assert_allclose(
        energy, classical.energy(mean, w, x[0]) + quantum.zero_point_energy(w), atol=1e-12
    )
    # the ground state minimises <H> over Gaussian states
    for seed in range(5):
        a = jax.random.normal(jax.random.key(seed), covariance.shape) * 0.05
        other = covariance + a @ a.T + 1e-3 * jnp.eye(covariance.shape[0])
        assert energy_of((mean, other), w, x[0]) > energy


def test_single_oscillator_closed_form():
    # one free node between an input anchor (k1) and ground (k2): omega = sqrt((k1 + k2) / m)
    graph = Graph(3, [0, 1], [1, 2])
    m, hbar, k = 2.0, 0.3, jnp.array([1.5, 0.5])
    network = q.QuantumOscillatorNetwork(graph, [0], [1], [2], masses=m, hbar=hbar)
    mean, covariance = network.equilibrium(k, jnp.array([1.0]))
    omega = np.sqrt(2.0 / m)
    np.testing.assert_allclose(mean, [1.5 / 2.0], atol=1e-14)
    np.testing.assert_allclose(covariance, [[hbar / (2 * m * omega)]], rtol=1e-12)
    np.testing.assert_allclose(network.zero_point_energy(k), hbar * omega / 2, rtol=1e-12)
    # minimum uncertainty: Var(p) = hbar^2 / (4 Var(x))
    variance_p = m * omega * hbar / 2
    np.testing.assert_allclose(covariance[0, 0] * variance_p, hbar**2 / 4, rtol=1e-12)


def test_oscillator_qep_estimates_the_quantum_loss_gradient(springs):
    graph, nodes, _, w, x, y = springs
    rest = np.linspace(-0.3, 0.3, graph.n_edges)
    quantum = q.QuantumOscillatorNetwork(graph, **nodes, hbar=0.5, rest_lengths=rest)
    mean = quantum.equilibrium(w, x[0])[0]  # the classical equilibrium, rest lengths included
    np.testing.assert_allclose(jax.grad(quantum.classical_energy)(mean, w, x[0]), 0, atol=1e-12)
    exact = jax.grad(lambda w: quantum.loss(quantum.equilibrium(w, x[0]), y[0]))(w)
    errors = {
        variant: [
            float(
                jnp.linalg.norm(
                    rules.update(quantum, w, (x[:1], y[:1]), rules.EP(b, variant)) - exact
                )
            )
            for b in BETAS / 2
        ]
        for variant in ("positive", "centered")
    }
    assert abs(slope(BETAS, errors["positive"]) - 1) < 0.15
    assert abs(slope(BETAS, errors["centered"]) - 2) < 0.15


# ---- bad input --------------------------------------------------------------------------------


def test_bad_input_is_refused_with_clear_messages(ising8):
    network, w, x, y, _ = ising8
    with pytest.raises(ValueError, match="too many for exact diagonalisation.*dmrg"):
        q.TransverseFieldIsing(q.chain(21), [0], [20])
    with pytest.raises(ValueError, match="hbar must be > 0"):
        q.QuantumOscillatorNetwork(Graph(2, [0], [1]), [0], [1], hbar=0.0)
    with pytest.raises(ValueError, match="hbar must be > 0"):
        q.QuantumOscillatorNetwork(Graph(2, [0], [1]), [0], [1], hbar=-1.0)
    with pytest.raises(TypeError, match="Hermitian"):
        q.ep_gradient(network, {**w, "J": w["J"] + 0.1j}, x, y, rules.EP(0.1))
    with pytest.raises(ValueError, match="not symmetric"):
        q.from_couplings(np.array([[0.0, 1.0], [0.5, 0.0]]))
    with pytest.raises(TypeError, match="EP only"):
        q.ep_gradient(network, w, x, y, rules.CpL(0.5))
    with pytest.raises(ValueError, match="shapes"):
        q.ep_gradient(network, w, x[:, :1], y, rules.EP(0.1))
    graph, couplings = q.from_couplings(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0, 1, 0]]))
    degenerate = q.TransverseFieldIsing(graph, [0], [2])
    w0 = {"J": couplings, "h": np.zeros(3), "Gamma": np.zeros(3)}
    with pytest.warns(q.DegenerateGroundStateWarning, match="spectral gap"):
        degenerate.solve(w0, [0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        degenerate.solve({**w0, "Gamma": np.full(3, 0.5)}, [0.0])  # gapped: no warning
