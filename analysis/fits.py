"""Continuous three-segment piecewise-linear least-squares fits (the pwlf fits of the paper's
Figs. 4C and 5C), vectorised over many curves.

Model: f(x) = a + s1 x + c2 (x - b1)_+ + c3 (x - b2)_+ with breakpoints b1 < b2; the slopes
are s1, s1 + c2 and s1 + c2 + c3. For fixed breakpoints the fit is linear least squares in
(a, s1, c2, c3), solved at the chosen breakpoints from the n x 4 design matrix by SVD least
squares (``jnp.linalg.lstsq``), which does not square the condition number. The breakpoints
are found by a search over data points, then refined continuously by successive local grids
around the best few pairs.

Hand-written part, kept for a measured reason: the search ranks thousands of breakpoint pairs
per curve by the residual of their 4x4 normal equations, assembled in O(1) from tail sums of
1, x, x^2, y, x y beyond each breakpoint (a tiny ridge keeps a hinge with no point beyond it
solvable; it only ranks pairs, the reported fit is the stable solve). For 40 curves of 500
points (2-core machine, load average 33, both in one run): solving each pair of the coarse
grid alone from its design matrix took 16x the whole fit, and ``lstsq`` on the 4x4 normal
equations instead of the ridge solve 3.7x, with the same breakpoints to 1e-15.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from synapse_dyn._checks import require_finite

STARTS = 8  # local refinements from the best coarse breakpoint pairs


class ThreeSegmentFit(eqx.Module):
    """Result of ``fit_three_segments`` (leading axes: one per curve)."""

    breakpoints: Float[Array, "... 2"]
    slopes: Float[Array, "... 3"]
    intercept: Float[Array, "..."]  # of the first segment's line, f(0)
    third_intercept: Float[Array, "..."]  # where the third segment's line meets x = 0
    residual: Float[Array, "..."]  # sum of squared residuals


def _tails(x, values):
    """tail[k] = sum over i >= k of values[i] (length n + 1)."""
    return jnp.concatenate([jnp.cumsum(values[::-1])[::-1], jnp.zeros(1)])


def _solve(x, tails, total_yy, b1, b2):
    """Coefficients and residual of the normal equations for breakpoints (b1, b2) (search)."""
    n, sx, sxx, sy, sxy = tails  # each of length len(x) + 1
    k1 = jnp.searchsorted(x, b1, side="right")
    k2 = jnp.searchsorted(x, b2, side="right")

    def hinge(k, b):  # sums of h = (x - b)_+ times 1, x, h, y
        return (
            sx[k] - b * n[k],
            sxx[k] - b * sx[k],
            sxx[k] - 2 * b * sx[k] + b**2 * n[k],
            sxy[k] - b * sy[k],
        )

    h1, xh1, hh1, yh1 = hinge(k1, b1)
    h2, xh2, hh2, yh2 = hinge(k2, b2)
    h12 = sxx[k2] - (b1 + b2) * sx[k2] + b1 * b2 * n[k2]  # b1 < b2: (x-b1)(x-b2) over x > b2
    gram = jnp.array(
        [
            [n[0], sx[0], h1, h2],
            [sx[0], sxx[0], xh1, xh2],
            [h1, xh1, hh1, h12],
            [h2, xh2, h12, hh2],
        ]
    )
    rhs = jnp.array([sy[0], sxy[0], yh1, yh2])
    ridge = 1e-12 * jnp.trace(gram) * jnp.eye(4)
    coeffs = jnp.linalg.solve(gram + ridge, rhs)
    return coeffs, total_yy - rhs @ coeffs


def _design(x, b1, b2):
    """The n x 4 design matrix [1, x, (x - b1)_+, (x - b2)_+]."""
    return jnp.stack(
        [jnp.ones_like(x), x, jnp.maximum(x - b1, 0.0), jnp.maximum(x - b2, 0.0)], axis=-1
    )


def _fit_one(x, y, coarse: int, refinements: int):
    tails = [_tails(x, v) for v in (jnp.ones_like(x), x, x**2, y, x * y)]
    total_yy = jnp.sum(y**2)
    residual = jax.vmap(lambda b1, b2: _solve(x, tails, total_yy, b1, b2)[1])

    # coarse search over pairs of data points (b1 < b2), then shrinking local grids around
    # the best few pairs (the residual is not convex in the breakpoints)
    candidates = x[1:-1:coarse]
    b1, b2 = jnp.meshgrid(candidates, candidates, indexing="ij")
    sse = jnp.where(b1 < b2, residual(b1.ravel(), b2.ravel()).reshape(b1.shape), jnp.inf)
    _, flat = jax.lax.top_k(-sse.ravel(), min(STARTS, sse.size))
    i, j = jnp.unravel_index(flat, sse.shape)
    offsets = jnp.linspace(-1.0, 1.0, 9)

    def narrow(_, carry):
        """One local grid around the best pair so far, then half the spacing."""
        best, step, _ = carry
        trial1, trial2 = jnp.meshgrid(
            best[0] + step * offsets, best[1] + step * offsets, indexing="ij"
        )
        trial1 = jnp.clip(trial1, x[0], x[-1])
        trial2 = jnp.clip(trial2, x[0], x[-1])
        sse = jnp.where(
            trial1 < trial2,
            residual(trial1.ravel(), trial2.ravel()).reshape(trial1.shape),
            jnp.inf,
        )
        k, m = jnp.unravel_index(jnp.argmin(sse), sse.shape)
        return jnp.stack([trial1[k, m], trial2[k, m]]), step / 2, jnp.min(sse)

    def refine(start):
        # a loop in the program, not unrolled in Python: the first fit of 40 curves of 500
        # points (compilation included) took 3.5-3.7 s instead of 8.0-8.7 s, bit-identical
        step = coarse * (x[-1] - x[0]) / (x.shape[0] - 1)
        best, _, error = jax.lax.fori_loop(0, refinements, narrow, (start, step, jnp.inf))
        return best, error

    ends, errors = jax.vmap(refine)(jnp.stack([candidates[i], candidates[j]], axis=1))
    best = ends[jnp.argmin(errors)]
    design = _design(x, best[0], best[1])
    coeffs = jnp.linalg.lstsq(design, y)[0]  # QR/SVD of the design matrix: stable
    sse = jnp.sum((y - design @ coeffs) ** 2)
    a, s1, c2, c3 = coeffs
    slopes = jnp.stack([s1, s1 + c2, s1 + c2 + c3])
    return ThreeSegmentFit(best, slopes, a, a - c2 * best[0] - c3 * best[1], sse)


@eqx.filter_jit
def _fit_many(x, y, coarse, refinements):
    return jax.vmap(lambda row: _fit_one(x, row, coarse, refinements))(y)


def fit_three_segments(
    x: Float[Array, " n"], y: Float[Array, "... n"], coarse: int = 4, refinements: int = 10
) -> ThreeSegmentFit:
    """Least-squares continuous three-segment piecewise-linear fit of every curve y[..., :]
    over the common abscissae x (strictly increasing, at least 8 points)."""
    x = jnp.asarray(x, dtype=float)
    y = jnp.asarray(y, dtype=float)
    require_finite("x", x)
    require_finite("y", y)
    if x.ndim != 1 or x.shape[0] < 8 or bool(jnp.any(jnp.diff(x) <= 0)):
        raise ValueError(
            f"x must be strictly increasing with at least 8 points, got shape {x.shape}."
        )
    if y.shape[-1] != x.shape[0]:
        raise ValueError(f"y's last axis must match x: got {y.shape} and {x.shape}.")
    batch = y.shape[:-1]
    fit = _fit_many(x, y.reshape(-1, x.shape[0]), coarse, refinements)
    return jax.tree.map(lambda a: a.reshape(batch + a.shape[1:]), fit)
