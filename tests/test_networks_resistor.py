"""Linear resistor networks: Kirchhoff's laws, solver cross-checks (dense Cholesky, CG,
scipy.sparse), the local synaptic current, SPICE and bad input. (The generic relaxation
vector field is tested on the Hopfield substrate, with a nudge and active bounds.)"""

import jax
import jax.numpy as jnp
import lineax as lx
import networkx
import numpy as np
import pytest
import scipy.sparse.linalg as spla

from synapse_dyn.networks import (
    MSE,
    Clamp,
    CrossEntropy,
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


BETA, CLAMP, ONE_HOT = 0.7, jnp.array([0.5, 0.25]), jnp.array([1.0, 0.0])


def all_states(net, w, inputs, target):
    """Free, nudged (MSE and CE), clamped states, their Kirchhoff residuals, a loss gradient
    through the solver and a vmapped batch: one compiled program per solver."""
    nudges = {
        "free": None,
        "nudged": SoftNudge(BETA, target),
        "clamped": Clamp(CLAMP),
        "cross_entropy": SoftNudge(BETA, ONE_HOT, CrossEntropy()),
        "cross_entropy_negative": SoftNudge(-BETA, ONE_HOT, CrossEntropy()),
    }
    out = {}
    for name, nudge in nudges.items():
        out[name] = net.equilibrium(w, inputs, nudge)
        out[f"kcl_{name}"] = kcl_residual(net, out[name], w, inputs)
    out["grad"] = jax.grad(lambda w: jnp.sum(net.output(net.equilibrium(w, inputs)) ** 2))(w)
    out["batch"] = jax.vmap(lambda x: net.equilibrium(w, x))(jnp.stack([inputs, 2 * inputs]))
    return out


SOLVERS = {
    "dense": None,
    "cg": lx.CG(rtol=1e-13, atol=1e-15, max_steps=5000),
    "sparse_direct": SparseDirect(),
}


@pytest.fixture(scope="module")
def lattice_case():
    graph = lattice(12, 15)
    nets = {
        name: ResistorNetwork(graph, [0, 179], [90, 91], [7], solver=solver)
        for name, solver in SOLVERS.items()
    }
    w = nets["dense"].init(jax.random.key(2))
    inputs, target = jnp.array([1.0, -1.0]), jnp.array([0.2, -0.1])
    states = {
        name: jax.jit(lambda w, i, y, net=net: all_states(net, w, i, y))(w, inputs, target)
        for name, net in nets.items()
    }
    return nets, w, inputs, states


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_kirchhoff_current_law_free_nudged_clamped(lattice_case, solver):
    nets, w, inputs, states = lattice_case
    net, out = nets[solver], states[solver]
    assert jnp.abs(out["kcl_free"]).max() < 1e-9
    # nudged: the only unbalanced currents are the injected beta (y - v_o) at the outputs
    injected = net.clamp(
        jnp.zeros(net.n_free), BETA * (jnp.array([0.2, -0.1]) - net.output(out["nudged"]))
    )
    assert jnp.abs(out["kcl_nudged"] - injected).max() < 1e-9
    assert jnp.abs(injected).max() > 1e-3
    # cross-entropy (majorise-minimise, both signs): injected -beta (softmax(o) - y)
    for key, beta in (("cross_entropy", BETA), ("cross_entropy_negative", -BETA)):
        softmax = jax.nn.softmax(net.output(out[key]))
        injected = net.clamp(jnp.zeros(net.n_free), -beta * (softmax - ONE_HOT))
        assert jnp.abs(out[f"kcl_{key}"] - injected).max() < 1e-9, key
    # clamped: outputs sit at the clamp values, KCL holds at every other free node
    np.testing.assert_allclose(net.output(out["clamped"]), CLAMP, atol=1e-14)
    assert jnp.abs(net.clamp(out["kcl_clamped"], jnp.zeros(2))).max() < 1e-9
    # superposition: the equilibrium is linear in the source voltages
    np.testing.assert_allclose(out["batch"][1], 2 * out["free"], atol=1e-12)


def test_solvers_agree_with_scipy(lattice_case):
    nets, w, inputs, states = lattice_case
    lap = nets["dense"].graph.laplacian(w)  # assembled by SciPy, solved by SuperLU
    free, fixed = nets["dense"].free_nodes, np.array([0, 179, 7])
    x_scipy = spla.spsolve(
        lap[free][:, free].tocsc(), -lap[free][:, fixed] @ np.array([1.0, -1.0, 0.0])
    )
    for name, out in states.items():
        np.testing.assert_allclose(out["free"], x_scipy, atol=1e-10, err_msg=name)
        for key in ("nudged", "clamped", "cross_entropy"):
            np.testing.assert_allclose(
                out[key], states["dense"][key], atol=1e-10, err_msg=f"{name} {key}"
            )
        # gradients through each solver's adjoint (lineax, custom_linear_solve) agree
        np.testing.assert_allclose(
            out["grad"], states["dense"]["grad"], rtol=1e-8, atol=1e-13, err_msg=name
        )


def test_synaptic_current_is_local_gradient(setup):
    net, w, inputs, _ = setup
    x = net.equilibrium(w, inputs)
    autodiff = jax.grad(net.energy, argnums=1)(x, w, inputs)
    drops = net.drops(net.potentials(x, inputs))
    np.testing.assert_allclose(net.synaptic_current(x, w, inputs), autodiff, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(autodiff, 0.5 * drops**2, rtol=1e-12, atol=1e-15)


def test_from_networkx_matches_lattice():
    grid = networkx.grid_2d_graph(3, 4)
    for row, col in grid.nodes:
        grid.nodes[(row, col)]["pos"] = (col, row)
    graph = from_networkx(grid)
    net = ResistorNetwork(graph, [0], [11], ground_nodes=[5])
    reference = ResistorNetwork(lattice(3, 4), [0], [11], ground_nodes=[5])
    w = jnp.ones(graph.n_edges)
    np.testing.assert_allclose(
        net.equilibrium(w, jnp.array([1.0])), reference.equilibrium(w, jnp.array([1.0])), atol=1e-14
    )


@pytest.mark.skipif(
    not ngspice_available(), reason="ngspice not installed (apt-get install ngspice)"
)
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
    with pytest.raises(ValueError, match=r"nudge target must have shape \(2,\)"):
        net.equilibrium(w, inputs, SoftNudge(0.1, jnp.zeros(3)))
    with pytest.raises(ValueError, match="clamp values must be finite"):
        net.equilibrium(w, inputs, Clamp(jnp.array([0.0, jnp.nan])))
    graph = lattice(1, 6)  # chain 0-1-2-3-4-5
    with pytest.raises(ValueError, match=r"nodes \[3, 4, 5\] have no path"):
        ResistorNetwork(graph, [0], [1], ground_nodes=[2]).check_parameters(
            jnp.array([1.0, 1, 0, 1, 1])
        )
    two_parts = networkx.Graph([(0, 1), (1, 2), (3, 4)])
    with pytest.raises(ValueError, match=r"nodes \[3, 4\] have no path"):
        ResistorNetwork(from_networkx(two_parts), [0], [1])
    with pytest.raises(ValueError, match="output nodes"):
        ResistorNetwork(graph, [0], [0])


def test_equilibrium_jits_once(setup):
    net, w, _, target = setup
    import equinox as eqx

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def batch(net, w, xs, beta):
        return jax.vmap(lambda x: net.equilibrium(w, x, SoftNudge(beta, target, MSE())))(xs)

    xs = jax.random.normal(jax.random.key(0), (5, 3))
    for beta in (0.1, 0.2, 0.3):
        batch(net, w, xs, jnp.asarray(beta))
