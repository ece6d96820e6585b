"""Temporal Contrastive Learning as one dynamical system: a resistor network, E. coli memory
synapses and a sawtooth nudge. In the ideal timescale regime (tau_K << tau_fast << tau_slow,
network fast) the update accumulated over one cycle is the explicit rule's update."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.signal

from synapse_dyn import networks as nw
from synapse_dyn import protocols as P
from synapse_dyn import rules
from synapse_dyn.analysis.tcl import agreement, cycle_estimate
from synapse_dyn.simulate import Schedule, simulate
from synapse_dyn.synapses import DeadZone, EColiCascade, Identity, Synapse, cycle_update

TAU_FAST, TAU_SLOW, TAU_KERNEL = 1.0, 1000.0, 0.01


@pytest.fixture(scope="module")
def resistor():
    net = nw.ResistorNetwork(nw.random_graph(25, seed=5), [0, 1], [7, 8], ground_nodes=[2])
    return net, net.init(jax.random.key(3)), jnp.array([[1.0, -0.6]]), jnp.array([[0.25, 0.1]])


def tcl_estimate(net, w, inputs, targets, rule, tau_slow=TAU_SLOW, **options):
    times = (TAU_FAST, tau_slow, TAU_KERNEL)
    return cycle_estimate(net, w, inputs, targets, rule, *times, **options)[0]


def cosine(a, b):
    return agreement(a, b)[0]


@pytest.fixture(scope="module")
def hopfield():
    net = nw.HopfieldNetwork((3, 6, 4, 2), free_sweeps=300, nudged_sweeps=300, gain=1.0)
    return net, net.init(jax.random.key(0)), jnp.array([[0.5, -0.3, 0.8]]), jnp.array([[0.3, 0.1]])


@pytest.mark.parametrize(
    "substrate, rule",
    [
        ("resistor", rules.EP(0.05, "positive")),
        ("resistor", rules.CpL(0.1, "positive")),
        ("hopfield", rules.EP(0.05, "positive")),
    ],
    ids=["resistor-EP", "resistor-CpL", "hopfield-EP"],
)
def test_tcl_cycle_reproduces_the_explicit_update(substrate, rule, request):
    net, w, inputs, targets = request.getfixturevalue(substrate)
    tcl = tcl_estimate(net, w, inputs, targets, rule)
    explicit = rules.update(net, w, (inputs, targets), rule)
    assert cosine(tcl, explicit) >= 0.99
    np.testing.assert_allclose(agreement(tcl, explicit)[1], 1.0, atol=0.05)
    exact = rules.update(net, w, (inputs, targets), rules.ExactGradient())
    assert cosine(tcl, exact) >= 0.99


def flat(tree):
    return np.asarray(jax.flatten_util.ravel_pytree(tree)[0])


def fine_grid_cycle(net, w, inputs, targets, rule, tau_slow, levels=9, step=1e-3):
    """The same quasi-static TCL cycle computed independently: each synapse's current
    interpolated linearly in the nudge between the ``levels`` relaxed states, sampled on a
    uniform grid, the memory as the exact discrete filter of its ODE for a signal linear
    between samples (first-order hold) run for two periods from rest at the free current, and
    integral g(u) dt over the second by the trapezoid rule; divided by the nudge strength, as
    ``cycle_estimate``."""
    free = jax.jit(jax.vmap(lambda i: net.equilibrium(w, i)))(inputs)
    nudge = lambda b: jax.vmap(lambda i, y, x: rule.perturb(net, w, i, y, x, b))  # noqa: E731
    strengths = rule.strength * jnp.linspace(0.0, 1.0, levels)
    states = jax.jit(jax.vmap(lambda b: nudge(b)(inputs, targets, free)))(strengths[1:])
    levels_ = [free] + [jax.tree.map(lambda a, k=k: a[k], states) for k in range(levels - 1)]
    currents = np.stack([flat(net.batch_current(x, w, inputs)) for x in levels_])
    explicit = flat(rules.update(net, w, (inputs, targets), rule))
    threshold = 3 * np.max(np.abs(rule.strength * explicit)) / tau_slow  # cycle_estimate's
    protocol = P.Sawtooth(TAU_FAST, tau_slow)
    period = TAU_FAST + tau_slow
    t = np.linspace(0.0, 2 * period, round(2 * period / step) + 1)
    nudge = np.asarray(jax.vmap(protocol)(jnp.asarray(t % period)))
    fraction = np.linspace(0.0, 1.0, levels)
    s = np.stack([np.interp(nudge, fraction, column) for column in currents.T], axis=1)
    system = [np.atleast_2d(a) for a in EColiCascade(TAU_KERNEL).state_space()]
    system[1], system[2] = system[1].T, system[2]
    *discrete, _ = scipy.signal.cont2discrete(tuple(system), step, method="foh")
    numerator, denominator = scipy.signal.ss2tf(*discrete)
    rest = scipy.signal.lfilter_zi(numerator[0], denominator)[:, None] * s[0]
    u, _ = scipy.signal.lfilter(numerator[0], denominator, s, axis=0, zi=rest)
    second = t >= period - step / 2
    g = np.where(np.abs(u[second]) > threshold, u[second], 0.0)
    return scipy.integrate.trapezoid(g, dx=step, axis=0) / rule.strength


@pytest.mark.parametrize("tau_slow", [100.0, 1000.0])
def test_default_quadrature_is_accurate_to_half_a_percent(hopfield, tau_slow):
    """Ideal regime (tau_fast/tau_K = 100, tau_slow/tau_fast = 100 and 1000), small Hopfield
    network: the default quadrature gives the cycle's update within 0.5% of an independent
    fine-grid integration of the same cycle (measured 0.05% and 0.13%), and so the explicit
    EP update's direction and, within 0.5%, its magnitude (the cycle itself is 0.19% and
    0.02% below it)."""
    net, w, inputs, targets = hopfield
    rule = rules.EP(0.05, "positive")
    tcl = flat(tcl_estimate(net, w, inputs, targets, rule, tau_slow=tau_slow))
    reference = fine_grid_cycle(net, w, inputs, targets, rule, tau_slow)
    assert np.linalg.norm(tcl - reference) / np.linalg.norm(reference) < 5e-3
    cosine_, magnitude = agreement(tcl, flat(rules.update(net, w, (inputs, targets), rule)))
    assert cosine_ >= 0.9999
    np.testing.assert_allclose(magnitude, 1.0, atol=5e-3)


def test_quadrature_error_estimate_bounds_the_error(resistor):
    """TCLRun.quadrature_error (the rule against its embedded rule on every other node) is
    above the actual error of the update against 48 substeps, for the fixed rule at 12
    substeps in a strong transient (tau_fast / tau_K = 2); with quadrature_rtol the substeps
    double until the estimate is below it, and the update moves towards 48 substeps."""
    net, w, inputs, targets = resistor
    rule = rules.EP(0.05, "positive")
    explicit = rules.update(net, w, (inputs, targets), rule)
    theta = 3 * float(jnp.max(jnp.abs(rule.strength * explicit))) / 100.0
    synapse = Synapse(EColiCascade(0.5), DeadZone(theta), 1e-6)
    common = dict(network=net, rule=rule, task=Schedule(inputs, targets, blend=0.0), w0=w)

    def step(substeps, **options):
        with pytest.warns(UserWarning, match="fastest ramp"):
            run = simulate(
                synapse, P.Sawtooth(1.0, 100.0), t1=101.0, substeps=substeps, **common, **options
            )
        return np.ravel(run.state[2] - w), float(run.quadrature_error[0])

    (coarse, estimate), (fine, _) = step(12), step(48)
    error = np.linalg.norm(coarse - fine) / np.linalg.norm(fine)
    assert 1e-3 < error <= estimate
    adaptive, reached = step(12, quadrature_rtol=error)
    assert reached <= error
    assert np.linalg.norm(adaptive - fine) / np.linalg.norm(fine) < error / 2


def test_tcl_cycle_matches_explicit_ep_with_an_unconverged_solver(hopfield):
    """Two sweeps per relaxation (far from equilibrium): with the current interpolated
    between the free and the nudged state alone (levels = 2) the cycle still gives the
    explicit update computed with the same solver, because every free state of a batch is
    relaxed alike. Relaxing the next free state from the previous one instead fails this
    (magnitude 0.75)."""
    _, w, inputs, targets = hopfield
    net = nw.HopfieldNetwork((3, 6, 4, 2), free_sweeps=2, nudged_sweeps=2, gain=1.0)
    rule = rules.EP(0.05, "positive")
    tcl = tcl_estimate(net, w, inputs, targets, rule, levels=2)
    cosine_, magnitude = agreement(tcl, rules.update(net, w, (inputs, targets), rule))
    assert cosine_ >= 0.9999
    np.testing.assert_allclose(magnitude, 1.0, atol=1e-2)


def test_reversed_sawtooth_reverses_and_no_nonlinearity_cancels(resistor):
    rule = rules.EP(0.05, "positive")
    forward = tcl_estimate(*resistor, rule)
    backward = tcl_estimate(*resistor, rule, reverse=True)
    assert cosine(forward, backward) <= -0.99
    np.testing.assert_allclose(jnp.linalg.norm(backward) / jnp.linalg.norm(forward), 1.0, atol=0.05)
    linear = tcl_estimate(*resistor, rule, nonlinearity=Identity())
    # integral u dt is propagated exactly: the zero-area kernel leaves only rounding
    assert float(jnp.linalg.norm(linear)) < 1e-9 * float(jnp.linalg.norm(forward))


@pytest.mark.parametrize("area", [0.0, 1e-3])
def test_leaky_memory_gives_the_synapse_level_offset(resistor, area):
    """Each synapse of the network sees a sawtooth from its free current s_F to its nudged
    current s_C; its cycle update is the synapse-level Delta(A = s_C - s_F, mean = s_F), whose
    imperfect adaptation (area I) adds the offset ~ I s_F T."""
    net, w, inputs, targets = resistor
    rule = rules.EP(0.05, "positive")
    free = jax.vmap(lambda i: net.equilibrium(w, i))(inputs)
    nudged = jax.vmap(lambda i, y, x: rule.perturb(net, w, i, y, x, rule.strength))(
        inputs, targets, free
    )
    mean = np.asarray(net.batch_current(free, w, inputs))
    contrast = np.asarray(net.batch_current(nudged, w, inputs)) - mean
    theta = 3 * float(np.max(np.abs(contrast))) / 100.0
    update = tcl_estimate(
        net, w, inputs, targets, rule, threshold=theta, area=area, tau_slow=100.0
    ) * float(rule.strength)
    kernel, g = EColiCascade(TAU_KERNEL, area=area).kernel(), DeadZone(theta)
    shape = P.Sawtooth(TAU_FAST, 100.0)
    sign = np.sign(contrast)  # g is odd: Delta(-A, mean) = -Delta(A, -mean)
    synapse_update = jax.jit(jax.vmap(lambda a, s: cycle_update(kernel, g, shape, a[None], s)[0]))
    predicted = sign * np.asarray(synapse_update(jnp.abs(contrast), mean * sign))
    np.testing.assert_allclose(
        np.linalg.norm(update - predicted) / np.linalg.norm(predicted), 0, atol=0.02
    )
    if area > 0:  # the offset dominates the contrast, as the synapse-level analysis says
        assert np.linalg.norm(predicted) > 3 * np.linalg.norm(contrast)


def test_quasistatic_and_relaxing_network_agree(resistor):
    net, w, inputs, targets = resistor
    fast = nw.ResistorNetwork(
        net.graph, [0, 1], [7, 8], ground_nodes=[2], relaxation_time=TAU_FAST / 100
    )
    rule = rules.EP(0.05, "positive")
    explicit = rules.update(net, w, (inputs, targets), rule)
    theta = 3 * float(jnp.max(jnp.abs(rule.strength * explicit))) / TAU_SLOW
    quasistatic = tcl_estimate(fast, w, inputs, targets, rule, threshold=theta)
    relaxing = tcl_estimate(
        fast, w, inputs, targets, rule, threshold=theta, mode="relaxation", rtol=1e-7, atol=1e-12
    )
    np.testing.assert_allclose(
        jnp.linalg.norm(relaxing - quasistatic) / jnp.linalg.norm(quasistatic), 0.0, atol=0.01
    )


def test_network_simulation_rejects_bad_configuration(resistor):
    net, w, inputs, targets = resistor
    good = dict(
        protocol=P.Sawtooth(1.0, 9.0),
        rule=rules.EP(0.1, "positive"),
        task=Schedule(inputs, targets),
        network=net,
        w0=w,
        t1=10.0,
    )
    bad = [
        (
            dict(rule=rules.EP(0.1, "centered")),
            "variant must be 'positive', 'negative' or 'random'",
        ),
        (dict(task=Schedule(jnp.ones((1, 3)), targets)), "inputs must have shape"),
        (dict(t1=15.0), "whole protocol cycles"),
        (dict(protocol=2.0 * P.Sawtooth(1.0, 9.0)), r"values in \[0, 1\]"),
        (dict(task=(inputs, targets)), r"needs task=: a tasks.Task .* got tuple"),
        (dict(levels=1), r"levels must be an integer >= 2"),
        (dict(substeps=1), r"substeps must be an integer >= 2"),
        (dict(saveat=[5.0]), "saveat applies to a synapse-level run"),
    ]
    for change, message in bad:
        with pytest.raises(ValueError, match=message):
            simulate(Synapse(EColiCascade(TAU_KERNEL), DeadZone(1.0)), **(good | change))


def test_a_task_is_presented_as_its_training_split_in_order(resistor):
    """task=Task is the Schedule of its training split, one sample per cycle, in order."""
    from synapse_dyn.tasks import Task

    net, w, inputs, targets = resistor
    rows = jnp.array([1.0, 0.5])[:, None]
    task = Task("pair", "regression", rows * inputs, rows * targets, -inputs, targets)
    common = dict(network=net, w0=w, rule=rules.EP(0.05, "positive"), t1=4 * 1001.0)
    synapse = Synapse(EColiCascade(TAU_KERNEL), DeadZone(3e-6))
    by_task = simulate(synapse, P.Sawtooth(TAU_FAST, TAU_SLOW), task=task, **common)
    by_schedule = simulate(
        synapse,
        P.Sawtooth(TAU_FAST, TAU_SLOW),
        task=Schedule(rows * inputs, rows * targets),
        **common,
    )
    np.testing.assert_array_equal(by_task.loss, by_schedule.loss)
    first = net.output(net.equilibrium(w, task.x_train[0]))  # cycle 0: the first row
    np.testing.assert_allclose(by_task.loss[0], rules.EP(0.05).cost(first, task.y_train[0]))


def test_checkpoint_resume_and_divergence(hopfield, tmp_path):
    from synapse_dyn.io import load_state
    from synapse_dyn.simulate import SimulationError

    net, w, inputs, targets = hopfield
    protocol = P.Sawtooth(1.0, 9.0)
    common = dict(
        network=net,
        rule=rules.EP(0.5, "random"),
        task=Schedule(jnp.tile(inputs, (4, 1)), jnp.tile(targets, (4, 1)), 2),
    )
    synapse = Synapse(EColiCascade(0.05), DeadZone(1e-4), 0.1)
    # the synapses sit in the cancellation regime on the first batch (a setting simulate warns
    # about, which still learns): the warning is part of what these runs show
    with pytest.warns(UserWarning, match="nudge outside the synapses' learning range"):
        whole = simulate(
            synapse, protocol, t1=300.0, w0=w, checkpoint=str(tmp_path / "run.npz"), **common
        )
        half = simulate(synapse, protocol, t1=150.0, w0=w, **common)
        state, t = load_state(tmp_path / "run.npz")
        assert t == 300.0
        resumed = simulate(synapse, protocol, t0=150.0, t1=300.0, state0=half.state, **common)
        for a, b in zip(
            jax.tree.leaves(resumed.state[2]), jax.tree.leaves(whole.state[2]), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-12)
        np.testing.assert_allclose(
            jax.tree.leaves(state[2])[0], jax.tree.leaves(whole.state[2])[0], rtol=1e-12
        )
        np.testing.assert_allclose(  # atol: rounding of the near-zero updates in the dead zone
            resumed.update_norm,
            whole.update_norm[15:],
            rtol=1e-9,
            atol=1e-12 * whole.update_norm.max(),
        )
        moved = jnp.sqrt(
            sum(
                jnp.sum((a - b) ** 2)
                for a, b in zip(jax.tree.leaves(whole.state[2]), jax.tree.leaves(w), strict=True)
            )
        )
        assert 0 < float(moved) <= np.sum(whole.update_norm) * (1 + 1e-12)
        # a run killed after its first chunk (25 cycles) resumes bit-identically, records included
        first_part = simulate(
            synapse, protocol, t1=250.0, w0=w, checkpoint=tmp_path / "k.npz", **common
        )
        resumed = simulate(
            synapse, protocol, t1=300.0, w0=w, checkpoint=tmp_path / "k.npz", resume=True, **common
        )
        for field in ("cycle_start", "loss", "energy", "parameter_norm", "update_norm"):
            np.testing.assert_array_equal(getattr(resumed, field), getattr(whole, field))
        np.testing.assert_array_equal(first_part.loss, whole.loss[:25])
        for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(whole.state), strict=True):
            np.testing.assert_array_equal(a, b)
        other = Synapse(EColiCascade(0.05), DeadZone(1e-4), 0.2)
        with pytest.raises(ValueError, match="written by a different configuration"):
            simulate(
                other,
                protocol,
                t1=300.0,
                w0=w,
                checkpoint=tmp_path / "k.npz",
                resume=True,
                **common,
            )
        exploding = Synapse(EColiCascade(0.05), DeadZone(1e-4), 1e99)
        with pytest.raises(
            SimulationError,
            match=r"diverged in cycles? [\d-]+ \(t = .*: (.*equilibrium is not finite|"
            r"(parameters w|memory z|network state x)\S* \(flat index \d+ of \d+\) became "
            r"non-finite).*; the last good state \(t = \d+\) is saved in .*bad.npz",
        ):
            simulate(
                exploding, protocol, t1=300.0, w0=w, checkpoint=str(tmp_path / "bad.npz"), **common
            )
        good, t_good = load_state(tmp_path / "bad.npz")
        assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(good))
        with pytest.raises(ValueError, match=r"learning_rate must be finite with magnitude below"):
            simulate(
                Synapse(EColiCascade(0.05), DeadZone(1e-4), 1e300),
                protocol,
                t1=300.0,
                w0=w,
                **common,
            )
        with pytest.raises(ValueError, match=r"checkpoint= saves quasi-static runs"):
            simulate(synapse, protocol, t1=300.0, w0=w, mode="relaxation", checkpoint="x", **common)


def test_warnings_for_fast_protocols_and_out_of_range_nudges(resistor):
    net, w, inputs, targets = resistor
    common = dict(
        network=net, w0=w, rule=rules.EP(0.05, "positive"), task=Schedule(inputs, targets)
    )
    with (
        pytest.warns(UserWarning, match=r"fastest ramp lasts 2 kernel times"),
        pytest.warns(UserWarning, match=r"in the cancellation regime"),  # the ramp smoothed
    ):
        simulate(
            Synapse(EColiCascade(0.5), DeadZone(1e-6)), P.Sawtooth(1.0, 99.0), t1=100.0, **common
        )
    with pytest.warns(UserWarning, match=r"100% of synapses in the no-update regime"):
        simulate(
            Synapse(EColiCascade(0.01), DeadZone(1e3)), P.Sawtooth(1.0, 99.0), t1=100.0, **common
        )
    with pytest.warns(UserWarning, match=r"in the cancellation regime"):
        simulate(
            Synapse(EColiCascade(0.01), DeadZone(1e-9)), P.Sawtooth(1.0, 99.0), t1=100.0, **common
        )


@pytest.mark.xdist_group("figure figS_tcl_timescales")
def test_timescale_map_degrades_outside_the_ideal_ordering(quick_figure):
    ds = quick_figure("figS_tcl_timescales").isel(tau_network_over_tau_fast=0)
    ideal = ds.sel(tau_fast_over_tau_kernel=100, tau_slow_over_tau_fast=100)
    assert float(ideal.cosine_explicit) >= 0.99 and abs(float(ideal.magnitude_explicit) - 1) < 0.05
    short_range = ds.sel(tau_fast_over_tau_kernel=100, tau_slow_over_tau_fast=3)
    assert float(short_range.magnitude_explicit) < 0.8 and float(short_range.cosine_explicit) < 0.99
    slow_kernel = ds.sel(tau_fast_over_tau_kernel=2, tau_slow_over_tau_fast=100)
    assert (
        float(slow_kernel.magnitude_explicit) < float(ideal.magnitude_explicit) - 0.05
    )  # smoothed ramp
    both = ds.sel(tau_fast_over_tau_kernel=2, tau_slow_over_tau_fast=3)
    assert float(both.magnitude_explicit) == 0.0 and np.isnan(
        float(both.cosine_explicit)
    )  # all in dead zones
    assert ds.cosine_exact.attrs["units"] == "1"
    # the degradation is physics, not quadrature: the quadrature's error estimate (which bounds
    # its error, test above) is a tenth of the shortfall or less where the agreement degrades
    assert float(ideal.quadrature_error) < 1e-3
    for point in (short_range, slow_kernel):
        shortfall = 1 - float(point.magnitude_explicit)
        assert float(point.quadrature_error) < 0.1 * shortfall
