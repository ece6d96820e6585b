"""Fast paths against the paths they replace: the Thevenin equivalent of a resistor network
(every nudge level of a TCL cycle from one factorisation) against one relaxation per level,
SuperLU's batched solves (one factorisation per matrix) against one scipy solve per sample,
and whole TCL runs through both paths."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import scipy.sparse.linalg as spla

from synapse_dyn import networks as nw
from synapse_dyn import protocols as P
from synapse_dyn import rules
from synapse_dyn.networks import Clamp, CrossEntropy, SoftNudge, SparseDirect
from synapse_dyn.simulate import Schedule, simulate
from synapse_dyn.simulate import network as tcl_network
from synapse_dyn.synapses import DeadZone, EColiCascade, Synapse

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


def tcl_run(net, rule, shortcut, monkeypatch):
    monkeypatch.setattr(tcl_network, "_has_thevenin", lambda network: shortcut)
    inputs, targets = batch(6, seed=3)
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
