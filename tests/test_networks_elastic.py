"""Elastic spring networks: force balance from explicit spring forces, the small-strain limit
against linear elasticity, clamped target strains, floppy networks and bad input. (The
relaxation vector field is generic; it is tested on the resistor and Hopfield substrates.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synapse_dyn.networks import Clamp, ElasticNetwork, Graph, triangular_lattice


@pytest.fixture(scope="module")
def setup():
    graph = triangular_lattice(4, 5, jitter=0.2, seed=3)
    middle = 0.5 * (graph.positions[graph.senders] + graph.positions[graph.receivers])
    net = ElasticNetwork(graph, [int(np.argmin(middle[:, 0]))], [int(np.argmax(middle[:, 0]))])
    return net, net.init(jax.random.key(2))


def spring_forces(net, x, w, inputs):
    """Net force on every node, sum over springs of k (r - l) along the unit vector."""
    p = np.asarray(net.positions(x, inputs))
    s, r = net.graph.senders, net.graph.receivers
    d = p[s] - p[r]
    length = np.linalg.norm(d, axis=1)
    tension = np.asarray(w) * (length - net.rest_lengths)
    f = (tension / length)[:, None] * d  # pulls the sender towards the receiver when stretched
    force = np.zeros_like(p)
    np.add.at(force, s, -f)
    np.add.at(force, r, f)
    return force


def test_force_balance_and_clamp(setup):
    net, w = setup
    inputs = jnp.array([0.08])
    x = net.equilibrium(w, inputs)
    force = spring_forces(net, x, w, inputs)
    assert np.abs(force[net.free_nodes]).max() < 1e-10
    assert np.abs(force[net.source_nodes]).max() > 1e-3  # the sources carry the load
    xc = net.equilibrium(w, inputs, Clamp(jnp.array([0.02])), x)
    np.testing.assert_allclose(net.output(xc), [0.02], atol=1e-12)
    # clamped: only the two target nodes feel an unbalanced (constraint) force, equal and opposite
    force = spring_forces(net, xc, w, inputs)
    target_nodes = [
        net.graph.senders[net.target_edges[0]],
        net.graph.receivers[net.target_edges[0]],
    ]
    others = np.setdiff1d(net.free_nodes, target_nodes)
    assert np.abs(force[others]).max() < 1e-10
    np.testing.assert_allclose(force[target_nodes[0]], -force[target_nodes[1]], atol=1e-10)


def test_small_strain_limit_is_linear_elasticity(setup):
    """Linear elasticity: K u = f with K = sum_e k_e n_e n_e^T (n_e the rest unit vector), the
    source nodes displaced by +-eps l/2 along their edge; target strain n_t.(u_i - u_j)/l_t."""
    net, w = setup
    eps = 1e-6
    o = float(net.output(net.equilibrium(w, jnp.array([eps])))[0])
    p0 = net.graph.positions
    n_nodes, s, r = net.graph.n_nodes, net.graph.senders, net.graph.receivers
    unit = (p0[s] - p0[r]) / net.rest_lengths[:, None]
    stiffness = np.zeros((n_nodes, 2, n_nodes, 2))
    for e, (a, b) in enumerate(zip(s, r, strict=False)):
        block = float(w[e]) * np.outer(unit[e], unit[e])
        for i, j, sign in ((a, a, 1), (b, b, 1), (a, b, -1), (b, a, -1)):
            stiffness[i, :, j, :] += sign * block
    stiffness = stiffness.reshape(2 * n_nodes, 2 * n_nodes)
    u = np.zeros((n_nodes, 2))
    e_src = net.source_edges[0]
    a, b = s[e_src], r[e_src]
    u[a] = 0.5 * eps * net.rest_lengths[e_src] * unit[e_src]
    u[b] = -u[a]
    free = (2 * net.free_nodes[:, None] + np.arange(2)).ravel()
    fixed = np.setdiff1d(np.arange(2 * n_nodes), free)
    u_flat = u.ravel()
    u_flat[free] = np.linalg.solve(
        stiffness[np.ix_(free, free)], -stiffness[np.ix_(free, fixed)] @ u_flat[fixed]
    )
    u = u_flat.reshape(n_nodes, 2)
    e_t = net.target_edges[0]
    linear = unit[e_t] @ (u[s[e_t]] - u[r[e_t]]) / net.rest_lengths[e_t]
    np.testing.assert_allclose(o, linear, rtol=1e-4)
    assert abs(linear) > 1e-9


def test_bad_input(setup):
    net, w = setup
    with pytest.raises(ValueError, match=r"stiffnesses must be >= 0.*edges \[3\]"):
        net.equilibrium(w.at[3].set(-0.5), jnp.array([0.05]))
    with pytest.raises(ValueError, match="finite"):
        net.equilibrium(w, jnp.array([jnp.nan]))
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        net.equilibrium(w, jnp.array([0.05, 0.01]))
    # a square without a diagonal is a mechanism
    square = Graph(
        5,
        [0, 1, 2, 3, 0],
        [1, 2, 3, 0, 4],
        np.array([[0, 0], [1, 0], [1, 1], [0, 1], [-1, 0.2]], float),
    )
    with pytest.raises(ValueError, match=r"floppy: nodes \[.*\]"):
        ElasticNetwork(square, [0], [2])
    with pytest.raises(ValueError, match="touch source nodes"):
        ElasticNetwork(net.graph, [0], [0])
