"""Layered networks (ideal-diode resistive networks, Hopfield networks): KKT conditions of the
quadratic program, monotone energy along coordinate descent and along the relaxation flow, an
independent QP solver (L-BFGS-B), ngspice, local currents and bad input."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from jax.flatten_util import ravel_pytree

from synapse_dyn.networks import CrossEntropy, DiodeNetwork, HopfieldNetwork, SoftNudge
from synapse_dyn.networks.spice import diode_forward_drop, ngspice_available, run_ngspice


def diode():
    net = DiodeNetwork((3, 8, 6, 2), input_gain=1.5, free_sweeps=400, nudged_sweeps=400)
    w = net.init(jax.random.key(4))
    keys = jax.random.split(jax.random.key(5), 3)
    w["biases"] = tuple(
        0.2 * jax.random.normal(k, b.shape) for k, b in zip(keys, w["biases"], strict=False)
    )
    return net, w, jnp.array([0.6, -0.4, 0.9])


def hopfield():
    net = HopfieldNetwork((3, 8, 6, 2), free_sweeps=400, nudged_sweeps=400, gain=1.2)
    return net, net.init(jax.random.key(4)), jnp.array([0.6, 0.2, 0.9])


CASES = {"diode": diode, "hopfield": hopfield}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return CASES[request.param]()


@eqx.filter_jit
def free_state_and_gradient(net, w, inputs):
    x = net.equilibrium(w, inputs)
    return x, jax.grad(net.energy)(x, w, inputs)


def test_kkt_conditions(case):
    """Feasibility, stationarity off the bounds, correct sign of the multiplier (the diode or
    saturation current) on them, complementarity."""
    net, w, inputs = case
    x, grad = free_state_and_gradient(net, w, inputs)
    lower, upper = net.state_bounds()
    active = 0
    for v, g, lo, hi in zip(x, grad, lower, upper, strict=False):
        assert np.all(v >= lo) and np.all(v <= hi)
        at_lo, at_hi = np.asarray(v == lo), np.asarray(v == hi)
        inside = ~(at_lo | at_hi)
        assert np.abs(np.asarray(g)[inside]).max(initial=0) < 1e-9
        assert np.all(np.asarray(g)[at_lo] >= -1e-9) and np.all(np.asarray(g)[at_hi] <= 1e-9)
        # multipliers: g = mu_lo - mu_hi, mu >= 0, each zero off its own bound
        mu_lo, mu_hi = np.maximum(g, 0), np.maximum(-g, 0)
        assert np.abs(np.where(np.isfinite(lo), (v - lo) * mu_lo, 0)).max() < 1e-9
        assert np.abs(np.where(np.isfinite(hi), (hi - v) * mu_hi, 0)).max() < 1e-9
        active += int(at_lo.sum() + at_hi.sum())
    assert 0 < active < sum(v.size for v in x)  # some constraints bind, not all


def test_matches_independent_qp_solver(case):
    net, w, inputs = case
    x, _ = free_state_and_gradient(net, w, inputs)
    flat_x, unravel = ravel_pytree(x)
    lower, upper = (ravel_pytree(b)[0] for b in net.state_bounds())
    energy = jax.jit(jax.value_and_grad(lambda fx: net.energy(unravel(fx), w, inputs)))
    fun = lambda fx: tuple(np.asarray(a, float) for a in energy(jnp.asarray(fx)))
    bounds = [
        (None if not np.isfinite(lo) else lo, None if not np.isfinite(hi) else hi)
        for lo, hi in zip(lower, upper, strict=False)
    ]
    result = scipy.optimize.minimize(
        fun,
        np.zeros(flat_x.size),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000},
    )
    np.testing.assert_allclose(result.x, flat_x, atol=1e-6)


def test_energy_never_increases(case):
    """Along exact block coordinate descent, free and nudged with the cross-entropy
    (majorise-minimise keeps the total energy monotone)."""
    net, w, inputs = case
    nudge = SoftNudge(0.5, jnp.array([1.0, 0.0]), CrossEntropy())

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def trajectory(nudge):
        def step(x, _):
            x = net.sweep(w, inputs, nudge, x)
            return x, net.total_energy(x, w, inputs, nudge)

        x0 = net.initial_state()
        energies = jax.lax.scan(step, x0, None, length=60)[1]
        return jnp.concatenate([net.total_energy(x0, w, inputs, nudge)[None], energies])

    free = SoftNudge(0.0, nudge.target, nudge.cost)  # beta = 0: the free sweeps, same program
    negative = SoftNudge(-0.5, nudge.target, nudge.cost)  # concave beta C: tangent majoriser
    for n in (free, nudge, negative):
        energies = np.asarray(trajectory(n))
        assert np.all(np.diff(energies) <= 1e-12)
        assert energies[0] - energies[-1] > 1e-3
    # the CE-nudged fixed points are stationary for E + beta CE at the outputs
    for n in (nudge, negative):
        x = net.equilibrium(w, inputs, n)
        grad = jax.grad(net.total_energy)(x, w, inputs, n)
        assert np.abs(np.asarray(grad[-1])).max() < 1e-9


def test_relaxation_flow_reaches_equilibrium():
    """Projected gradient flow of E + beta C from zero: the total energy decreases and the
    flow ends at the block-coordinate-descent equilibrium (bounds and nudge both active)."""
    net, w, inputs = hopfield()
    nudge = SoftNudge(0.4, jnp.array([0.8, 0.1]))
    ts = jnp.linspace(0.0, 200.0, 30)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(net.vector_field),
        diffrax.Tsit5(),
        0.0,
        200.0,
        0.05,
        net.initial_state(),
        args=(w, inputs, nudge),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10),
        max_steps=20000,
    )
    energies = jax.vmap(lambda x: net.total_energy(x, w, inputs, nudge))(solution.ys)
    assert np.all(np.diff(np.asarray(energies)) <= 1e-9)
    final = tuple(layer[-1] for layer in solution.ys)
    for a, b in zip(final, net.equilibrium(w, inputs, nudge), strict=False):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_local_currents_are_energy_gradients(case):
    net, w, inputs = case
    x, _ = free_state_and_gradient(net, w, inputs)
    local = ravel_pytree(net.synaptic_current(x, w, inputs))[0]
    np.testing.assert_allclose(
        local, ravel_pytree(jax.grad(net.energy, argnums=1)(x, w, inputs))[0], atol=1e-13
    )


@pytest.mark.skipif(
    not ngspice_available(), reason="ngspice not installed (apt-get install ngspice)"
)
def test_diode_network_matches_ngspice():
    net, w, inputs = diode()
    x, grad = free_state_and_gradient(net, w, inputs)
    spice = run_ngspice(net.to_spice(w, inputs))
    theirs = np.concatenate([[spice[name] for name in layer] for layer in net.node_names()])
    ours = ravel_pytree(x)[0]
    # the diode currents are the multipliers dE/dv at the bound; the model's drop at (twice,
    # for the SPICE currents' own shift) the largest of them bounds the disagreement
    tolerance = diode_forward_drop(2 * float(np.abs(ravel_pytree(grad)[0]).max()))
    assert 1e-6 < tolerance < 1e-3
    np.testing.assert_allclose(theirs, ours, atol=tolerance)


def test_bad_input():
    net, w, inputs = diode()
    bad = {
        "weights": (w["weights"][0].at[0, 1].set(-0.1), *w["weights"][1:]),
        "biases": w["biases"],
    }
    with pytest.raises(ValueError, match=r"weights\[0\] at \[\[0, 1\]\].*project"):
        net.equilibrium(bad, inputs)
    dead = {"weights": (w["weights"][0].at[2].set(0.0), *w["weights"][1:]), "biases": w["biases"]}
    with pytest.raises(ValueError, match=r"nodes \[2\] of layer 1 .* float"):
        net.equilibrium(dead, inputs)
    projected = net.project(bad)
    assert float(projected["weights"][0][0, 1]) == net.min_conductance
    with pytest.raises(ValueError, match="must be even"):
        DiodeNetwork((3, 5, 2))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        net.equilibrium(w, inputs[:2])
    with pytest.raises(ValueError, match="finite"):
        net.equilibrium(w, inputs.at[1].set(jnp.inf))
    hop, wh, _ = hopfield()
    with pytest.raises(ValueError, match=r"weights need \[\(8, 3\)"):
        hop.equilibrium({"weights": wh["weights"][::-1], "biases": wh["biases"]}, inputs)
