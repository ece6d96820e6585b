"""Agnostic equilibrium propagation: the physical step against the explicit EP estimate, the
secant as a Lyapunov function (finite beta, finite epsilon), homeostasis, feasibility, bad
input."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synapse_dyn import networks as nw
from synapse_dyn import rules
from synapse_dyn.noise import Thermal
from synapse_dyn.rules.contrastive import primitive

MODES = ("optimistic", "pessimistic", "centered")


def matched_ep(mode, beta):
    """The explicit EP rule with AEqProp's nudges (beta_1, beta_2) of ``mode``: the project's
    centered EP nudges at +-beta_EP, AEqProp's centered at +-beta/2."""
    return {
        "optimistic": rules.EP(beta, "positive"),
        "pessimistic": rules.EP(beta, "negative"),
        "centered": rules.EP(beta / 2, "centered"),
    }[mode]


def flat(tree):
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])


def resistor():
    graph = nw.random_graph(10, seed=3)
    return nw.ResistorNetwork(graph, [0, 1], [3, 4], ground_nodes=[2])


def hopfield():
    return nw.HopfieldNetwork((4, 6, 3), free_sweeps=60, nudged_sweeps=60, gain=1.0)


@pytest.mark.parametrize(
    "make, epsilons",
    [(resistor, np.geomspace(1e-3, 1e-1, 4)), (hopfield, np.geomspace(1e-4, 1e-2, 4))],
    ids=["resistor", "hopfield"],
)
def test_first_order_step_is_the_ep_estimate(make, epsilons):
    """(theta' - theta) / (-epsilon (beta_2 - beta_1)) -> g_hat_EP(beta_1, beta_2) with error
    O(epsilon): fitted log-log slope 1 +- 0.15, in all three modes."""
    network = make()
    w = network.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (1, network.n_inputs))
    y = jax.random.uniform(jax.random.key(2), (1, network.n_outputs))
    beta = 0.5
    for mode in MODES:
        explicit = flat(rules.update(network, w, (x, y), matched_ep(mode, beta)))
        errors = []
        for epsilon in epsilons:
            phases = rules.AgnosticEP(beta, epsilon, mode).phases(network, w, x, y)
            physical = flat(jax.tree.map(jnp.subtract, phases.theta, w)) / (-epsilon * beta)
            errors.append(float(jnp.linalg.norm(physical - explicit)))
        slope = np.polyfit(np.log(epsilons), np.log(errors), 1)[0]
        assert abs(slope - 1) < 0.15, (mode, slope, errors)
        assert errors[0] < 1e-2 * float(jnp.linalg.norm(explicit)), (mode, errors)


def test_secant_is_a_lyapunov_function_at_finite_beta_and_epsilon():
    """Theorem (secant descent, arXiv:2205.15021): L(theta) = [Phi(theta, b2) - Phi(theta,
    b1)]/(b2 - b1) does not increase in one AEqProp update when H_b1(p) = |p - u|^2/(2 eps) +
    Phi(p, b1) is convex on the segment from theta to theta' (theta is a stationary point of
    H_b1 by the knob setting, so H_b1(theta') >= H_b1(theta); the joint relaxation lowers
    H_b2 from theta); and Phi concave in b gives positive secant <= C(o(s_0)) <= negative
    secant at every theta. 200 random resistor cases per mode, beta in [0.1, 1], epsilon =
    r / lambda, lambda the largest eigenvalue of -d2 Phi/d theta2 at (theta, b1), r in
    [0.01, 0.9]: the step is far from the first-order one (up to ~10 times it), and the
    joint relaxation pulls conductances onto their minimum, where the negative stiffness
    grows past 1/eps. Where the hypothesis holds (checked at 9 points of the segment) the
    relaxation converges and the secant never increases; increases, and relaxations that
    diverge, occur only where it fails (r >~ 0.7); it holds in every case with r <= 0.5."""
    network = resistor()
    n = 200
    keys = jax.random.split(jax.random.key(7), 6)
    ws = jax.random.uniform(keys[0], (n, network.graph.n_edges), minval=1.0, maxval=3.0)
    direction = jax.random.normal(keys[1], (n, 1, 2))
    radius = jax.random.uniform(keys[2], (n, 1, 1), minval=0.5, maxval=1.0)
    xs = direction / jnp.linalg.norm(direction, axis=-1, keepdims=True) * radius
    ys = jax.random.uniform(keys[3], (n, 1, 2), minval=-0.5, maxval=0.5)
    betas = jax.random.uniform(keys[4], (n,), minval=0.1, maxval=1.0)
    ratios = jax.random.uniform(keys[5], (n,), minval=0.01, maxval=0.9)

    def one(mode, w, x, y, beta, ratio):
        b1, b2 = rules.AgnosticEP(beta, 1.0, mode).betas
        phi = lambda p: primitive(network, p, x[0], y[0], b1)  # noqa: E731
        epsilon = ratio / jnp.max(jnp.linalg.eigvalsh(-jax.hessian(phi)(w)))
        rule = rules.AgnosticEP(beta, epsilon, mode, max_iterations=5000)  # slow near r = 1
        phases = rule.phases(network, w, x, y)
        theta = phases.theta
        first_order = (
            -epsilon * beta * rules.batch_estimate(network, w, x, y, matched_ep(mode, beta))
        )
        deviation = jnp.linalg.norm(theta - w - first_order) / jnp.linalg.norm(first_order)
        # d2/dt2 H_b1(w + t (theta - w)) at 9 points of the segment
        step = theta - w
        along = lambda t: phi(w + t * step)  # noqa: E731
        curvature = lambda t: jax.jvp(lambda s: jax.jvp(along, (s,), (1.0,))[1], (t,), (1.0,))[1]  # noqa: E731
        convex = jnp.all(
            jax.vmap(curvature)(jnp.linspace(0.0, 1.0, 9)) + jnp.sum(step**2) / epsilon > 0
        )
        secant = lambda p, lo, hi: rules.secant(network, p, x, y, lo, hi)  # noqa: E731
        loss = lambda p: rules.evaluate(network, p, x, y)["loss"][0]  # noqa: E731
        sandwich = jnp.stack(
            [jnp.stack([secant(p, 0.0, beta), loss(p), secant(p, -beta, 0.0)]) for p in (w, theta)]
        )
        change = secant(theta, b1, b2) - secant(w, b1, b2)
        return change, sandwich, deviation, phases.residual, convex

    for mode in MODES:
        run = jax.jit(jax.vmap(functools.partial(one, mode)))
        change, sandwich, deviation, residual, convex = map(
            np.asarray, run(ws, xs, ys, betas, ratios)
        )
        held = residual < 1e-9  # else the steps grew: reported as diverged by update()
        small = np.asarray(ratios) <= 0.5
        assert np.all(held[small] & convex[small]), mode
        assert np.all(held | ~convex), mode  # divergence only where the hypothesis fails
        proven = held & convex
        assert np.all(change[proven] <= 1e-12), (mode, float(np.max(change[proven])))
        assert np.all(sandwich[held, :, 0] - sandwich[held, :, 1] <= 1e-12), mode
        assert np.all(sandwich[held, :, 1] - sandwich[held, :, 2] <= 1e-12), mode
        # the theorem covers steps far from the first-order one
        assert float(np.max(deviation[proven])) > 1.0, (mode, float(np.max(deviation[proven])))


def joint_forces(network, rule, phases, theta, states, inputs, targets, beta):
    """(theta-gradient, state gradient projected on the state bounds) of the total energy
    |theta - u|^2/(2 eps) + mean E(theta, s) + beta C(s) at (theta, states)."""
    current = network.batch_current(states, theta, inputs)
    on_theta = jax.tree.map(lambda t, u, d: (t - u) / rule.epsilon + d, theta, phases.knob, current)

    def on_state(s, i, y):
        grad = jax.grad(network.total_energy)(s, theta, i, nw.SoftNudge(beta, y, rule.cost))
        return flat(jax.tree.map(lambda g, m: jnp.where(m, g, 0.0), grad, network.interior(s)))

    return flat(on_theta), jax.vmap(on_state)(states, inputs, targets)


@pytest.mark.parametrize("make", [resistor, hopfield], ids=["resistor", "hopfield"])
def test_homeostasis_and_joint_equilibrium(make):
    """After the homeostatic phase theta is exactly at equilibrium, (theta - u)/eps + dE/dtheta
    = 0; after the joint relaxation the theta-gradient and the s-gradient (projected on the
    state bounds) of the total energy vanish to the solver tolerance."""
    network = make()
    w = network.init(jax.random.key(3))
    x = jax.random.uniform(jax.random.key(4), (3, network.n_inputs))
    y = jax.random.uniform(jax.random.key(5), (3, network.n_outputs))
    epsilon, beta = (0.1, 0.8) if make is resistor else (0.003, 0.5)
    forces = eqx.filter_jit(joint_forces)
    for mode in MODES:
        rule = rules.AgnosticEP(beta, epsilon, mode)
        b1, b2 = rule.betas
        phases = rule.phases(network, w, x, y)
        scale = float(jnp.max(jnp.abs(flat(phases.knob)))) / epsilon
        on_theta, on_state = forces(network, rule, phases, w, phases.homeostatic, x, y, b1)
        assert float(jnp.max(jnp.abs(on_theta))) < 1e-13 * scale, mode
        assert float(jnp.max(jnp.abs(on_state))) < 1e-9, mode
        on_theta, on_state = forces(network, rule, phases, phases.theta, phases.nudged, x, y, b2)
        assert float(jnp.max(jnp.abs(on_theta))) < 1e-9 * scale, mode
        assert float(jnp.max(jnp.abs(on_state))) < 1e-9, mode


def test_conductances_rest_on_their_minimum():
    """A knob pulling a conductance below the minimum: the joint minimiser over the feasible
    set keeps it at min_conductance (the exact constrained theta-block), and the secant still
    does not increase; in physical time the run stops with a ValueError naming the example."""
    network = resistor()
    x, y = jnp.array([[1.0, -1.0]]), jnp.array([[0.8, -0.8]])
    w = network.init(jax.random.key(0))
    edge = int(jnp.argmax(rules.update(network, w, (x, y), rules.EP(0.5, "positive"))))
    w = w.at[edge].set(1e-3)
    rule = rules.AgnosticEP(0.5, 0.5, "optimistic")
    phases = rule.phases(network, w, x, y)
    unconstrained = phases.knob - 0.5 * network.batch_current(phases.nudged, phases.theta, x)
    assert float(unconstrained[edge]) < network.min_conductance
    assert float(phases.theta[edge]) == network.min_conductance
    assert float(jnp.max(jnp.abs(jnp.delete(phases.theta - unconstrained, edge)))) < 1e-12
    # in physical time nothing holds the conductance at its minimum: the knobs drive it out
    from synapse_dyn.simulate import Schedule, simulate
    from synapse_dyn.simulate.agnostic import AgnosticProtocol

    protocol = AgnosticProtocol(free=10.0, homeostatic=10.0, nudged=10.0, ramp=2.5, theta_time=1)
    with pytest.raises(ValueError, match="outside the ResistorNetwork's feasible set during exa"):
        simulate(None, protocol, t1=30.0, network=network, rule=rule, task=Schedule(x, y), w0=w)
    b1, b2 = rule.betas
    assert float(rules.secant(network, phases.theta, x, y, b1, b2)) <= float(
        rules.secant(network, w, x, y, b1, b2)
    )


class _GenericResistor(nw.ResistorNetwork):
    """A resistor network of a type outside AgnosticEP's closed-form list: the theta-block
    goes to optimistix."""


class _GenericHopfield(nw.HopfieldNetwork):
    """A Hopfield network outside the closed-form list: dense theta, optimistix."""


@pytest.mark.parametrize("which", ["resistor", "hopfield"])
def test_generic_minimiser_agrees_with_the_closed_form(which):
    """The joint relaxation with the theta-block minimised by optimistix (BFGS, dense theta)
    lands on the closed-form one: the resistor's projected minimiser, the Hopfield network's
    factored rank-B form (theta never formed during the relaxation)."""
    if which == "resistor":
        exact = resistor()
        generic = _GenericResistor(exact.graph, [0, 1], [3, 4], ground_nodes=[2])
        epsilon = 0.2
    else:
        exact = hopfield()
        generic = _GenericHopfield((4, 6, 3), free_sweeps=60, nudged_sweeps=60, gain=1.0)
        epsilon = 0.05
    w = exact.init(jax.random.key(1))
    x = jax.random.uniform(jax.random.key(2), (2, exact.n_inputs))
    y = jax.random.uniform(jax.random.key(3), (2, exact.n_outputs))
    rule = rules.AgnosticEP(0.5, epsilon, "centered")
    a = flat(rule.phases(exact, w, x, y).theta)
    b = flat(rule.phases(generic, w, x, y).theta)
    np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-12)
    assert float(jnp.max(jnp.abs(a - flat(w)))) > 1e-3


def test_update_matches_the_physical_step_and_bad_input():
    network = resistor()
    w = network.init(jax.random.key(0))
    batch = (jnp.array([[0.5, -0.2]]), jnp.array([[0.1, 0.3]]))
    rule = rules.AgnosticEP(0.4, 0.05, "pessimistic")
    g = rules.update(network, w, batch, rule)
    theta = rule.phases(network, w, *batch).theta
    np.testing.assert_allclose(network.project(w - rule.learning_rate * g), theta, atol=1e-14)
    with pytest.raises(ValueError, match="AgnosticEP epsilon must be > 0"):
        rules.AgnosticEP(0.5, 0.0)
    with pytest.raises(ValueError, match="AgnosticEP beta must be > 0"):
        rules.AgnosticEP(0.0, 0.1)
    with pytest.raises(ValueError, match="mode must be one of"):
        rules.AgnosticEP(0.5, 0.1, "symmetric")
    big = hopfield()
    v = big.init(jax.random.key(0))
    inputs = jnp.ones((1, 4))
    with pytest.raises(Exception, match="diverged.*lower epsilon"):
        rules.update(big, v, (inputs, jnp.eye(3)[:1]), rules.AgnosticEP(0.5, 5.0))


def test_physical_time_agrees_with_the_exact_phases_and_keeps_the_first_law():
    """simulate(rule=AgnosticEP): with phases ten relaxation times long the parameters after
    each example agree with the exact phases within 1% of the step; per example the knob and
    nudge work equal the energy change plus the heat released (first law) to solver tolerance,
    and the heat is positive."""
    from synapse_dyn.simulate import Schedule, simulate
    from synapse_dyn.simulate.agnostic import AgnosticProtocol

    network = resistor()
    w = network.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, 2), minval=-1, maxval=1)
    y = jax.random.uniform(jax.random.key(2), (3, 2), minval=-0.5, maxval=0.5)
    rule = rules.AgnosticEP(0.5, 0.3, "centered")
    protocol = AgnosticProtocol(free=10.0, homeostatic=10.0, nudged=10.0, ramp=2.5, theta_time=1)
    run = simulate(
        None,
        protocol,
        t1=3 * protocol.period,
        network=network,
        rule=rule,
        task=Schedule(x, y),
        w0=w,
        rtol=1e-10,
        atol=1e-12,
    )
    theta = w
    for k in range(3):
        step = rule.phases(network, theta, x[k : k + 1], y[k : k + 1]).theta - theta
        theta = theta + step
        error = float(jnp.max(jnp.abs(run.theta[k] - theta)) / jnp.max(jnp.abs(step)))
        assert error < 0.01, (k, error)
    balance = run.knob_work + run.nudge_work - run.energy_change - run.heat
    assert float(jnp.max(jnp.abs(balance))) < 1e-8 * float(jnp.max(run.heat))
    assert bool(jnp.all(run.heat > 0))
    with pytest.raises(ValueError, match="AgnosticProtocol ramp"):
        AgnosticProtocol(free=1.0, homeostatic=1.0, nudged=1.0, ramp=2.0, theta_time=1.0)
    with pytest.raises(ValueError, match="whole examples"):
        simulate(None, protocol, t1=40.0, network=network, rule=rule, task=Schedule(x, y), w0=w)
    with pytest.raises(ValueError, match="noise is not modelled in an agnostic"):
        simulate(
            None,
            protocol,
            t1=30.0,
            network=network,
            rule=rule,
            task=Schedule(x, y),
            w0=w,
            noise=Thermal(1.0),
            dt=0.01,
        )


def test_centered_aeqprop_trains_the_digits_as_centered_ep():
    """examples/hopfield_aeqprop.toml (Hopfield 64-64-10, centered, beta 1, epsilon 0.05, 15
    epochs) against centered EP with the same nudges (beta_EP = 0.5) and learning rate
    epsilon beta = 0.05: test accuracy >= 95% and within 1 point of EP's."""
    import dataclasses
    import pathlib

    from synapse_dyn import experiments
    from synapse_dyn.analysis.figures.aeqprop import DIGITS
    from synapse_dyn.training import train

    path = pathlib.Path(__file__).parents[1] / "examples" / "hopfield_aeqprop.toml"
    config = experiments.parse(path.read_text())
    figure = experiments.from_table(DIGITS, "digits")
    assert dataclasses.replace(figure, epochs=config.epochs) == config
    explicit = dataclasses.replace(
        config, rule="ep", variant="centered", beta=config.beta / 2, learning_rate=0.05
    )
    agnostic = train(config, progress=False)["test_accuracy"].values
    ep = train(explicit, progress=False)["test_accuracy"].values
    assert agnostic[-1] >= 0.95, agnostic
    assert abs(agnostic[-1] - ep[-1]) <= 0.01, (agnostic, ep)


def test_centered_aeqprop_trains_iris_on_the_diode_network():
    """examples/diode_aeqprop.toml (diode network 4-32-3 at input gain 2, centered, beta 2,
    epsilon 0.06 decaying 0.99 per epoch, 200 epochs): >= 93% test accuracy on the shipped
    Iris split, and within two test samples of centered EP with the same nudges (beta_EP = 1)
    and learning rate epsilon beta. The figure trains the same configuration."""
    import dataclasses
    import pathlib

    from synapse_dyn import experiments
    from synapse_dyn.analysis.figures.aeqprop import IRIS
    from synapse_dyn.training import train

    path = pathlib.Path(__file__).parents[1] / "examples" / "diode_aeqprop.toml"
    config = experiments.parse(path.read_text())
    assert dataclasses.replace(experiments.from_table(IRIS, "iris"), epochs=config.epochs) == config
    explicit = dataclasses.replace(
        config,
        rule="ep",
        variant="centered",
        beta=config.beta / 2,
        learning_rate=config.epsilon * config.beta,
    )
    agnostic = train(config, progress=False)["test_accuracy"].values
    ep = train(explicit, progress=False)["test_accuracy"].values
    assert agnostic[-1] >= 0.93, agnostic[-30:]
    assert abs(agnostic[-1] - ep[-1]) <= 2 / 45 + 1e-9, (agnostic[-10:], ep[-10:])
