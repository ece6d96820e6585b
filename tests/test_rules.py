"""Estimator identities of the contrastive rules on small random networks of every substrate:
EP -> exact gradient as beta -> 0 (slope 1 one-sided, 2 centered), the finite-beta identity
g_hat = grad_w [Phi(b2) - Phi(b1)] / (b2 - b1), the secant bounds on L, the CpL limit
(do/dw)^T H_oo dC/do, the exact gradient against finite differences, and bad input."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from synapse_dyn import networks as nw
from synapse_dyn import rules

ONE = jnp.ones(())


def resistor():
    net = nw.ResistorNetwork(nw.random_graph(25, seed=5), [0, 1], [7, 8], ground_nodes=[2])
    w = net.init(jax.random.key(3))
    return net, w, jnp.array([1.0, -0.6]), jnp.array([0.25, 0.1])


def diode():
    net = nw.DiodeNetwork((3, 6, 4, 2), input_gain=2.0, free_sweeps=300, nudged_sweeps=300)
    w = net.init(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 3)
    w["biases"] = tuple(
        0.3 * jax.random.normal(k, b.shape) for k, b in zip(keys, w["biases"], strict=False)
    )
    return net, w, jnp.array([0.5, -0.3, 0.8]), jnp.array([0.3, 0.1])


def hopfield():
    net = nw.HopfieldNetwork((3, 6, 4, 2), free_sweeps=300, nudged_sweeps=300, gain=1.0)
    return net, net.init(jax.random.key(0)), jnp.array([0.5, -0.3, 0.8]), jnp.array([0.3, 0.1])


def elastic():
    graph = nw.triangular_lattice(4, 5, jitter=0.2, seed=1)
    middle = 0.5 * (graph.positions[graph.senders] + graph.positions[graph.receivers])
    source, target = int(np.argmin(middle[:, 0])), int(np.argmax(middle[:, 0]))
    net = nw.ElasticNetwork(graph, [source], [target])
    return net, net.init(jax.random.key(0)), jnp.array([0.1]), jnp.array([0.05])


SUBSTRATES = {"resistor": resistor, "diode": diode, "hopfield": hopfield, "elastic": elastic}


# one process per substrate (xdist loadgroup): its report is computed once, not per worker
@pytest.fixture(
    scope="module",
    params=[pytest.param(k, marks=pytest.mark.xdist_group(f"rules {k}")) for k in SUBSTRATES],
)
def case_name(request):
    return request.param


def flat(tree):
    return ravel_pytree(tree)[0]


@eqx.filter_jit
def estimate(rule, net, w, inputs, target, sign=ONE):
    return rule.estimate(net, w, inputs, target, sign)


def loss(net, w, inputs, target):
    return nw.MSE()(net.output(net.equilibrium(w, inputs)), target)


BETAS = np.geomspace(1e-3, 1e-2, 4)
FINITE_BETA = 0.3
BOUND_BETA = 0.2
ETA = 1e-3
EPS = 1e-5


class LinearCost(nw.AbstractCost):
    """C = c . o: its implicit gradient is (do/dw)^T c."""

    weights: jax.Array
    curvature = 0.0
    quadratic = True

    def __call__(self, o, y):
        return self.weights @ o


def output_stiffness(net, w, inputs, x):
    """H_oo = (J H^-1 J^T)^-1, the stiffness the outputs o(x) feel when the rest relaxes, from
    the interior Hessian H and the output Jacobian J by dense linear algebra (independent of
    the clamped solvers; the Schur complement when outputs are coordinates)."""
    flat_x, unravel = ravel_pytree(x)
    hessian = jax.hessian(lambda fx: net.energy(unravel(fx), w, inputs))(flat_x)
    jacobian = jax.jacobian(lambda fx: net.output(unravel(fx)))(flat_x)
    interior = flat(net.interior(x)).astype(float)
    masked = interior[:, None] * hessian * interior[None, :] + jnp.diag(1 - interior)
    jacobian = jacobian * interior[None, :]
    return jnp.linalg.inv(jacobian @ jnp.linalg.solve(masked, jacobian.T))


def compute_report(net, w, inputs, target):
    """Everything the identity tests check, in one compiled program per substrate."""
    flat_w, unravel = ravel_pytree(w)
    directions = jax.random.normal(jax.random.key(7), (3, flat_w.size))
    signs = jnp.array([1.0, -1.0])
    moved = flat_w[None, None, :] + EPS * signs[None, :, None] * directions[:, None, :]  # (3, 2, n)
    report = {
        "target": target,
        "exact": flat(rules.implicit_gradient(net, w, inputs, target)),
        "directions": directions,
    }
    report["loss_moved"] = jax.vmap(jax.vmap(lambda fw: loss(net, unravel(fw), inputs, target)))(
        moved
    )
    all_betas = jnp.append(BETAS, FINITE_BETA)
    for variant in ("positive", "negative", "centered"):
        estimates = jax.vmap(
            lambda b, variant=variant: flat(
                rules.EP(b, variant).estimate(net, w, inputs, target, ONE)
            )
        )(all_betas)
        report[f"ep_{variant}"], report[f"finite_{variant}"] = estimates[:-1], estimates[-1]
    phi = lambda fw, b: rules.primitive(net, unravel(fw), inputs, target, b)
    phi_betas = jnp.array([-FINITE_BETA, 0.0, FINITE_BETA, -BOUND_BETA, BOUND_BETA])
    at = jnp.concatenate([moved.reshape(-1, flat_w.size), flat_w[None]])
    phis = jax.vmap(jax.vmap(phi, (None, 0)), (0, None))(at, phi_betas)
    report["phi_moved"] = phis[:-1, :3].reshape(3, 2, 3)
    report["phi_bounds"] = phis[-1, jnp.array([3, 1, 4])]
    x_free = net.equilibrium(w, inputs)
    report["loss"] = loss(net, w, inputs, target)
    report["free_energy"] = net.energy(x_free, w, inputs)
    o = net.output(x_free)
    weighted = output_stiffness(net, w, inputs, x_free) @ (o - target)
    report["cpl_limit"] = flat(
        rules.implicit_gradient(net, w, inputs, target, LinearCost(weighted))
    )
    report["cpl"] = flat(rules.CpL(ETA, "centered").estimate(net, w, inputs, target, ONE))
    x_clamped = net.equilibrium(w, inputs, nw.Clamp(target), x_free)
    report["clamped_output"] = net.output(x_clamped)
    report["cl_secant"] = flat(net.synaptic_current(x_clamped, w, inputs)) - flat(
        net.synaptic_current(x_free, w, inputs)
    )
    report["cl"] = flat(rules.CL().estimate(net, w, inputs, target, ONE))
    return report


@functools.cache
def substrate_report(name):
    """``compute_report`` of one substrate, kept for the process: xdist tears a module's
    fixtures down whenever a worker's queue runs dry, and the elastic report took 21 s to
    compute again."""
    net, *arrays = SUBSTRATES[name]()
    compiled = jax.jit(lambda *a: compute_report(net, *a))
    return jax.tree.map(np.asarray, compiled(*arrays))


@pytest.fixture(scope="module")
def report(case_name):
    return substrate_report(case_name)


@pytest.mark.parametrize("variant,slope", [("positive", 1.0), ("negative", 1.0), ("centered", 2.0)])
def test_ep_converges_to_exact_gradient(report, variant, slope):
    exact = report["exact"]
    errors = np.linalg.norm(report[f"ep_{variant}"] - exact, axis=1) / np.linalg.norm(exact)
    fitted = np.polyfit(np.log(BETAS), np.log(errors), 1)[0]
    assert abs(fitted - slope) < 0.1, (fitted, errors)
    assert errors[0] < 1e-2


def test_exact_gradient_matches_finite_differences(report):
    fd = (report["loss_moved"][:, 0] - report["loss_moved"][:, 1]) / (2 * EPS)
    np.testing.assert_allclose(report["directions"] @ report["exact"], fd, rtol=1e-6, atol=1e-12)


def test_exact_gradient_equals_lineax_adjoint():
    """Resistor: autodiff through lineax's linear solve (its own adjoint) equals the generic
    implicit-function-theorem gradient."""
    net, w, inputs, target = resistor()
    np.testing.assert_allclose(
        eqx.filter_jit(jax.grad(loss, argnums=1))(net, w, inputs, target),
        rules.implicit_gradient(net, w, inputs, target),
        rtol=1e-10,
        atol=1e-15,
    )


@pytest.mark.parametrize(
    "variant,b1,b2", [("positive", 1, 2), ("negative", 0, 1), ("centered", 0, 2)]
)
def test_ep_is_finite_difference_of_primitive(report, variant, b1, b2):
    """At finite beta: g_hat(b1, b2) . d = d/dw [Phi(b2) - Phi(b1)] . d / (b2 - b1)
    (indices into (-beta, 0, beta))."""
    phi = report["phi_moved"]  # (direction, sign, beta)
    span = FINITE_BETA * (b2 - b1)
    fd = ((phi[:, 0, b2] - phi[:, 0, b1]) - (phi[:, 1, b2] - phi[:, 1, b1])) / (2 * EPS * span)
    np.testing.assert_allclose(
        report["directions"] @ report[f"finite_{variant}"], fd, rtol=1e-6, atol=1e-10
    )


def test_secant_bounds_on_loss(report):
    minus, zero, plus = report["phi_bounds"]
    assert (plus - zero) / BOUND_BETA <= report["loss"] <= (zero - minus) / BOUND_BETA
    np.testing.assert_allclose(zero, report["free_energy"], rtol=1e-12)


def test_cpl_limit_is_gradient_in_output_stiffness_metric(report):
    """eta -> 0: g_CpL = (do/dw)^T H_oo dC/do, the implicit gradient of the linear cost
    c . o with c = H_oo dC/do."""
    expected = report["cpl_limit"]
    np.testing.assert_allclose(
        report["cpl"], expected, rtol=1e-5, atol=1e-9 * np.abs(expected).max()
    )


def test_cl_is_full_clamp(report):
    np.testing.assert_allclose(report["clamped_output"], report["target"], atol=1e-12)
    np.testing.assert_allclose(report["cl"], report["cl_secant"], atol=1e-12)


def test_random_sign_and_update_compile_once():
    net, w, inputs, target = resistor()
    batch = (jnp.stack([inputs, 0.5 * inputs]), jnp.stack([target, target]))
    mean = lambda rule, sign: jax.tree.map(
        lambda a, b: (a + b) / 2,
        estimate(rule, net, w, batch[0][0], batch[1][0], sign),
        estimate(rule, net, w, batch[0][1], batch[1][1], sign),
    )
    plus, minus = mean(rules.EP(0.1, "random"), ONE), mean(rules.EP(0.1, "random"), -ONE)
    # the minus draw is the one-sided estimate from the negative side
    np.testing.assert_allclose(flat(minus), flat(mean(rules.EP(0.1, "negative"), ONE)), rtol=1e-9)
    seen = set()
    before = rules.batch_estimate._cached._cache_size()
    for seed, beta in enumerate([0.1] * 8):
        g = rules.update(net, w, batch, rules.EP(beta, "random"), key=jax.random.key(seed))
        match = [np.allclose(flat(g), flat(ref), rtol=1e-10) for ref in (plus, minus)]
        assert any(match)
        seen.add(match.index(True))
    assert seen == {0, 1}
    for beta in (0.05, 0.2):
        rules.update(net, w, batch, rules.EP(beta, "random"), key=jax.random.key(0))
    assert rules.batch_estimate._cached._cache_size() - before == 1


def test_bad_input():
    net, w, inputs, target = resistor()
    batch = (inputs[None], target[None])
    for make, message in [
        (lambda: rules.EP(0.0), "EP beta must be > 0"),
        (lambda: rules.EP(jnp.nan), "EP beta must be a finite"),
        (lambda: rules.CpL(1.5), r"CpL eta must lie in \(0.0, 1.0\]"),
        (lambda: rules.CpL(0.0), r"CpL eta must lie in \(0.0, 1.0\]"),
        (lambda: rules.EP(0.1, "sideways"), "variant must be one of"),
        (
            lambda: rules.update(net, w, (inputs[None, :1], target[None]), rules.EP(0.1)),
            r"shape \(\.\.\., 2\)",
        ),
        (
            lambda: rules.update(net, w, (inputs[None], target[None, :1]), rules.EP(0.1)),
            r"targets must have shape",
        ),
        (
            lambda: rules.update(net, w, (inputs[None] * jnp.nan, target[None]), rules.EP(0.1)),
            "finite",
        ),
        (lambda: rules.update(net, -w, batch, rules.EP(0.1)), "conductances must be >= 0"),
        (lambda: rules.update(net, w, batch, rules.EP(0.1, "random")), "PRNG key"),
    ]:
        with pytest.raises(ValueError, match=message):
            make()
