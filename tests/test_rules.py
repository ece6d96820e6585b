"""Estimator identities of the contrastive rules on small random networks of every substrate:
EP -> exact gradient as beta -> 0 (slope 1 one-sided, 2 centered), the finite-beta identity
g_hat = grad_w [Phi(b2) - Phi(b1)] / (b2 - b1), the secant bounds on L, the CpL limit
(do/dw)^T H_oo dC/do, the exact gradient against finite differences, and bad input."""

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
    w["biases"] = tuple(0.3 * jax.random.normal(k, b.shape) for k, b in zip(keys, w["biases"]))
    return net, w, jnp.array([0.5, -0.3, 0.8]), jnp.array([0.3, 0.1])


def hopfield():
    net = nw.HopfieldNetwork((3, 6, 4, 2), free_sweeps=300, nudged_sweeps=300, gain=1.0)
    return net, net.init(jax.random.key(0)), jnp.array([0.5, -0.3, 0.8]), jnp.array([0.3, 0.1])


SUBSTRATES = {"resistor": resistor, "diode": diode, "hopfield": hopfield}


@pytest.fixture(scope="module", params=list(SUBSTRATES))
def case(request):
    return SUBSTRATES[request.param]()


def loss(net, w, inputs, target, cost=nw.MSE()):
    return cost(net.output(net.equilibrium(w, inputs)), target)


@pytest.fixture(scope="module")
def exact(case):
    net, w, inputs, target = case
    return rules.implicit_gradient(net, w, inputs, target)


def flat(tree):
    return ravel_pytree(tree)[0]


@eqx.filter_jit
def ep_estimates(net, w, inputs, target, betas, variant):
    return jax.vmap(lambda b: rules.EP(b, variant).estimate(net, w, inputs, target, ONE))(betas)


@pytest.mark.parametrize("variant,slope", [("positive", 1.0), ("negative", 1.0), ("centered", 2.0)])
def test_ep_converges_to_exact_gradient(case, exact, variant, slope):
    net, w, inputs, target = case
    betas = jnp.geomspace(1e-3, 1e-2, 4)
    estimates = ep_estimates(net, w, inputs, target, betas, variant)
    errors = jax.vmap(lambda g: jnp.linalg.norm(flat(g) - flat(exact)))(estimates)
    errors = errors / jnp.linalg.norm(flat(exact))
    fitted = np.polyfit(np.log(betas), np.log(errors), 1)[0]
    assert abs(fitted - slope) < 0.1, (fitted, errors)
    assert errors[0] < 1e-2


def test_exact_gradient_matches_finite_differences(case, exact):
    net, w, inputs, target = case
    flat_w, unravel = ravel_pytree(w)
    directions = jax.random.normal(jax.random.key(7), (3, flat_w.size))
    eps = 1e-5
    for d in directions:
        fd = (loss(net, unravel(flat_w + eps * d), inputs, target) - loss(net, unravel(flat_w - eps * d), inputs, target)) / (2 * eps)
        np.testing.assert_allclose(flat(exact) @ d, fd, rtol=1e-6, atol=1e-12)


def test_exact_gradient_equals_lineax_adjoint():
    """Resistor: autodiff through lineax's linear solve (its own adjoint) equals the generic
    implicit-function-theorem gradient."""
    net, w, inputs, target = resistor()
    np.testing.assert_allclose(
        jax.grad(loss, argnums=1)(net, w, inputs, target),
        rules.implicit_gradient(net, w, inputs, target),
        rtol=1e-10,
        atol=1e-15,
    )


@pytest.mark.parametrize("variant", ["positive", "negative", "centered"])
def test_ep_is_finite_difference_of_primitive(case, variant):
    """At finite beta: g_hat(b1, b2) . d = d/dw [Phi(b2) - Phi(b1)] . d / (b2 - b1)."""
    net, w, inputs, target = case
    beta = 0.3
    b1, b2 = {"positive": (0.0, beta), "negative": (-beta, 0.0), "centered": (-beta, beta)}[variant]
    estimate = flat(rules.EP(beta, variant).estimate(net, w, inputs, target, ONE))
    flat_w, unravel = ravel_pytree(w)
    phi = eqx.filter_jit(lambda fw, b: rules.primitive(net, unravel(fw), inputs, target, b))
    eps = 1e-5
    for d in jax.random.normal(jax.random.key(11), (3, flat_w.size)):
        secant = lambda fw: (phi(fw, b2) - phi(fw, b1)) / (b2 - b1)
        fd = (secant(flat_w + eps * d) - secant(flat_w - eps * d)) / (2 * eps)
        np.testing.assert_allclose(estimate @ d, fd, rtol=1e-6, atol=1e-10)


def test_secant_bounds_on_loss(case):
    net, w, inputs, target = case
    beta = 0.2
    phi = {b: rules.primitive(net, w, inputs, target, b) for b in (-beta, 0.0, beta)}
    value = loss(net, w, inputs, target)
    assert (phi[beta] - phi[0.0]) / beta <= value <= (phi[0.0] - phi[-beta]) / beta
    np.testing.assert_allclose(phi[0.0], net.energy(net.equilibrium(w, inputs), w, inputs))


def output_stiffness(net, w, inputs):
    """H_oo = Schur complement of the interior Hessian on the outputs, computed with dense
    linear algebra (independent of the clamped solver)."""
    x = net.equilibrium(w, inputs)
    flat_x, unravel = ravel_pytree(x)
    hessian = jax.hessian(lambda fx: net.energy(unravel(fx), w, inputs))(flat_x)
    interior = flat(net.interior(x))
    is_out = flat(net.clamp(jax.tree.map(jnp.zeros_like, x), jnp.ones(net.n_outputs))) > 0
    hidden = np.flatnonzero(np.asarray(interior & ~is_out))
    out = np.flatnonzero(np.asarray(is_out))
    h_oh = hessian[np.ix_(out, hidden)]
    return hessian[np.ix_(out, out)] - h_oh @ np.linalg.solve(hessian[np.ix_(hidden, hidden)], h_oh.T)


def test_cpl_limit_is_gradient_in_output_stiffness_metric(case):
    """eta -> 0: g_CpL = (do/dw)^T H_oo dC/do, the implicit gradient of the linear cost
    c . o with c = H_oo dC/do."""
    net, w, inputs, target = case
    stiffness = output_stiffness(net, w, inputs)
    o = net.output(net.equilibrium(w, inputs))
    weighted = stiffness @ (o - target)

    class Linear(nw.AbstractCost):
        curvature = 0.0
        quadratic = True

        def __call__(self, o, y):
            return weighted @ o

    expected = flat(rules.implicit_gradient(net, w, inputs, target, Linear()))
    estimate = flat(rules.CpL(1e-3, "centered").estimate(net, w, inputs, target, ONE))
    np.testing.assert_allclose(estimate, expected, rtol=1e-5, atol=1e-9 * np.abs(expected).max())


def test_cl_is_full_clamp(case):
    net, w, inputs, target = case
    x_free = net.equilibrium(w, inputs)
    x_clamped = net.equilibrium(w, inputs, nw.Clamp(target), x_free)
    np.testing.assert_allclose(net.output(x_clamped), target, atol=1e-12)
    secant = jax.tree.map(
        jnp.subtract, net.synaptic_current(x_clamped, w, inputs), net.synaptic_current(x_free, w, inputs)
    )
    np.testing.assert_allclose(flat(rules.CL().estimate(net, w, inputs, target, ONE)), flat(secant), atol=1e-12)


def test_random_sign_and_update_compile_once():
    net, w, inputs, target = resistor()
    batch = (jnp.stack([inputs, 0.5 * inputs]), jnp.stack([target, target]))
    mean = lambda rule, sign: jax.tree.map(
        lambda a, b: (a + b) / 2,
        rule.estimate(net, w, batch[0][0], batch[1][0], sign),
        rule.estimate(net, w, batch[0][1], batch[1][1], sign),
    )
    plus, minus = mean(rules.EP(0.1, "random"), ONE), mean(rules.EP(0.1, "random"), -ONE)
    # the minus draw is the one-sided estimate from the negative side
    np.testing.assert_allclose(flat(minus), flat(mean(rules.EP(0.1, "negative"), ONE)), rtol=1e-9)
    seen = set()
    before = rules._base._update._cached._cache_size()
    for seed, beta in enumerate([0.1] * 8):
        g = rules.update(net, w, batch, rules.EP(beta, "random"), key=jax.random.key(seed))
        match = [np.allclose(flat(g), flat(ref), rtol=1e-10) for ref in (plus, minus)]
        assert any(match)
        seen.add(match.index(True))
    assert seen == {0, 1}
    for beta in (0.05, 0.2):
        rules.update(net, w, batch, rules.EP(beta, "random"), key=jax.random.key(0))
    assert rules._base._update._cached._cache_size() - before == 1


def test_bad_input():
    net, w, inputs, target = resistor()
    batch = (inputs[None], target[None])
    for make, message in [
        (lambda: rules.EP(0.0), "EP beta must be > 0"),
        (lambda: rules.EP(jnp.nan), "EP beta must be a finite"),
        (lambda: rules.CpL(1.5), r"CpL eta must lie in \(0.0, 1.0\]"),
        (lambda: rules.CpL(0.0), r"CpL eta must lie in \(0.0, 1.0\]"),
        (lambda: rules.EP(0.1, "sideways"), "variant must be one of"),
        (lambda: rules.update(net, w, (inputs[None, :1], target[None]), rules.EP(0.1)), r"shape \(\.\.\., 2\)"),
        (lambda: rules.update(net, w, (inputs[None], target[None, :1]), rules.EP(0.1)), r"targets must have shape"),
        (lambda: rules.update(net, w, (inputs[None] * jnp.nan, target[None]), rules.EP(0.1)), "finite"),
        (lambda: rules.update(net, -w, batch, rules.EP(0.1)), "conductances must be >= 0"),
        (lambda: rules.update(net, w, batch, rules.EP(0.1, "random")), "PRNG key"),
    ]:
        with pytest.raises(ValueError, match=message):
            make()
