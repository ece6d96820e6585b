import jax.numpy as jnp
import numpy as np
import pytest

from synapse_dyn.synapses import (
    EColiCascade,
    EColiKernel,
    IntegralFeedback,
    SampledKernel,
    SineKernel,
    normalise,
    sampled_moments,
)


def quadrature(kernel, t_max, n=400_001):
    t = np.linspace(0.0, t_max, n)
    values = np.asarray(kernel(t))
    return np.trapezoid(values, t) + float(kernel.feedthrough), np.trapezoid(t * values, t)


@pytest.mark.parametrize("area", [0.0, 0.05, -0.2])
def test_ecoli_kernel_has_prescribed_area_and_unit_negative_first_moment(area):
    kernel = EColiKernel(area=area, rate=20.0)
    numeric_area, numeric_moment = quadrature(kernel, 3.0)
    np.testing.assert_allclose(numeric_area, area, atol=1e-6)
    np.testing.assert_allclose(numeric_moment, -1.0, rtol=1e-6)


def test_ecoli_kernel_shape_for_perfect_adaptation():
    # I = 0: K = B^3 e^{-Bt}(t - B t^2 / 2): zero at t = 2/B, peak at t = (2 - sqrt 2)/B
    kernel = EColiKernel(rate=20.0)
    np.testing.assert_allclose(kernel(0.1), 0.0, atol=1e-12)
    t = np.linspace(0, 0.5, 500_001)
    np.testing.assert_allclose(t[np.argmax(kernel(t))], (2 - np.sqrt(2)) / 20, atol=2e-6)


@pytest.mark.parametrize("area", [0.0, 0.05])
def test_cascade_impulse_response_is_the_analytic_kernel(area):
    cascade = EColiCascade(tau_kernel=0.05, area=area)
    t = jnp.linspace(0.0, 1.0, 201)
    np.testing.assert_allclose(cascade.kernel()(t), EColiKernel(area, 20.0)(t), atol=1e-9)
    np.testing.assert_allclose(cascade.kernel().area, area, atol=1e-12)
    np.testing.assert_allclose(cascade.kernel().first_moment, -1.0, rtol=1e-12)


def test_integral_feedback_kernel_area_and_first_moment():
    perfect = IntegralFeedback(tau=0.3).kernel()
    np.testing.assert_allclose([perfect.area, perfect.first_moment], [0.0, -0.3], atol=1e-12)
    leaky = IntegralFeedback(tau=0.3, leak_time=30.0).kernel()
    ratio = 0.3 / 30.0
    np.testing.assert_allclose(leaky.area, ratio / (1 + ratio), rtol=1e-12)
    numeric_area, _ = quadrature(leaky, 20.0, 2_000_001)
    np.testing.assert_allclose(numeric_area, leaky.area, atol=1e-6)


def test_integral_feedback_adapts_perfectly_to_a_step():
    memory = IntegralFeedback(tau=0.5, setpoint=0.2)
    z = memory.steady_state(3.0)
    np.testing.assert_allclose(memory.vector_field(z, 3.0), 0.0, atol=1e-14)
    np.testing.assert_allclose(memory.output(z, 3.0), 0.0, atol=1e-14)  # error signal u - u0


def test_sine_kernel_moments_and_normalisation():
    sine = SineKernel()
    area, moment = quadrature(sine, 0.1, 100_001)
    np.testing.assert_allclose(area, 0.0, atol=1e-9)
    np.testing.assert_allclose(moment, sine.first_moment, rtol=1e-6)
    values = np.asarray(sine(np.arange(10) * 0.01))
    scaled = normalise(values, 0.01)
    np.testing.assert_allclose(sampled_moments(scaled, 0.01)[1], -1.0, rtol=1e-12)
    sampled = SampledKernel(0.01, scaled)
    np.testing.assert_allclose(sampled.first_moment, -1.0, rtol=1e-12)


def test_bad_kernels_are_rejected():
    with pytest.raises(ValueError, match="finite"):
        SampledKernel(0.1, jnp.array([0.0, jnp.nan, 1.0]))
    with pytest.raises(ValueError, match="dt must be > 0"):
        SampledKernel(0.0, jnp.ones(3))
    with pytest.raises(ValueError, match="first moment"):
        normalise(np.zeros(5), 0.1)
    with pytest.raises(ValueError, match="rate B must be > 0"):
        EColiKernel(rate=-1.0)
