"""Response curves, fits and the synapse-level figures at their quick sizes."""

import numpy as np
import pytest

from synapse_dyn import protocols as P
from synapse_dyn.analysis import fit_three_segments, learning_range, response_curves
from synapse_dyn.analysis.figures import fig2, fig4c, fig5c, figS_timescale, load, names
from synapse_dyn.synapses import DeadZone, EColiKernel, cycle_update


def test_three_segment_fit_recovers_known_breakpoints():
    rng = np.random.default_rng(1)
    x = np.linspace(0, 1, 400, endpoint=False)
    b1, b2 = rng.uniform(0.05, 0.4, 50), None
    b2 = b1 + rng.uniform(0.05, 0.4, 50)
    y = np.where(
        x < b1[:, None],
        0.2,
        np.where(
            x < b2[:, None],
            0.2 + 2 * (x - b1[:, None]),
            0.2 + 2 * (b2 - b1)[:, None] + 0.9 * (x - b2[:, None]),
        ),
    )
    fit = fit_three_segments(x, y + 1e-4 * rng.standard_normal(y.shape))
    np.testing.assert_allclose(fit.breakpoints[:, 0], b1, atol=2e-3)
    np.testing.assert_allclose(fit.breakpoints[:, 1], b2, atol=2e-3)
    np.testing.assert_allclose(fit.slopes, np.broadcast_to([0.0, 2.0, 0.9], (50, 3)), atol=0.02)
    third = 0.2 + 2 * (b2 - b1) - 0.9 * b2
    np.testing.assert_allclose(fit.third_intercept, third, atol=2e-3)


def test_three_segment_fit_is_the_least_squares_optimum_on_a_curved_response():
    """Fig. 4C's hardest kind of curve (tau_f / tau_K = 10: the update approaches the
    contrastive line slowly, so the residual has several local minima): the fit's residual is
    no larger than the best of a brute-force grid over both breakpoints (the second method)."""
    amplitudes = np.linspace(0, 75, 400, endpoint=False)
    shape = P.Sawtooth(0.5, 40.6, free=-0.5, clamped=0.5)
    dw = cycle_update(EColiKernel(area=0.0, rate=20.0), DeadZone(100 / 40.6), shape, amplitudes)
    x, y = amplitudes / 100, np.asarray(dw) / 100
    fit = fit_three_segments(x, y[None])
    b1, b2 = np.meshgrid(np.linspace(0.005, 0.03, 101), np.linspace(0.01, 0.06, 201), indexing="ij")
    keep = b1 < b2

    def residual(first, second):
        design = np.stack(
            [np.ones_like(x), x, np.maximum(x - first, 0), np.maximum(x - second, 0)], axis=-1
        )
        return np.sum((design @ np.linalg.lstsq(design, y, rcond=None)[0] - y) ** 2)

    residuals = [residual(first, second) for first, second in zip(b1[keep], b2[keep], strict=True)]
    assert float(fit.residual[0]) <= min(residuals) * (1 + 1e-9)


def test_fit_rejects_bad_abscissae():
    with pytest.raises(ValueError, match="strictly increasing"):
        fit_three_segments(np.zeros(10), np.zeros(10))


def test_response_regimes_match_the_ideal_boundaries():
    # I = 0, long fast ramp: no update below A_min = theta tau_f, cancellation above
    # A_max = theta tau_s
    theta = 100 / 9
    ds = response_curves(
        EColiKernel(), DeadZone(theta), P.Sawtooth(1.0, 9.0, -0.5, 0.5), np.arange(0.0, 125.0, 0.5)
    )
    amplitude, regime = ds.amplitude.values, ds.regime.values
    assert np.all(regime[amplitude < theta * 1.0] == 0)
    assert np.all(regime[(amplitude > 1.01 * theta) & (amplitude < 100)] == 1)
    assert np.all(regime[amplitude > 100.01] == 2)
    assert ds.regime.attrs["flag_meanings"] == "no_update contrastive cancellation"
    fitted = learning_range(ds.sel(amplitude=slice(None, 75)), 100.0)
    np.testing.assert_allclose(float(fitted.contrastive_slope), 1.0, atol=0.05)
    np.testing.assert_allclose(float(fitted.learning_range), 9.0, rtol=0.1)


@pytest.fixture
def fig4c_quick(quick_figure):
    return quick_figure("fig4c")


@pytest.mark.xdist_group("figure fig4c")
def test_fig4c_points_respect_the_ideal_bound(fig4c_quick):
    ds = fig4c_quick
    assert set(ds.variables) >= {
        "tau_fast",
        "tau_slow",
        "amplitude_min",
        "amplitude_max",
        "learning_range",
    }
    x = np.log(ds.tau_slow / ds.tau_fast).values
    y = np.log(ds.learning_range).values
    # on or below ln(A_max/A_min) = ln(tau_s/tau_f) (and at 0 when tau_s <= tau_f: no range)
    assert np.all(y <= np.maximum(x, 0) + 1e-3)
    ratio = (ds.tau_fast / ds.attrs["kernel_timescale"]).values
    inside = x > np.log(2)  # A_min well inside the sweep (A_min < 50 of 75)
    # the issue asks >= 0.9 from tau_f / tau_K = 10; the paper's recipe gives 0.885 at 10 on
    # the full figure (docs/conventions.md), >= 0.9 from 12
    assert np.all(y[inside & (ratio >= 10)] >= 0.87 * x[inside & (ratio >= 10)])
    assert np.all(y[inside & (ratio >= 12)] >= 0.9 * x[inside & (ratio >= 12)])
    short = inside & (ratio <= 8)  # the kernel smooths short fast ramps: those fall below
    assert short.any() and np.all(y[short] < 0.85 * x[short])
    assert "config" in ds.attrs and ds.amplitude_min.attrs["model_units"] == "current_unit"


@pytest.mark.xdist_group("figure fig4c")
def test_fig4c_learning_onset_reaches_the_bound(fig4c_quick):
    """The learning onset (first A with dw/A > fig4c.ONSET_FRACTION) gives a range within 1%
    of ln(tau_s/tau_f) from tau_f/tau_K = 10, where the fitted range falls short."""
    ds = fig4c_quick
    x = np.log(ds.tau_slow / ds.tau_fast).values
    onset = np.log(ds.onset_range).values
    ratio = (ds.tau_fast / ds.attrs["kernel_timescale"]).values
    chosen = (x > np.log(2)) & (ratio >= 10)
    assert chosen.sum() >= 20
    assert np.all(onset[chosen] >= 0.99 * x[chosen])
    fitted = np.log(ds.learning_range).values
    assert np.min(fitted[chosen] / x[chosen]) < 0.95
    # the onset is where dw/A crosses the fraction, between the neighbouring amplitudes
    k = int(np.flatnonzero(chosen)[0])
    curve = ds.isel(protocol=k)
    slope = (curve.dw / curve.amplitude).values
    below = curve.amplitude.values < float(curve.amplitude_onset)
    assert np.all(slope[below & (curve.amplitude.values > 0)] <= fig4c.ONSET_FRACTION)
    assert slope[~below][0] > fig4c.ONSET_FRACTION
    assert ds.amplitude_onset.attrs["model_units"] == "current_unit"


def test_timescale_figure_reference_values():
    tau_k = 0.05
    ds = figS_timescale.compute(
        tau_fast=np.array([2, 4, 10, 20, 40, 80, 160]) * tau_k, progress=False
    )
    np.testing.assert_allclose(ds.dw_over_amplitude.values[0], 0.0, atol=1e-9)
    np.testing.assert_allclose(
        ds.dw_over_amplitude.values[1:], [0.65, 0.86, 0.92, 0.95, 0.97, 0.98], atol=0.01
    )


def test_fig5c_offset_grows_with_the_fast_ramp_as_area_times_mean():
    tau_fast = np.array([10, 20, 40, 80]) * 0.05
    ds = fig5c.compute(tau_fast=tau_fast, tau_slow=20.0, progress=False)
    offset = ds.offset.values
    assert np.all(np.diff(offset) > 0) and np.all(offset > 0)
    slope = np.polyfit(tau_fast, offset, 1)[0]
    np.testing.assert_allclose(slope, fig5c.AREA * fig5c.MEAN, rtol=0.2)  # offset ~ I mean tau_f
    np.testing.assert_allclose(ds.contrastive_slope.values, 1.0, atol=0.02)


@pytest.mark.xdist_group("figure fig2")
def test_fig2_mechanism_signs(quick_figure):
    ds = quick_figure("fig2")
    dw = ds.dw.to_series()
    np.testing.assert_allclose(dw["sawtooth"], 0.96 * fig2.AMPLITUDE, rtol=0.02)
    np.testing.assert_allclose(dw["reversed"], -dw["sawtooth"], rtol=5e-3)
    assert abs(dw["no_nonlinearity"]) < 1e-6 * fig2.AMPLITUDE


def test_every_figure_is_registered():
    assert {"fig2", "fig4b", "fig4c", "fig5c", "figS_timescale"} <= set(names())
    with pytest.raises(ValueError, match="unknown figure 'fig99'"):
        load("fig99")


def test_response_curves_compile_once_per_configuration():
    from synapse_dyn.analysis.response import _curves

    shape = P.Sawtooth(np.array([1.0, 2.0]), np.array([9.0, 8.0]), -0.5, 0.5)
    amplitudes = np.linspace(0, 50, 16)
    response_curves(
        EColiKernel(), DeadZone(np.array([5.0, 6.0])), shape, amplitudes, n_grid=2**10, chunk=2
    )
    before = _curves._cache_size()
    response_curves(
        EColiKernel(),
        DeadZone(np.array([7.0, 2.0])),
        shape,
        amplitudes + 1.0,
        n_grid=2**10,
        chunk=2,
    )
    assert _curves._cache_size() == before  # new thresholds and amplitudes reuse the compiled sweep


def test_fig6b_exact_kernel_area_equals_fine_quadrature():
    """The exact area of the recipe's kernel (linear solves on the rate matrix) equals the
    area from the step response propagated exactly on a 40x finer grid (m1 by parts,
    trapezoid), while the authors' rectangle rule on dt = 1e-4 overshoots: the kernel peaks
    at t = 0. The figure's dataset holds both conventions."""
    import jax.numpy as jnp

    from synapse_dyn.analysis.figures import fig6b
    from synapse_dyn.synapses.markov import MarkovLadder

    ladders = fig6b.random_ladders(1, seed=6)
    for k in range(0, 50, 10):
        memory = MarkovLadder(ladders["gamma"][k], ladders["rate_factor"][k])
        step = ladders["step"][k]
        t, u = memory.step_response(step, n_samples=400_001)
        change = u - u[0]
        fine = -change[-1] / (t[-1] * change[-1] - jnp.trapezoid(change, t))
        exact = float(fig6b.exact_kernel_area(memory, step))
        np.testing.assert_allclose(exact, float(fine), rtol=1e-6)
        kernel = memory.kernel(step)
        rectangle = float(kernel.dt * jnp.sum(kernel.values))
        assert abs(rectangle - exact) > 1e-2 * abs(exact)
    ds = fig6b.compute(n_batches=1, chunk=50, progress=False)
    assert {"kernel_area_rectangle", "threshold_rectangle", "offset_rectangle"} <= set(ds)
    expected = np.abs(-50 / 15 + ds.kernel_area * (10 + 25))
    np.testing.assert_allclose(ds.threshold, expected, rtol=1e-12)
