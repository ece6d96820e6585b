import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synapse_dyn import protocols as P


def test_sawtooth_values_corners_and_period():
    s = P.Sawtooth(1.0, 9.0, free=-0.5, clamped=0.5)
    t = jnp.array([0.0, 0.5, 1.0, 5.5, 10.0, 10.5])
    np.testing.assert_allclose(P.sample(s, t), [-0.5, 0.0, 0.5, 0.0, -0.5, 0.0], atol=1e-15)
    assert s.period == 10.0
    np.testing.assert_array_equal(s.breakpoints(0.0, 20.0), [0.0, 1.0, 10.0, 11.0, 20.0])


def test_reversed_sawtooth_is_the_time_mirror():
    s = P.Sawtooth(1.0, 9.0)
    r = P.Sawtooth(1.0, 9.0, reverse=True)
    t = jnp.linspace(0.0, 20.0, 101)
    np.testing.assert_allclose(P.sample(r, t), P.sample(s, -t), atol=1e-14)
    np.testing.assert_array_equal(r.corners(), [0.0, 9.0])


def test_triangle_is_symmetric_and_square_has_jumps():
    tri = P.triangle(4.0, low=-1.0, high=1.0)
    t = jnp.linspace(0.0, 4.0, 41)
    np.testing.assert_allclose(P.sample(tri, t), P.sample(tri, 4.0 - t), atol=1e-14)
    sq = P.Square(2.0, duty=0.25, low=-1.0, high=3.0)
    np.testing.assert_allclose(P.sample(sq, jnp.array([0.1, 0.6, 2.1])), [3.0, -1.0, 3.0])
    np.testing.assert_array_equal(sq.jump_times(0.0, 2.0), [0.0, 0.5, 2.0])


def test_piecewise_linear_and_composition():
    pl = P.PiecewiseLinear(jnp.array([0.0, 1.0, 3.0]), jnp.array([0.0, 2.0, 0.0]))
    np.testing.assert_allclose(P.sample(pl, jnp.array([0.5, 2.0, 3.5])), [1.0, 1.0, 1.0])
    composed = 2.0 * pl + 1.0
    np.testing.assert_allclose(composed(0.5), 3.0)
    np.testing.assert_array_equal(composed.corners(), pl.corners())
    seq = P.Sequence([P.Constant(1.0), pl], [2.0, 3.0])
    np.testing.assert_allclose(P.sample(seq, jnp.array([1.0, 2.5, 3.0])), [1.0, 1.0, 2.0])
    np.testing.assert_array_equal(seq.corners(), [2.0, 3.0, 5.0])
    np.testing.assert_array_equal(seq.jumps(), [2.0])  # 1 -> 0 at the junction
    loop = P.Repeat(seq, 5.0)
    np.testing.assert_allclose(loop(6.0), seq(1.0))
    assert loop.period == 5.0


def test_protocols_are_traceable_and_vmappable_over_parameters():
    saw = P.Sawtooth(jnp.array([1.0, 2.0]), jnp.array([9.0, 8.0]))
    values = eqx.filter_vmap(lambda p: eqx.filter_jit(p)(1.0))(saw)
    np.testing.assert_allclose(values, [1.0, 0.5])
    slope = jax.grad(lambda t: P.Sawtooth(1.0, 9.0)(t))(0.5)
    np.testing.assert_allclose(slope, 1.0)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: P.Sawtooth(0.0, 9.0), "tau_fast must be > 0"),
        (lambda: P.Sawtooth(1.0, -2.0), "tau_slow must be > 0"),
        (lambda: P.Square(1.0, duty=1.5), "duty must lie in"),
        (
            lambda: P.PiecewiseLinear(jnp.array([0.0, 2.0, 1.0]), jnp.zeros(3)),
            "strictly increasing",
        ),
        (lambda: P.Sequence([P.Constant(0.0)], [1.0, 2.0]), "one duration per protocol"),
        (lambda: P.Constant(float("nan")), "finite"),
    ],
)
def test_bad_protocol_parameters_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()
