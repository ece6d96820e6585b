"""Linear resistor networks: Kirchhoff's laws, solver cross-checks (dense Cholesky, CG,
scipy.sparse), the local synaptic current, SPICE and bad input. (The generic relaxation
vector field is tested on the Hopfield substrate, with a nudge and active bounds.)"""

import jax
import jax.numpy as jnp
import lineax as lx
import networkx
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from synapse_dyn.networks import (
    Clamp,
    CrossEntropy,
    MSE,
    ResistorNetwork,
    SoftNudge,
    SparseDirect,
    from_networkx,
    lattice,
    random_graph,
)
from synapse_dyn.networks.spice import ngspice_available, run_ngspice


@pytest.fixture(scope="module")
def setup():
    net = ResistorNetwork(random_graph(40, seed=3), [0, 1, 2], [10, 11], ground_nodes=[3])
    w = net.init(jax.random.key(1))
    inputs = jnp.array([1.0, -0.7, 0.4])
    target = jnp.array([0.2, -0.1])
    return net, w, inputs, target


def kcl_residual(net, x, w, inputs):
    return net.currents(net.potentials(x, inputs), w)[net.free_nodes]


def test_kirchhoff_current_law_free_nudged_clamped(setup):
    net, w, inputs, target = setup
    x = net.equilibrium(w, inputs)
    current = kcl_residual(net, x, w, inputs)
    assert jnp.abs(current).max() < 1e-9
    # nudged: the only unbalanced currents are the injected beta (y - v_o) at the outputs
    beta = 0.7
    xb = net.equilibrium(w, inputs, SoftNudge(beta, target))
    injected = net.clamp(jnp.zeros(net.n_free), beta * (target - net.output(xb)))
    assert jnp.abs(kcl_residual(net, xb, w, inputs) - injected).max() < 1e-9
    assert jnp.abs(injected).max() > 1e-3
    # clamped: outputs sit at the clamp values, KCL holds at every other free node
    values = jnp.array([0.5, 0.25])
    xc = net.equilibrium(w, inputs, Clamp(values))
    np.testing.assert_allclose(net.output(xc), values, atol=1e-14)
    hidden = net.clamp(kcl_residual(net, xc, w, inputs), jnp.zeros(2))
    assert jnp.abs(hidden).max() < 1e-9


def test_cross_entropy_nudge_is_stationary(setup):
    """Majorise-minimise with CE: the nudged state satisfies KCL with injected current
    -beta dC/do (softmax(o) - y), i.e. it is the exact minimiser of E + beta CE."""
    net, w, inputs, _ = setup
    y = jnp.array([1.0, 0.0])
    beta = 0.5
    x = net.equilibrium(w, inputs, SoftNudge(beta, y, CrossEntropy()))
    injected = net.clamp(jnp.zeros(net.n_free), -beta * (jax.nn.softmax(net.output(x)) - y))
    assert jnp.abs(kcl_residual(net, x, w, inputs) - injected).max() < 1e-9


def test_dense_cg_sparse_direct_and_scipy_agree():
    graph = lattice(12, 15)
    inputs = jnp.array([1.0, -1.0])
    args = ([0, 179], [90, 91], [7])
    dense = ResistorNetwork(graph, *args)
    cg = ResistorNetwork(graph, *args, solver=lx.CG(rtol=1e-13, atol=1e-15, max_steps=5000))
    direct = ResistorNetwork(graph, *args, solver=SparseDirect())
    w = dense.init(jax.random.key(2))
    x_dense = dense.equilibrium(w, inputs)
    x_cg = cg.equilibrium(w, inputs)
    # nudged, clamped and differentiated through the sparse direct path (implicit adjoint)
    for nudge in (SoftNudge(0.3, jnp.array([0.1, 0.2])), Clamp(jnp.array([0.1, 0.2]))):
        np.testing.assert_allclose(direct.equilibrium(w, inputs, nudge), dense.equilibrium(w, inputs, nudge), atol=1e-12)
    loss = lambda net: jax.grad(lambda w: jnp.sum(net.output(net.equilibrium(w, inputs)) ** 2))(w)
    np.testing.assert_allclose(loss(direct), loss(dense), rtol=1e-9, atol=1e-14)
    batch = jax.vmap(lambda x: direct.equilibrium(w, x))(jnp.stack([inputs, 2 * inputs]))
    np.testing.assert_allclose(batch[1], 2 * x_dense, atol=1e-12)
    # scipy: assemble the reduced Laplacian independently
    n = graph.n_nodes
    s, r, g = graph.senders, graph.receivers, np.asarray(w)
    lap = sp.coo_matrix((np.concatenate([-g, -g, g, g]), (np.concatenate([s, r, s, r]), np.concatenate([r, s, s, r]))), shape=(n, n)).tocsr()
    free, fixed = dense.free_nodes, np.array([0, 179, 7])
    v_fixed = np.array([1.0, -1.0, 0.0])
    x_scipy = spla.spsolve(lap[free][:, free].tocsc(), -lap[free][:, fixed] @ v_fixed)
    np.testing.assert_allclose(x_dense, x_scipy, atol=1e-12)
    np.testing.assert_allclose(x_cg, x_scipy, atol=1e-10)


def test_synaptic_current_is_local_gradient(setup):
    net, w, inputs, _ = setup
    x = net.equilibrium(w, inputs)
    autodiff = jax.grad(net.energy, argnums=1)(x, w, inputs)
    drops = net.drops(net.potentials(x, inputs))
    np.testing.assert_allclose(net.synaptic_current(x, w, inputs), autodiff, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(autodiff, 0.5 * drops**2, rtol=1e-12, atol=1e-15)


def test_from_networkx_matches_lattice():
    grid = networkx.grid_2d_graph(3, 4)
    for (row, col) in grid.nodes:
        grid.nodes[(row, col)]["pos"] = (col, row)
    graph = from_networkx(grid)
    net = ResistorNetwork(graph, [0], [11], ground_nodes=[5])
    reference = ResistorNetwork(lattice(3, 4), [0], [11], ground_nodes=[5])
    w = jnp.ones(graph.n_edges)
    np.testing.assert_allclose(
        net.equilibrium(w, jnp.array([1.0])), reference.equilibrium(w, jnp.array([1.0])), atol=1e-14
    )


@pytest.mark.skipif(not ngspice_available(), reason="ngspice not installed (apt-get install ngspice)")
def test_matches_ngspice(setup):
    net, w, inputs, _ = setup
    x = net.equilibrium(w, inputs)
    spice = run_ngspice(net.to_spice(w, inputs))
    ours = np.asarray(net.potentials(x, inputs))
    theirs = np.array([spice[f"n{k}"] for k in np.asarray(net.free_nodes)])
    np.testing.assert_allclose(ours[np.asarray(net.free_nodes)], theirs, atol=1e-6)


def test_bad_input(setup):
    net, w, inputs, _ = setup
    with pytest.raises(ValueError, match=r"edges \[4\].*project"):
        net.equilibrium(w.at[4].set(-1.0), inputs)
    with pytest.raises(ValueError, match="finite"):
        net.equilibrium(w, inputs.at[0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        net.equilibrium(w, inputs[:2])
    graph = lattice(1, 6)  # chain 0-1-2-3-4-5
    with pytest.raises(ValueError, match=r"nodes \[3, 4, 5\] have no path"):
        ResistorNetwork(graph, [0], [1], ground_nodes=[2]).check_parameters(jnp.array([1.0, 1, 0, 1, 1]))
    two_parts = networkx.Graph([(0, 1), (1, 2), (3, 4)])
    with pytest.raises(ValueError, match=r"nodes \[3, 4\] have no path"):
        ResistorNetwork(from_networkx(two_parts), [0], [1])
    with pytest.raises(ValueError, match="output nodes"):
        ResistorNetwork(graph, [0], [0])


def test_equilibrium_vmaps_and_jits_once(setup):
    net, w, _, target = setup
    import equinox as eqx

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def batch(net, w, xs, beta):
        return jax.vmap(lambda x: net.equilibrium(w, x, SoftNudge(beta, target, MSE())))(xs)

    xs = jax.random.normal(jax.random.key(0), (5, 3))
    out = batch(net, w, xs, jnp.asarray(0.1))
    batch(net, w, 2 * xs, jnp.asarray(0.2))
    batch(net, w, 2 * xs, jnp.asarray(0.3))
    # linearity in the inputs (superposition), sample by sample
    np.testing.assert_allclose(batch(net, w, 2 * xs, jnp.asarray(0.1))[0] - out[0], out[0] - batch(net, w, 0 * xs, jnp.asarray(0.1))[0], atol=1e-12)
