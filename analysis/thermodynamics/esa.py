"""Energy-speed-accuracy of the ESA adaptation ladder (Lan, Sartori, Neumann, Sourjik, Tu,
Nature Phys. 8, 422 (2012)) and the closed form of its steady state and entropy production by
the birth-death mapping of Wang, Lan, Tang (arXiv 1505.07526).

Birth-death mapping (activity switching fast against methylation, rate_factor -> infinity):
at methylation m the activity is in equilibrium, a_m = P(top | m) = 1 / (1 + e^{Delta E(s, m)}),
and m performs a birth-death walk with

    up rate   u_m = a_m e gamma + (1 - a_m)        (top row: e gamma; bottom row: 1)
    down rate d_m = a_m + (1 - a_m) e gamma,

so pi(m) = prod_{k<m} u_k / d_{k+1} / Z, p(top, m) = pi(m) a_m, p(bottom, m) = pi(m) (1 - a_m).
The net methylation flux between m and m+1 vanishes, but each row carries the cycle current
J_m = pi(m+1) a_{m+1} - pi(m) a_m e gamma (demethylation in the active row, returned in the
inactive one), and since a_m (1 - a_{m+1}) / (a_{m+1} (1 - a_m)) = e^{-2} for every m each turn
dissipates 2 ln(1/gamma):

    sigma = 2 ln(1/gamma) sum_m J_m      (k_B per Markov time unit).

Vertical (activity) transitions are balanced in this state, so sigma is also the Schnakenberg
entropy production of the full ladder evaluated at this occupation, for any rate factor; the
ladder's own steady state approaches it as 1/rate_factor.
"""

import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import require_in_range, require_positive
from synapse_dyn.io import describe
from synapse_dyn.synapses.markov import (
    N_METHYLATION,
    energy_difference,
    esa_rate_matrix,
    stationary_distribution,
)

from .dissipation import entropy_production_rate


def birth_death_ladder(
    s: Float[ArrayLike, ""], gamma: Float[ArrayLike, ""], n_methylation: int = N_METHYLATION
) -> dict[str, Float[Array, "..."]]:
    """The closed form of the module docstring for ligand s (uM), gamma and methylation levels
    0..n_methylation - 1: ``activity`` a_m, ``methylation`` pi(m), ``occupation`` (top row
    then bottom row, the ladder's state order), ``cycle_current`` J_m and
    ``entropy_production`` sigma (per Markov time unit)."""
    m = jnp.arange(n_methylation, dtype=float)
    activity = 1.0 / (1.0 + jnp.exp(energy_difference(s, m)))
    up = activity * jnp.e * gamma + (1.0 - activity)
    down = activity + (1.0 - activity) * jnp.e * gamma
    log_weight = jnp.concatenate([jnp.zeros(1), jnp.cumsum(jnp.log(up[:-1] / down[1:]))])
    methylation = jnp.exp(log_weight - jnp.max(log_weight))
    methylation = methylation / methylation.sum()
    current = methylation[1:] * activity[1:] - methylation[:-1] * activity[:-1] * jnp.e * gamma
    return {
        "activity": activity,
        "methylation": methylation,
        "occupation": jnp.concatenate([methylation * activity, methylation * (1 - activity)]),
        "cycle_current": current,
        "entropy_production": 2.0 * jnp.log(1.0 / gamma) * jnp.sum(current),
    }


def adaptation_tradeoff(
    gammas: Float[ArrayLike, " g"],
    step: float = 200.0,
    rate_factor: float = 25.0,
) -> xr.Dataset:
    """Adaptation error, speed and dissipation of the ESA ladder against gamma, exactly (the
    ladder's steady states and spectrum) and in the birth-death closed form:

    - error epsilon = |a_ss(step) - a_ss(0)| / a_ss(0) (relative, Lan et al. 2012);
    - speed omega = the spectral gap of the ladder at ``step`` (slowest relaxation rate);
    - dissipation sigma at ``step`` (k_B per Markov time unit).

    Lan et al.'s ESA relation: at fixed speed the dissipation grows like ln(1/epsilon), i.e.
    sigma / omega against ln(1/epsilon) is about linear (``cost_per_speed``)."""
    gammas = np.atleast_1d(np.asarray(gammas, float))
    require_in_range("gammas", gammas, 0.0, 1.0, closed=(False, True))
    require_positive("step", step)
    require_positive("rate_factor", rate_factor)
    rows = []
    for gamma in gammas:
        matrices = [np.asarray(esa_rate_matrix(s, gamma, rate_factor)) for s in (0.0, step)]
        p0, p1 = (np.asarray(stationary_distribution(w)) for w in matrices)
        a0, a1 = p0[:N_METHYLATION].sum(), p1[:N_METHYLATION].sum()
        rates = np.sort(-np.linalg.eigvals(matrices[1]).real)
        closed = [birth_death_ladder(s, gamma) for s in (0.0, step)]
        b0, b1 = (float(np.sum(c["occupation"][:N_METHYLATION])) for c in closed)
        rows.append(
            (
                abs(a1 - a0) / a0,
                abs(b1 - b0) / b0,
                rates[1],
                float(entropy_production_rate(matrices[1])),
                float(closed[1]["entropy_production"]),
            )
        )
    error, error_closed, speed, sigma, sigma_closed = np.asarray(rows).T
    variables = {
        "error": (error, "1", "adaptation error |a(step) - a(0)| / a(0), exact ladder"),
        "error_closed_form": (error_closed, "1", "adaptation error, birth-death closed form"),
        "speed": (speed, "1 / Markov time", "adaptation speed: spectral gap at the step"),
        "dissipation": (sigma, "kT / Markov time", "entropy production rate, exact ladder"),
        "dissipation_closed_form": (
            sigma_closed,
            "kT / Markov time",
            "entropy production rate, birth-death closed form",
        ),
        "cost_per_speed": (sigma / speed, "kT", "dissipation per unit speed sigma / omega"),
    }
    ds = xr.Dataset(
        {k: ("gamma", v, {"units": u, "long_name": n}) for k, (v, u, n) in variables.items()},
        coords={
            "gamma": ("gamma", gammas, {"units": "1", "long_name": "detailed-balance breaking"})
        },
    )
    return describe(
        ds,
        "Energy-speed-accuracy of the ESA ladder (Lan et al. 2012; Wang, Lan, Tang 2015)",
        {"step": step, "rate_factor": rate_factor},
    )
