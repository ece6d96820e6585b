"""Temporal Contrastive Learning as one dynamical system: a resistor network, E. coli memory
synapses and a sawtooth nudge co-simulated with diffrax. In the ideal timescale regime
(tau_K << tau_fast << tau_slow, quasi-static network) the update accumulated over one cycle is
the explicit rule's update."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import protocols as P
from synapse_dyn import networks as nw
from synapse_dyn import rules
from synapse_dyn.simulate import Schedule, simulate
from synapse_dyn.synapses import DeadZone, EColiCascade, Synapse

TAU_FAST, TAU_SLOW, TAU_KERNEL, ALPHA = 1.0, 1000.0, 0.01, 1e-6


@pytest.fixture(scope="module")
def resistor():
    net = nw.ResistorNetwork(nw.random_graph(25, seed=5), [0, 1], [7, 8], ground_nodes=[2])
    return net, net.init(jax.random.key(3)), jnp.array([[1.0, -0.6]]), jnp.array([[0.25, 0.1]])


def tcl_estimate(net, w, inputs, targets, rule, reverse=False):
    """-dw/alpha over the second cycle (the first brings the memory to its periodic state),
    with the threshold above every synapse's slow-ramp signal: theta = 3 max|A| / tau_slow."""
    explicit = rules.update(net, w, (inputs, targets), rule)
    theta = 3 * float(jnp.max(jnp.abs(rule.strength * explicit))) / TAU_SLOW
    synapse = Synapse(EColiCascade(TAU_KERNEL), DeadZone(theta), ALPHA)
    period = TAU_FAST + TAU_SLOW
    solution = simulate(
        synapse,
        P.Sawtooth(TAU_FAST, TAU_SLOW, reverse=reverse),
        t1=2 * period,
        network=net,
        rule=rule,
        schedule=Schedule(inputs, targets),
        w0=w,
        saveat=jnp.array([period, 2 * period]),
        solver=diffrax.Kvaerno5(),
        rtol=1e-8,
        atol=1e-12,
    )
    weights = solution.ys[2]
    return -(weights[1] - weights[0]) / ALPHA, explicit


def cosine(a, b):
    return float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


@pytest.mark.parametrize("rule", [rules.EP(0.05, "positive"), rules.CpL(0.1, "positive")], ids=["EP", "CpL"])
def test_tcl_cycle_reproduces_the_explicit_update(resistor, rule):
    tcl, explicit = tcl_estimate(*resistor, rule)
    assert cosine(tcl, explicit) >= 0.99
    np.testing.assert_allclose(jnp.linalg.norm(tcl) / jnp.linalg.norm(explicit), 1.0, atol=0.05)
    exact = rules.update(*resistor[:2], resistor[2:], rules.ExactGradient())
    assert cosine(tcl, exact) >= 0.99


def test_network_simulation_rejects_bad_configuration(resistor):
    net, w, inputs, targets = resistor
    synapse = Synapse(EColiCascade(TAU_KERNEL), DeadZone(1.0))
    with pytest.raises(ValueError, match="variant must be 'positive', 'negative' or 'random'"):
        simulate(synapse, P.Sawtooth(1.0, 9.0), t1=10.0, network=net, rule=rules.EP(0.1, "centered"), schedule=Schedule(inputs, targets), w0=w)
    with pytest.raises(ValueError, match="inputs must have shape"):
        simulate(synapse, P.Sawtooth(1.0, 9.0), t1=10.0, network=net, rule=rules.EP(0.1, "positive"), schedule=Schedule(jnp.ones((1, 3)), targets), w0=w)
