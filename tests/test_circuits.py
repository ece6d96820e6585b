"""Piecewise-linear circuits with VCVS: ReLU networks compiled to circuits compute the
network (and do not without the amplifiers), read back to the same weights; both exact
solvers satisfy Kirchhoff's and the diodes' laws and agree with each other, with an
enumeration of diode states and with ngspice; ill-posed circuits are refused by name."""

import dataclasses
import itertools
import json
import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import xarray as xr
from jax.flatten_util import ravel_pytree

from synapse_dyn import rules, tasks
from synapse_dyn.analysis.figures import drn_gain, drn_table
from synapse_dyn.networks import DiodeNetwork
from synapse_dyn.networks.circuits import (
    VCVS,
    Circuit,
    CurrentSources,
    Diodes,
    Resistors,
    VoltageSources,
    compile_relu,
    drn_circuit,
    read_network,
)
from synapse_dyn.networks.spice import ngspice_available, run_ngspice


def random_mlp(rng, depth, n_in=3, width=6, n_out=2):
    sizes = [n_in] + [width + k for k in range(depth - 1)] + [n_out]
    return [
        (rng.normal(size=(o, i)) / np.sqrt(i), 0.3 * rng.normal(size=o))
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def forward(layers, x):
    for k, (W, b) in enumerate(layers):
        x = x @ W.T + b
        if k < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


def assert_steady_state(circuit, solution, tol=1e-9):
    """Kirchhoff's current law at every node not held by a source, and the diode laws:
    i >= 0, v_d <= 0, i v_d = 0."""
    i = np.asarray(solution.diode_currents)
    vd = np.asarray(circuit.diode_voltages(solution.v))
    assert np.abs(np.asarray(circuit.kcl_residual(solution))).max(initial=0) < tol
    assert i.min(initial=0) >= -tol and vd.max(initial=0) <= tol
    assert np.abs(i * vd).max(initial=0) < tol


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_compiled_relu_network_computes_the_mlp(depth):
    rng = np.random.default_rng(depth)
    layers = random_mlp(rng, depth)
    x = rng.uniform(-2, 2, size=(1000, 3))
    circuit = compile_relu(layers)
    assert circuit.layered
    solution = circuit.solve(x)
    expected = forward(layers, x)
    np.testing.assert_allclose(solution.v[:, circuit.outputs], expected, rtol=0, atol=1e-9)
    assert_steady_state(circuit, solution)
    # hidden diodes both block and conduct over the inputs (the ReLUs are exercised)
    if depth > 1:
        i = np.asarray(solution.diode_currents)
        assert 0.1 < np.mean(i > 1e-12) < 0.9
    # the general solver (complementarity pivoting) agrees with the layered one
    if depth in (2, 4):
        lcp = circuit.solve(x[:100], method="lcp")
        np.testing.assert_allclose(lcp.v, solution.v[:100], rtol=0, atol=1e-9)
        np.testing.assert_allclose(lcp.diode_currents, solution.diode_currents[:100], atol=1e-9)
        assert_steady_state(circuit, lcp)
    # read back: the same weights
    for (W, b), (W0, b0) in zip(read_network(circuit), layers, strict=True):
        np.testing.assert_allclose(W, W0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b, b0, rtol=0, atol=1e-12)
    # without the amplifiers the layers load each other and the scale is lost
    plain = compile_relu(layers, amplifiers=False)
    assert plain.layered == (depth == 1)  # two-way coupled layers need the general solver
    direct = plain.solve(x[:200])
    assert_steady_state(plain, direct)
    difference = np.abs(direct.v[:, plain.outputs] - expected[:200]).max()
    assert difference > 0.3 * np.abs(expected[:200]).max()


def test_equinox_mlp():
    mlp = eqx.nn.MLP(4, 3, 8, 2, activation=jax.nn.relu, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (1000, 4))
    circuit = compile_relu(mlp)
    np.testing.assert_allclose(circuit(x), jax.vmap(mlp)(x), rtol=0, atol=1e-9)
    for (W, b), layer in zip(read_network(circuit), mlp.layers, strict=True):
        np.testing.assert_allclose(W, layer.weight, atol=1e-12)
        np.testing.assert_allclose(b, layer.bias, atol=1e-12)
    with pytest.raises(ValueError, match="ReLU"):
        compile_relu(eqx.nn.MLP(2, 1, 4, 1, activation=jnp.tanh, key=jax.random.key(0)))


def random_circuit(rng, n_diodes=5):
    """Two input sources, a cyclic resistor mesh, a current source, diodes (with series
    offsets) between free nodes and to sources, two VCVS in feedback through the mesh."""
    n = 11  # 0 ground, 1-2 sources, 3-8 mesh, 9-10 VCVS outputs
    a, b = [], []
    for k in range(3, 11):  # a spanning tree plus random chords: the mesh has cycles
        a.append(k)
        b.append(int(rng.integers(0, k)))
    for _ in range(8):
        i, j = rng.choice(np.arange(3, 11), 2, replace=False)
        a.append(int(i))
        b.append(int(j))
    resistors = Resistors(a, b, rng.uniform(0.2, 2.0, len(a)))
    sources = VoltageSources([1, 2], [0, 0], rng.uniform(-0.5, 0.5, 2), [1.0, -0.7], [0, 1])
    anode = rng.choice(np.arange(0, 9), n_diodes)
    cathode = [int(rng.choice([k for k in range(3, 9) if k != x])) for x in anode]
    flip = rng.random(n_diodes) < 0.5
    anode, cathode = np.where(flip, cathode, anode), np.where(flip, anode, cathode)
    diodes = Diodes(anode, cathode, rng.uniform(-0.3, 0.3, n_diodes))
    amps = VCVS([9, 10], [0, 0], rng.choice(np.arange(3, 9), 2), [0, 0], rng.uniform(-1.5, 1.5, 2))
    currents = CurrentSources([0], [int(rng.integers(3, 9))], [rng.uniform(-0.5, 0.5)])
    return Circuit(n, 2, [5, 6], resistors, sources, currents, amps, diodes)


def enumerate_states(circuit, x):
    """The steady state by trying all 2^n diode states: in each, conducting diodes are
    sources of their offset, blocking ones open; a state is the solution when its currents
    are >= 0 and its blocking diodes reverse biased. Nodal equations assembled here, with
    ground eliminated, independently of the circuit's own assembly."""
    n = circuit.n_nodes
    res, src, amp, d = (
        circuit.resistors,
        circuit.voltage_sources,
        circuit.vcvs,
        circuit.diodes,
    )
    cur = circuit.current_sources
    solutions = []
    for on in itertools.product([False, True], repeat=d.anode.size):
        on = np.array(on, bool)
        # unknowns: v (n), source currents, vcvs currents, conducting-diode currents
        k_s, k_e, k_d = src.plus.size, amp.plus.size, int(on.sum())
        size = n + k_s + k_e + k_d
        A = np.zeros((size + 1, size))
        rhs = np.zeros(size + 1)
        for i, j, g in zip(res.a, res.b, np.asarray(res.conductance), strict=True):
            A[i, i] += g
            A[j, j] += g
            A[i, j] -= g
            A[j, i] -= g
        for i, j, c in zip(cur.a, cur.b, np.asarray(cur.current), strict=True):
            rhs[i] -= c
            rhs[j] += c
        row = n
        values = np.asarray(src.values(jnp.asarray(x)[None]))[0]
        branches = [(src.plus[k], src.minus[k]) for k in range(k_s)]
        branches += [(amp.plus[k], amp.minus[k]) for k in range(k_e)]
        branches += [(d.anode[k], d.cathode[k]) for k in np.flatnonzero(on)]
        for col, (p, m) in enumerate(branches):
            A[p, n + col] += 1
            A[m, n + col] -= 1
            A[row, p] += 1
            A[row, m] -= 1
            if col < k_s:
                rhs[row] = values[col]
            elif col < k_s + k_e:
                e = col - k_s
                gain = float(amp.gain[e])
                A[row, amp.control_plus[e]] -= gain
                A[row, amp.control_minus[e]] += gain
            else:
                rhs[row] = float(d.offset[np.flatnonzero(on)[col - k_s - k_e]])
            row += 1
        A[row, 0] = 1.0  # ground
        z = np.linalg.lstsq(A, rhs, rcond=None)[0]
        if np.abs(A @ z - rhs).max() > 1e-9:
            continue
        v = z[:n]
        currents = np.zeros(d.anode.size)
        currents[on] = z[n + k_s + k_e :]
        vd = v[d.anode] - v[d.cathode] - np.asarray(d.offset)
        if currents.min() >= -1e-10 and vd[~on].max(initial=-1.0) <= 1e-10:
            solutions.append((v, currents))
    return solutions


def test_general_solver_on_random_circuits():
    """Random non-layered circuits with VCVS feedback: the pivoting solver satisfies KCL and
    complementarity, and equals the unique steady state found by enumeration."""
    rng = np.random.default_rng(7)
    accepted = refused = 0
    while accepted < 12:
        try:
            circuit = random_circuit(rng)
        except ValueError as error:
            assert "ill-posed" in str(error) or "sees no resistance" in str(error)
            refused += 1
            continue
        assert not circuit.layered
        accepted += 1
        x = rng.uniform(-2, 2, size=(6, 2))
        solution = circuit.solve(x)
        assert_steady_state(circuit, solution)
        for k in range(2):
            (v, i), *others = enumerate_states(circuit, x[k])
            assert not others  # a P-matrix: exactly one steady state
            np.testing.assert_allclose(solution.v[k], v, atol=1e-9)
            np.testing.assert_allclose(solution.diode_currents[k], i, atol=1e-9)
    assert refused < 3 * accepted


def test_refused_feedback_has_several_steady_states():
    """A refused circuit really is ill-posed: a positive-feedback latch (VCVS of gain 3
    around a diode-clamped node) has two steady states for the same input, found by
    enumeration of a circuit built without the check."""
    elements = dict(
        resistors=Resistors([2, 2], [1, 3], [1.0, 1.0]),
        voltage_sources=VoltageSources([1], [0], 0.0, 1.0, 0),
        vcvs=VCVS([3], [0], [2], [0], 3.0),
        diodes=Diodes([2, 0], [0, 2], [0.5, 0.5]),
    )
    with pytest.raises(
        ValueError, match=r"diodes D0 with amplifiers E0 make the circuit ill-posed"
    ):
        Circuit(4, 1, [2], **elements)
    unchecked = types.SimpleNamespace(
        n_nodes=4, current_sources=CurrentSources([], [], []), **elements
    )
    assert len(enumerate_states(unchecked, np.array([0.1]))) >= 2


@pytest.mark.skipif(
    not ngspice_available(), reason="ngspice not installed (apt-get install ngspice)"
)
def test_vcvs_circuits_match_ngspice():
    """E elements and steep D elements (IS = 1e-14 A, N = 1e-4): node voltages within 1e-3
    of the largest, for a compiled ReLU network and a random circuit with feedback."""
    rng = np.random.default_rng(3)
    compiled = compile_relu(random_mlp(rng, 3))
    circuits = [(compiled, rng.uniform(-1, 1, 3))]
    while len(circuits) < 2:
        try:
            circuits.append((random_circuit(rng), rng.uniform(-1, 1, 2)))
        except ValueError:
            continue
    for circuit, x in circuits:
        ours = np.asarray(circuit.solve(x).v)
        spice = run_ngspice(circuit.to_spice(x))
        theirs = np.array([0.0] + [spice[f"n{k}"] for k in range(1, circuit.n_nodes)])
        np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-3 * np.abs(ours).max())


def test_bad_circuits_are_refused_by_name():
    R = lambda a, b, g=1.0: Resistors(a, b, g if np.ndim(g) else [g] * len(a))
    V = VoltageSources([1], [0], 1.0)
    cases = [
        (3, dict(resistors=R([1, 2], [2, 0], [1.0, -0.5]), voltage_sources=V), "R1 has negative"),
        (4, dict(resistors=R([1], [2]), voltage_sources=V), r"nodes \[3\] float"),
        (
            4,
            dict(resistors=R([1], [2]), voltage_sources=V, diodes=Diodes([2, 3], [3, 0])),
            r"nodes \[3\] reach ground only through diodes D0, D1 \(diodes in series",
        ),
        (
            3,
            dict(resistors=R([1], [2]), voltage_sources=V, diodes=Diodes([1], [0])),
            "D0 lies across voltage sources",
        ),
        (
            3,
            dict(resistors=R([1], [2]), voltage_sources=VoltageSources([1, 1], [0, 0], [1, 2])),
            "V0, V1 all set node 1",
        ),
        (  # two amplifiers in a loop of unit gain: v3 = 2 v4, v4 = v3 / 2
            5,
            dict(
                resistors=R([1, 3], [2, 2]),
                voltage_sources=V,
                vcvs=VCVS([3, 4], [0, 0], [4, 3], [0, 0], [2.0, 0.5]),
            ),
            r"singular: E0, E1 form a loop",
        ),
    ]
    for n_nodes, elements, message in cases:
        with pytest.raises(ValueError, match=message):
            Circuit(n_nodes, 1, [2], **elements)
    good = Circuit(3, 1, [2], R([1], [2]), VoltageSources([1], [0], 0.0, 1.0, 0))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 1\)"):
        good.solve(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="finite"):
        good.solve(np.array([np.nan]))
    with pytest.raises(ValueError, match="not a node"):
        Circuit(3, 1, [2], R([1], [7]), V)
    with pytest.raises(ValueError, match=r"one value per element \(2\) or a scalar"):
        Resistors([1, 2], [0, 1, 2], 1.0)


def test_tbp_gradient_is_the_derivative_of_the_truncated_relaxation():
    """TBP = d/dw of the loss after the solver's sweeps: central finite differences along
    random directions; with many sweeps it becomes the implicit (exact) gradient."""
    key_w, key_b, key_d = jax.random.split(jax.random.key(0), 3)
    sizes, x, y = (3, 6, 4, 2), jnp.array([0.7, -0.2, 0.4]), jnp.array([1.0, 0.0])
    net = DiodeNetwork(sizes, input_gain=3.0, free_sweeps=5, nudged_sweeps=5)
    w = net.init(key_w)
    w["biases"] = tuple(
        0.2 * jax.random.normal(k, b.shape)
        for k, b in zip(jax.random.split(key_b, 3), w["biases"], strict=True)
    )
    tbp = eqx.filter_jit(rules.TBP().estimate)
    g = tbp(net, w, x, y, jnp.ones(()))
    loss = jax.jit(lambda w_: rules.TBP().cost(net.output(net.solve(w_, x, None, None)), y))
    flat, unravel = ravel_pytree(w)
    gradient = ravel_pytree(g)[0]
    for k in jax.random.split(key_d, 4):
        d = jax.random.normal(k, flat.shape)
        eps = 1e-6
        fd = (loss(unravel(flat + eps * d)) - loss(unravel(flat - eps * d))) / (2 * eps)
        assert abs(float(fd - gradient @ d)) < 1e-7 * max(1.0, abs(float(fd)))
    converged = DiodeNetwork(sizes, input_gain=3.0, free_sweeps=150, nudged_sweeps=150)
    exact = eqx.filter_jit(rules.ExactGradient().estimate)
    np.testing.assert_allclose(
        ravel_pytree(tbp(converged, w, x, y, jnp.ones(())))[0],
        ravel_pytree(exact(converged, w, x, y, jnp.ones(())))[0],
        atol=1e-8,
    )


def test_drn_ep_is_within_one_and_a_half_points_of_tbp_on_digits():
    """The same DRN (64-32-10, input gain 30, 4 sweeps) trained 450 Adam steps (5 epochs) by
    centered EP and by truncated backpropagation through its sweeps: test errors within 1.5
    points, both learning (< 10 % error on 10 classes)."""
    task = tasks.digits(seed=0)
    errors, optimizer = {}, drn_table.SHIPPED.optimizer("DRN-EP", 1, 89)
    for method in ("DRN-EP", "DRN-TBP"):
        model, params = drn_table.build(method, 1, task, drn_table.SHIPPED, seed=0)
        _, errors[method], _ = drn_table.fit(model, params, task, 450, optimizer, 16, seed=0)
    assert max(errors.values()) < 0.10
    assert abs(errors["DRN-EP"] - errors["DRN-TBP"]) <= 0.015


def test_papers_mnist_optimizer_is_sgd_with_momentum_and_layer_rates():
    """The papers' optimiser against the recurrence of torch's SGD (momentum 0.9) with
    ExponentialLR (x 0.99 per epoch), written out: v_t = 0.9 v_(t-1) + g, p_t = p_(t-1) -
    r 0.99^epoch(t) v_t, each DRN layer at its own rate, the MLP at 0.005."""
    setting, per_epoch = drn_table.PAPERS_MNIST, 3
    for method, depth in (("DRN-EP", 3), ("DRN-TBP", 2), ("ReLU-MLP-BP", 1)):
        task = types.SimpleNamespace(n_inputs=5, n_outputs=3)
        small = dataclasses.replace(setting, hidden=4)
        _, params = drn_table.build(method, depth, task, small, seed=0)
        if method == "ReLU-MLP-BP":
            rates = jax.tree.map(lambda _: 0.005, params)
        else:
            weights, biases = setting.layer_rates[depth - 1]
            rates = {"weights": weights, "biases": biases}
        gradients = [
            jax.tree.map(lambda p, k=k: jnp.full_like(p, 1.0 + k), params) for k in range(7)
        ]
        optimizer = setting.optimizer(method, depth, per_epoch)
        state, p = optimizer.init(params), params
        expected, velocity = params, jax.tree.map(jnp.zeros_like, params)
        for t, g in enumerate(gradients):
            updates, state = optimizer.update(g, state, p)
            p = optax.apply_updates(p, updates)
            velocity = jax.tree.map(lambda v, g: 0.9 * v + g, velocity, g)
            decay = 0.99 ** (t // per_epoch)
            expected = jax.tree.map(
                lambda e, v, r, decay=decay: e - r * decay * v, expected, velocity, rates
            )
        for got, want in zip(jax.tree.leaves(p), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=method)


def test_drn_conductances_start_clamped():
    """The table's DRNs start from U(-c, c), c = 1/sqrt(fan_in), projected onto g >= g_min:
    about half the conductances at the minimum, the rest uniform on (0, c)."""
    task = types.SimpleNamespace(n_inputs=200, n_outputs=10)
    small = dataclasses.replace(drn_table.PAPERS_MNIST, hidden=100)
    _, w = drn_table.build("DRN-EP", 2, task, small, seed=3)
    for G in w["weights"]:
        c, at_minimum = 1.0 / np.sqrt(G.shape[1]), np.asarray(G == 1e-6)
        assert abs(at_minimum.mean() - 0.5) < 0.05 and float(G.max()) <= c
        assert abs(float(G[~at_minimum].mean()) - c / 2) < 0.05 * c  # the mean of U(0, c)


def test_drn_table_trains_mnist_in_the_papers_setting(tmp_path):
    """``compute(mnist_path=...)``: a bad path fails before any training; the MNIST row is
    trained in ``PAPERS_MNIST`` (recorded in the dataset) at the overridden width and length."""
    with pytest.raises(FileNotFoundError, match="not found"):
        drn_table.compute(quick=True, progress=False, mnist_path=str(tmp_path / "none.npz"))
    sample = tasks.mnist_sample(seed=0)
    images = lambda x: np.round(255 * x).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=images(sample.x_train[:600]),
        y_train=sample.y_train[:600].argmax(1),
        x_test=images(sample.x_test[:200]),
        y_test=sample.y_test[:200].argmax(1),
    )
    ds = drn_table.compute(
        quick=True, progress=False, mnist_path=str(path), datasets=[], seeds=1, steps=40
    )
    assert list(ds.dataset.values) == ["mnist"]
    recorded = json.loads(ds.attrs["config"])["settings"]["mnist"]
    papers = dataclasses.asdict(drn_table.PAPERS_MNIST) | {
        "hidden": 16,
        "steps": 40,
        "epochs": None,
    }
    assert recorded == json.loads(json.dumps(papers))
    error = ds.test_error.sel(dataset="mnist")
    assert np.isfinite(ds.train_error).all() and np.isfinite(error).all()
    assert error.sel(model="ReLU-MLP-BP", depth=1).item() < 70  # learning (chance: 90 %)


def test_drn_table_markdown():
    shape = (1, 2, 3, 2)
    error = np.arange(12.0).reshape(shape)
    ds = xr.Dataset(
        {"test_error": (("dataset", "depth", "model", "seed"), error)},
        coords={
            "dataset": ["iris"],
            "depth": [1, 2],
            "model": list(drn_table.METHODS),
            "seed": [0, 1],
        },
    )
    table = drn_table.markdown(ds)
    assert "| dataset | hidden layers | DRN-EP | DRN-TBP | ReLU-MLP-BP |" in table
    # depth 2, DRN-TBP: seeds 8 and 9 -> mean 8.5, sample std 0.71
    assert "| iris | 2 | 6.50 ± 0.71 | 8.50 ± 0.71 | 10.50 ± 0.71 |" in table


def test_deep_resistive_network_as_a_circuit():
    """A DRN (DiodeNetwork) exported as a Circuit: the general exact solver gives the
    coordinate-descent equilibrium; with a VCVS after every layer the circuit is layered and
    computes the feed-forward network the gain study trains."""
    net = DiodeNetwork((3, 8, 6, 2), input_gain=1.5, free_sweeps=400, nudged_sweeps=400)
    w = net.init(jax.random.key(4))
    keys = jax.random.split(jax.random.key(5), 3)
    w["biases"] = tuple(
        0.2 * jax.random.normal(k, b.shape) for k, b in zip(keys, w["biases"], strict=True)
    )
    x = jax.random.uniform(jax.random.key(9), (20, 3), minval=-1, maxval=1)
    plain = drn_circuit(net, w)
    assert not plain.layered
    solution = plain.solve(x)
    assert_steady_state(plain, solution)
    layers = jax.vmap(lambda i: net.equilibrium(w, i))(x)
    free = np.arange(1 + 2 * 3, plain.n_nodes)
    np.testing.assert_allclose(
        solution.v[:, free], np.concatenate(layers, axis=1), rtol=0, atol=1e-9
    )
    amplified = drn_circuit(net, w, amplifiers=True)
    assert amplified.layered
    np.testing.assert_allclose(
        amplified(x), drn_gain.Amplified(net).predict(w, x), rtol=0, atol=1e-12
    )
