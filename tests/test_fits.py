"""The three-segment fit's coefficients come from a stable least-squares solve."""

import numpy as np

from synapse_dyn.analysis import fit_three_segments


def test_fit_far_from_the_origin_recovers_the_segments():
    """Abscissae near 1e4: normal equations square a condition number of ~1e9 (a ridge there
    left a residual of 0.036 on exact data); the design-matrix solve fits to ~1e-6."""
    offset = 1e4
    x = offset + np.linspace(0.0, 10.0, 200)
    local = x - offset
    y = np.where(local < 3, 0.0, np.where(local < 7, local - 3, 4 + 0.1 * (local - 7)))
    fit = fit_three_segments(x, y)
    np.testing.assert_allclose(fit.breakpoints - offset, [3.0, 7.0], atol=2e-3)
    np.testing.assert_allclose(fit.slopes, [0.0, 1.0, 0.1], atol=2e-3)
    assert float(fit.residual) < 1e-4
