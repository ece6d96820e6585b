"""Fast paths against the paths they replace: the Thevenin equivalent of a resistor network
(every nudge level of a TCL cycle from one factorisation) against one relaxation per level,
SuperLU's batched solves (one factorisation per matrix) against one scipy solve per sample,
and whole TCL runs through both paths."""

import os
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.linalg as spla

from synapse_dyn import networks as nw
from synapse_dyn import protocols as P
from synapse_dyn import rules, training
from synapse_dyn._runtime_checks import RuntimeCheckError
from synapse_dyn.networks import Clamp, CrossEntropy, SoftNudge, SparseDirect, circuits, sparse
from synapse_dyn.networks.sparse import sparse_factor, sparse_solve
from synapse_dyn.simulate import Schedule, cycle_update_ode, simulate
from synapse_dyn.simulate import network as tcl_network
from synapse_dyn.synapses import DeadZone, EColiCascade, EColiKernel, Synapse, cycle_update

SOLVERS = {
    "dense": None,
    "cg": lx.CG(rtol=1e-13, atol=1e-15, max_steps=5000),
    "sparse_direct": SparseDirect(),
}


def resistor(solver=None):
    graph = nw.lattice(6, 7)
    return nw.ResistorNetwork(graph, [0, 41], [17, 24, 30], ground_nodes=[6], solver=solver)


def batch(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(-1, 1, (n, 2))), jnp.asarray(rng.uniform(-0.3, 0.3, (n, 3)))


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_thevenin_equivalent_gives_every_perturbed_equilibrium(solver):
    """Free states and nudged/clamped states from the Thevenin equivalent (one batched solve,
    then n_out unknowns) equal full relaxations of the network, for the MSE and the
    cross-entropy (majorise-minimise, both signs) and a clamp."""
    net = resistor(SOLVERS[solver])
    w = net.init(jax.random.key(1))
    inputs, targets = batch()
    free, thevenin = eqx.filter_jit(net.thevenin)(w, inputs)
    direct = jax.vmap(lambda i: net.equilibrium(w, i))(inputs)
    np.testing.assert_allclose(free, direct, rtol=1e-10, atol=1e-12)
    nudges = [
        lambda y: SoftNudge(0.4, y),
        lambda y: SoftNudge(-0.4, y),
        lambda y: SoftNudge(0.4, jax.nn.one_hot(jnp.argmax(y), 3), CrossEntropy()),
        lambda y: SoftNudge(-0.4, jax.nn.one_hot(jnp.argmax(y), 3), CrossEntropy()),
        lambda y: Clamp(0.5 * y),
    ]
    for k, make in enumerate(nudges):
        fast = jax.vmap(lambda i, y, x, make=make: thevenin.equilibrium(w, i, make(y), x))(
            inputs, targets, free
        )
        full = jax.vmap(lambda i, y, x, make=make: net.equilibrium(w, i, make(y), x))(
            inputs, targets, free
        )
        np.testing.assert_allclose(fast, full, rtol=1e-9, atol=1e-11, err_msg=f"nudge {k}")
        # and they are perturbed: the outputs moved
        assert float(jnp.abs(net.output(fast[0]) - net.output(free[0])).max()) > 1e-3


def test_sparse_direct_batches_share_one_factorisation_and_match_scipy():
    """A vmapped batch (one SuperLU factorisation for all samples) and a batch of different
    matrices (nested vmap over conductances) equal scipy's spsolve sample by sample."""
    net = resistor(SparseDirect())
    inputs, _ = batch(4)
    ws = jax.vmap(net.init)(jax.random.split(jax.random.key(2), 2))
    states = jax.jit(jax.vmap(lambda w: jax.vmap(lambda i: net.equilibrium(w, i))(inputs)))(ws)
    fixed = np.concatenate([net.input_nodes, net.ground_nodes])
    free = net.free_nodes
    for w, per_w in zip(ws, states, strict=True):
        lap = net.graph.laplacian(np.asarray(w))
        for i, x in zip(np.asarray(inputs), per_w, strict=True):
            sources = np.concatenate([i, np.zeros(net.ground_nodes.size)])
            reference = spla.spsolve(lap[free][:, free].tocsc(), -lap[free][:, fixed] @ sources)
            np.testing.assert_allclose(x, reference, rtol=1e-11, atol=1e-13)


def test_sparse_factor_solves_each_column_once_and_remembers_repeated_ones():
    """A factorisation solves each distinct right-hand side of a call once and keeps the
    solution of one asked for in two calls: the third call of the same columns solves
    nothing, and every answer equals scipy's."""
    net = resistor(SparseDirect())
    lap = net.graph.laplacian(np.asarray(net.init(jax.random.key(3))))
    matrix = lap[net.free_nodes][:, net.free_nodes].tocoo()
    rows, cols = jnp.asarray(matrix.row), jnp.asarray(matrix.col)
    factor = jax.jit(lambda v: sparse_factor(rows, cols, v))(jnp.asarray(matrix.data))
    solve = jax.jit(lambda f, b: f.solve(b))
    rng = np.random.default_rng(1)
    repeated = rng.normal(size=(2, matrix.shape[0]))
    solved = []
    for _ in range(3):
        rhs = np.concatenate([repeated, repeated[:1], rng.normal(size=(1, matrix.shape[0]))])
        before = sparse.statistics()["solves"]
        x = np.asarray(solve(factor, jnp.asarray(rhs)))
        solved.append(sparse.statistics()["solves"] - before)
        np.testing.assert_allclose(x, spla.spsolve(matrix.tocsc(), rhs.T).T, rtol=1e-10)
    assert solved == [3, 3, 1]


def tcl_run(net, rule, shortcut, monkeypatch):
    monkeypatch.setattr(tcl_network, "_has_thevenin", lambda network: shortcut)
    inputs, targets = batch(6, seed=3)
    # a fifth of the synapses (the weakly driven ones) sit in their dead zones: the comparison
    # needs the same cycles by two paths, not a learning range
    with pytest.warns(UserWarning, match="no-update regime"):
        return simulate(
            Synapse(EColiCascade(0.05), DeadZone(1e-4), 0.5),
            P.Sawtooth(1.0, 99.0),
            t1=500.0,
            network=net,
            rule=rule,
            task=Schedule(inputs, targets, 2),
            w0=net.init(jax.random.key(4)),
            levels=4,
        )


@pytest.mark.parametrize(
    "solver, rule",
    [("sparse_direct", rules.EP(0.3, "random")), ("dense", rules.CpL(0.3, "positive"))],
    ids=["EP-sparse_direct", "CpL-dense"],
)
def test_tcl_through_the_thevenin_equivalent_equals_the_relaxed_levels(solver, rule, monkeypatch):
    """Five TCL cycles with the levels from the Thevenin equivalent equal the same cycles with
    one relaxation per level and sample: parameter updates within 1e-9 relative."""
    net = resistor(SOLVERS[solver])
    fast = tcl_run(net, rule, True, monkeypatch)
    slow = tcl_run(net, rule, False, monkeypatch)
    w0 = np.asarray(net.init(jax.random.key(4)))
    change_fast, change_slow = np.asarray(fast.state[2]) - w0, np.asarray(slow.state[2]) - w0
    assert np.linalg.norm(change_slow) > 1e-4 * np.linalg.norm(w0)  # it learned
    np.testing.assert_allclose(
        np.linalg.norm(change_fast - change_slow) / np.linalg.norm(change_slow), 0.0, atol=1e-9
    )
    np.testing.assert_allclose(fast.update_norm, slow.update_norm, rtol=1e-9)
    np.testing.assert_allclose(fast.loss, slow.loss, rtol=1e-9)


def elastic(solver=None):
    """A jittered triangular lattice strained at its left edge, two target edges at its right
    (the Schur complement of the clamp has two multipliers)."""
    graph = nw.triangular_lattice(5, 6, jitter=0.2, seed=1)
    middle = 0.5 * (graph.positions[graph.senders] + graph.positions[graph.receivers])
    order = np.argsort(middle[:, 0])
    targets = [int(order[-1])]
    ends = set(graph.senders[targets]) | set(graph.receivers[targets])
    targets.append(
        next(int(e) for e in order[::-1] if not {graph.senders[e], graph.receivers[e]} & ends)
    )
    return nw.ElasticNetwork(graph, [int(order[0])], targets, solver=solver)


@pytest.mark.parametrize(
    "rule, rate",
    [
        (rules.EP(0.2, "random"), 20.0),
        (rules.CpL(0.2, "positive"), 20.0),
        (rules.EP(0.2, "random"), 2.0),
    ],
    ids=["EP", "CpL", "EP-stand-in"],
)
def test_elastic_tcl_through_sparse_chords_equals_the_dense_newton_path(rule, rate):
    """Three TCL cycles on an elastic network with ``SparseDirect`` (chord steps on the rest
    Hessian's factorisation, shared by every nudge level and by the next free states, and by
    later cycles while the stiffnesses stay within ``STAND_IN`` of it: Woodbury and Schur
    complements for the nudge and the clamp) equal the dense Newton path (optimistix, one
    relaxation per level and sample): parameter updates within 1e-9 relative. At the lower
    learning rate a later cycle's chord steps use an earlier cycle's factorisation."""
    rng = np.random.default_rng(3)
    task = Schedule(
        jnp.asarray(rng.uniform(-0.1, 0.1, (6, 1))),
        jnp.asarray(rng.uniform(-0.05, 0.05, (6, 2))),
        2,
    )
    w0 = elastic().init(jax.random.key(4))
    before = sparse.statistics()
    with pytest.warns(UserWarning, match="no-update regime"):  # the comparison needs no range
        runs = [
            simulate(
                Synapse(EColiCascade(0.05), DeadZone(1e-7), rate),
                P.Sawtooth(1.0, 99.0),
                t1=300.0,
                network=elastic(solver),
                rule=rule,
                task=task,
                w0=w0,
                levels=4,
            )
            for solver in (SparseDirect(), None)
        ]
    stand_ins = sparse.statistics()["stand_ins"] - before["stand_ins"]
    assert stand_ins > 0 if rate < 20 else stand_ins == 0
    sparse_change, dense = ((np.asarray(run.state[2]) - np.asarray(w0)) for run in runs)
    assert np.linalg.norm(dense) > 1e-3 * np.linalg.norm(w0)  # it learned
    np.testing.assert_allclose(
        np.linalg.norm(sparse_change - dense) / np.linalg.norm(dense), 0.0, atol=1e-9
    )
    np.testing.assert_allclose(runs[0].loss, runs[1].loss, rtol=1e-9)


def test_a_stand_in_factorisation_bounds_the_chord_contraction():
    """``sparse_factor(within=d)`` serves a rest Hessian A = sum_e k_e n_e n_e^T by the last
    chord matrix A_f factorised on its pattern only if |A - A_f| <= d |A_f| entrywise, and
    then (1 - d) A_f <= A <= (1 + d) A_f: every eigenvalue of A_f^-1 A lies in [1 - d, 1 + d],
    so a chord step shrinks the error by d or more. Over 200 random stiffness changes (within
    and beyond d, some edges at the minimum stiffness); an exact solve is never served by a
    stand-in."""
    net = elastic(SparseDirect())
    rest, no_strain = net.initial_state(), jnp.zeros(net.n_inputs)
    hessian = jax.jit(lambda k: net.spring_hessian(rest, k, no_strain))
    rows, cols = net.hessian_rows, net.hessian_cols
    n = 2 * net.free_nodes.size
    dense = lambda values: np.asarray(  # noqa: E731
        jnp.zeros((n, n)).at[rows, cols].add(values)
    )
    factor = jax.jit(
        lambda values, within: sparse_factor(rows, cols, values, within), static_argnums=1
    )
    solve = jax.jit(lambda f, b: f.solve(b))
    rng = np.random.default_rng(0)
    within, served = 0.05, 0
    for case in range(200):
        k_f = rng.uniform(0.5, 1.5, net.graph.n_edges)
        k_f[rng.random(k_f.size) < 0.1] = net.min_stiffness
        k = k_f * (1 + rng.choice([0.5, 1.0, 1.5]) * within * rng.uniform(-1, 1, k_f.size))
        a_f, a = np.asarray(hessian(jnp.asarray(k_f))), np.asarray(hessian(jnp.asarray(k)))
        factor(a_f, within)  # the pattern's chord matrix (stiffnesses far from the last case's)
        before = sparse.statistics()
        b = rng.normal(size=n)
        x = np.asarray(solve(factor(a, within), b))
        counts = {name: sparse.statistics()[name] - before[name] for name in before}
        close = np.all(np.abs(a - a_f) <= within * np.abs(a_f))
        assert counts["stand_ins"] == int(close) and counts["factorisations"] == int(not close)
        reference = np.linalg.solve(dense(a_f if close else a), b)
        assert np.linalg.norm(x - reference) <= 1e-9 * np.linalg.norm(reference)
        if close:
            served += 1
            ratios = scipy.linalg.eigvalsh(dense(a), dense(a_f))
            assert np.abs(ratios - 1).max() <= within * (1 + 1e-9), case
        exact, reference = sparse_solve(rows, cols, jnp.asarray(a), b), np.linalg.solve(dense(a), b)
        assert np.linalg.norm(exact - reference) <= 1e-9 * np.linalg.norm(reference)
    assert 50 < served < 150  # both branches, many times


def test_elastic_sparse_equilibria_and_gradient_equal_the_dense_ones():
    """Free, nudged (beta of both signs) and clamped states, and the implicit gradient
    (custom_root, GMRES tangents), by the sparse path equal optimistix's dense Newton."""
    dense, sparse = elastic(), elastic(SparseDirect())
    w, inputs, target = dense.init(jax.random.key(0)), jnp.array([0.1]), jnp.array([0.05, -0.02])
    free = dense.equilibrium(w, inputs)
    np.testing.assert_allclose(sparse.equilibrium(w, inputs), free, atol=1e-12)
    for nudge in (SoftNudge(0.3, target), SoftNudge(-0.3, target), Clamp(target)):
        np.testing.assert_allclose(
            sparse.equilibrium(w, inputs, nudge, free),
            dense.equilibrium(w, inputs, nudge, free),
            atol=1e-12,
            err_msg=str(nudge),
        )
    np.testing.assert_allclose(
        rules.implicit_gradient(sparse, w, inputs, target),
        rules.implicit_gradient(dense, w, inputs, target),
        rtol=1e-9,
        atol=1e-14,
    )


SLOW_RAMPS = [(1.0, 9.0), (0.5, 20.0), (2.0, 30.0)]


@pytest.fixture(scope="module")
def compilations():
    """Count of XLA backend compilations while the fixture's counter is switched on."""
    state = {"on": False, "count": 0}

    def listen(event, duration, **kwargs):
        if state["on"] and event == "/jax/core/compile/backend_compile_duration":
            state["count"] += 1

    jax.monitoring.register_event_duration_secs_listener(listen)
    return state


def a_max_update(tau_fast, tau_slow, **options):
    """(fast path, ODE) cycle updates over A at A = A_max = theta tau_slow (E. coli kernel,
    B = 20): the slow ramp's u sits exactly on the dead zone's threshold."""
    amplitude, theta = 100.0, 100.0 / tau_slow
    shape = P.Sawtooth(tau_fast, tau_slow, free=-0.5, clamped=0.5)
    fast = cycle_update(EColiKernel(rate=20.0), DeadZone(theta), shape, jnp.array([amplitude]), 0.0)
    signal = P.Sawtooth(tau_fast, tau_slow, free=-amplitude / 2, clamped=amplitude / 2)
    synapse = Synapse(EColiCascade(0.05), DeadZone(theta), 1.0)
    return float(fast[0]) / amplitude, float(
        cycle_update_ode(synapse, signal, **options)
    ) / amplitude


def test_cycle_update_ode_compiles_once_and_agrees_at_a_max(compilations):
    """Three protocols with the slow ramp exactly on the threshold: the default tolerance
    agrees with the exact fast path (rtol 1e-9 gave 0.936 for 0.963 and warns), and after
    the first protocol no call compiles anything."""
    jax.clear_caches()  # an earlier test in this process may have compiled the same program
    compilations["on"] = True
    fast, ode = a_max_update(*SLOW_RAMPS[0])
    assert compilations["count"] > 0  # the counter sees the first call compile
    compilations["count"] = 0
    try:
        results = [(fast, ode)] + [a_max_update(*ramps) for ramps in SLOW_RAMPS[1:]]
    finally:
        compilations["on"] = False
    assert compilations["count"] == 0
    for fast, ode in results:
        assert fast > 0.9
        np.testing.assert_allclose(ode, fast, rtol=1e-4)
    with pytest.warns(UserWarning, match="within 1e-6 of a jump of g"):
        fast, coarse = a_max_update(*SLOW_RAMPS[0], rtol=1e-9)
    assert abs(coarse - fast) > 1e-2  # the tie the warning is about


def test_programs_have_no_host_callbacks_and_their_failures_still_raise(caplog, monkeypatch):
    """JAX's persistent cache stores no program with a host callback, so ours have none (a
    failure is NaN, raised by the function called): with the in-memory caches dropped, dense
    and CG equilibria, EP and AgnosticEP updates, a training epoch, an elastic equilibrium, a
    circuit and a TCL run compile (or load) without JAX's "uses host callbacks" note. The
    failures still raise, naming the fix: CG and Newton out of steps, a diverging AgnosticEP."""
    jax.clear_caches()
    inputs, targets = batch()
    dense, cg = resistor(), resistor(lx.CG(rtol=1e-13, atol=1e-15, max_steps=5000))
    w = dense.init(jax.random.key(0))
    graph = nw.triangular_lattice(4, 5, jitter=0.2, seed=3)
    elastic = nw.ElasticNetwork(graph, [0], [graph.n_nodes - 1])
    with caplog.at_level("DEBUG", logger="jax._src.compiler"):
        dense.equilibrium(w, inputs[0])
        cg.equilibrium(w, inputs[0])
        rules.update(dense, w, (inputs, targets), rules.EP(0.3, "centered"))
        rules.update(dense, w, (inputs, targets), rules.AgnosticEP(0.3, 0.05))
        training.sgd_epoch(dense, rules.CpL(0.5, "positive"), w, inputs, targets, None, 0.1, 3)
        elastic.equilibrium(elastic.init(jax.random.key(1)), jnp.array([0.05]))
        circuits.compile_relu([(np.eye(2), np.zeros(2))])(np.ones((4, 2)))
        tcl_run(dense, rules.EP(0.3, "random"), True, monkeypatch)
    callbacks = [r.getMessage() for r in caplog.records if "host callbacks" in r.getMessage()]
    assert not callbacks, callbacks
    hasty = resistor(lx.CG(rtol=1e-13, atol=1e-15, max_steps=2))
    with pytest.raises(RuntimeCheckError, match="iterative solver did not converge"):
        hasty.equilibrium(w, inputs[0])
    one_step = nw.ElasticNetwork(graph, [0], [graph.n_nodes - 1], max_steps=1)
    with pytest.raises(RuntimeCheckError, match="Newton's method did not converge"):
        one_step.equilibrium(one_step.init(jax.random.key(1)), jnp.array([0.3]))


def test_cli_turns_on_the_persistent_compilation_cache(tmp_path):
    """With the cache folder set by the environment, a compiled program is written there and
    a fresh process reads it back instead of compiling."""
    script = (
        "import jax, jax.numpy as jnp\n"
        "from synapse_dyn import cli\n"
        "print(cli.compilation_cache())\n"
        "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)\n"
        "hits = []\n"
        "jax.monitoring.register_event_listener(\n"
        "    lambda event, **_: hits.append(event == '/jax/compilation_cache/cache_hits'))\n"
        "f = jax.jit(lambda x: jnp.sort(jnp.cos(x) @ x.T).sum())\n"
        "print(float(f(jnp.ones((64, 64)))), sum(hits))\n"
    )
    env = dict(os.environ, SYNAPSE_DYN_JAX_CACHE=str(tmp_path / "cache"))
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == str(tmp_path / "cache")
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert entries  # written
    assert first.stdout.split()[-1] == "0"  # nothing to read yet
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    value, hits = second.stdout.split()[-2:]
    assert value == first.stdout.split()[-2] and int(hits) >= 1  # read back
    off = subprocess.run(
        [sys.executable, "-c", "from synapse_dyn import cli; print(cli.compilation_cache())"],
        env=dict(env, SYNAPSE_DYN_JAX_CACHE=""),
        capture_output=True,
        text=True,
    )
    assert off.stdout.strip() == "None"
