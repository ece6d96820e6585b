"""Thermodynamic uncertainty relations for currents of periodically driven Markov jump
processes, with exact full counting statistics.

Driving: piecewise constant over one period, rate matrix W_k for a time tau_k (k = 1..K); a
continuous protocol is sampled at the midpoints of ``n_steps`` equal pieces per smooth segment
(``piecewise_drive``; error O(n_steps^-2), exact for piecewise-constant protocols).

Current: J counts d_ij per jump j -> i (d antisymmetric), plus optional "weight" channels,
self-transitions in every state j that move J by +delta at rate r+_j and by -delta at r-_j
(``weight_channels``: how a synapse's output moves its weight, below).

Full counting statistics: tilting each jump by e^{lambda d} gives the one-period propagator
P(lambda) = prod_k exp(tau_k W_k(lambda)); its leading eigenvalue mu(lambda) generates the
scaled cumulants per period, mean = mu'(0) and variance = mu''(0) - mu'(0)^2, taken by
perturbation theory (mu' = 1^T P' pi, mu'' = 1^T P'' pi + 2 1^T P' D (P' - mu') pi, pi the
periodic state, D the group inverse of 1 - P(0)), with P' and P'' exact: exp(tau W(lambda))
is computed in the ring of power series truncated at lambda^2 (``_ring_multiply``), whose
coefficients are exp(tau W) and its lambda-derivatives. The entropy production per period
Sigma (k_B) is the mean of the entropy current (tilted by mu in the same ring).

Relations (all per period, long-time limit; ratios >= 1 where the relation holds):

- Barato-Seifert TUR (PRL 114, 158101, 2015), proven for steady states (constant driving):
  Var J Sigma / (2 <J>^2) >= 1 (``tur_ratio``). Under periodic driving it can fail (Barato,
  Chetrite, Faggionato, Gabrielli, J. Stat. Mech. 2018, arXiv 1806.07837).
- Koyuk-Seifert (PRL 122, 230601, 2019, arXiv 1904.08807), periodic driving at frequency
  Omega = 2 pi / T, j(Omega) the mean rate of J: Var_rate(J) sigma >= 2 (j - Omega dj/dOmega)^2
  (the derivative at fixed protocol shape; minus sign: faster driving that raises j loosens
  the bound). Per period, <J>_T = T j(2 pi / T) gives T d<J>_T/dT = T (j - Omega dj/dOmega), so
  ``periodic_ratio`` = Var J Sigma / (2 (T d<J>_T/dT)^2) >= 1; constant driving has
  T d<J>_T/dT = <J>_T, the TUR. (The paper's body was not available to this project; the
  sign is pinned by ``tests/test_thermo_bounds.py``: with + in place of - the relation fails.)
- Generalised TUR with an effective entropic term (the form of Koyuk, Seifert, Pietzonka,
  J. Phys. A 52, 02LT02, 2019, arXiv 1809.02113, as derived here; ``generalised_ratio``):
  Var J Sigma~ / (2 <J>^2) >= 1, Sigma~ = min over pbar of int_0^T sum_edges
  (W_ij pbar_j - W_ji pbar_i)^2 ln(W_ij p_j / W_ji p_i) / (W_ij p_j - W_ji p_i) dt, pbar a
  time-independent vector with sum 1 (``effective_entropy``). Proof: in the level-2.5 large
  deviations of periodic jump processes (Barato et al. 2018) the fluctuation
  rho = p + eps (p - pbar), j = (1 + eps) j_p obeys continuity and gives J (1 + eps); each
  edge's rate function is at most (j - j_rho)^2 sigma_e / (4 j_e^2) (Gingrich et al. 2016),
  with j - j_rho = eps (W_ij pbar_j - W_ji pbar_i). Each edge's local entropy production rate is
  modified by the factor (current on pbar / current on p)^2; Sigma~ is a quadratic form
  pbar^T Q pbar, so the minimum is 1 / (1^T Q^-1 1). A weight channel is an edge from j to
  itself (current (r+_j - r-_j) p_j). With pbar = p_ss, a steady state has Sigma~ <= Sigma: the
  TUR returns.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import xarray as xr
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import require_finite, require_positive
from synapse_dyn.protocols import AbstractProtocol
from synapse_dyn.synapses.markov import AbstractMarkovMemory, stationary_distribution

from ._common import check_generators, dataset, expm, log_rate_ratio


def piecewise_drive(protocol: AbstractProtocol, n_steps: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(values, durations): the protocol over one period as ``n_steps`` equal pieces per smooth
    segment (between its corners), each held at its midpoint value (second order)."""
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}.")
    period = float(protocol.period)
    edges = np.unique(np.concatenate([[0.0, period], protocol.breakpoints(0.0, period)]))
    edges = edges[(edges >= 0) & (edges <= period)]
    durations = np.repeat(np.diff(edges) / n_steps, n_steps)
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    values = np.asarray(jax.vmap(protocol)(jnp.asarray(starts + durations / 2)))
    return values, durations


def weight_channels(
    memory: AbstractMarkovMemory, force: float = 1.0, rate: float = 1.0
) -> Float[Array, "2 n"]:
    """(r+, r-) of shape (2, n): the weight as a random walker driven by the synapse's output.
    In memory state j the output is u_j = c.p_ss(reference) - c_j (``memory.output`` of the
    pure state) and the weight steps by +delta at rate r+_j = rate exp(f_j / 2) and by -delta
    at r-_j = rate exp(-f_j / 2), with the force f_j = -force u_j (kT per step, local detailed
    balance): mean drift -2 delta rate sinh(force u_j / 2) ~ -delta rate force u_j, the TCL
    rule dw/dt = -alpha u with alpha = delta rate force (g linearised). Rates per simulation
    time unit."""
    require_positive("force", force, allow_zero=True)
    require_positive("rate", rate)
    n = memory.observable.shape[-1]
    drive = -force * memory.output(jnp.eye(n), 0.0)
    return jnp.stack([rate * jnp.exp(drive / 2), rate * jnp.exp(-drive / 2)])


def check_channels(channels: Float[ArrayLike, "*case 2 n"]) -> None:
    """Weight channel rates (r+, r-) must be finite, >= 0, and both zero or both positive in
    each state (a one-way step has infinite entropy production)."""
    require_positive("weight channel rates", channels, allow_zero=True)
    channels = np.asarray(channels, float)
    if channels.shape[-2] != 2:
        raise ValueError(f"channels must have shape (..., 2, n) = (r+, r-), got {channels.shape}.")
    one_way = (channels[..., 0, :] > 0) != (channels[..., 1, :] > 0)
    if np.any(one_way):
        index = tuple(int(k) for k in np.argwhere(one_way)[0])
        raise ValueError(
            f"weight channel in state {list(index)} steps one way only (r+ or r- is 0): its "
            "entropy production is infinite; give both directions a positive rate."
        )


def _ring_generator(matrix, first, second, entropy):
    """The tilted generator W + lambda W' + lambda^2 W''/2 + mu S as an element of the truncated
    power series ring in (lambda, mu) (lambda^3 = mu^2 = lambda mu = 0): its coefficients of
    (1, lambda, lambda^2, mu), shape (4, n, n). Its exponential (``expm`` in the ring) holds
    exp(tau W) and the derivatives d/dlambda, d^2/dlambda^2 / 2 and d/dmu at 0, exactly."""
    return jnp.stack([matrix, first, second / 2, entropy])


def _ring_multiply(x, y):
    """Product in the ring: (x0 y0, x1 y0 + x0 y1, x2 y0 + x1 y1 + x0 y2, x3 y0 + x0 y3)."""
    return jnp.stack(
        [
            x[0] @ y[0],
            x[1] @ y[0] + x[0] @ y[1],
            x[2] @ y[0] + x[1] @ y[1] + x[0] @ y[2],
            x[3] @ y[0] + x[0] @ y[3],
        ]
    )


def _tilts(matrix, increments, channels, step):
    """W' and W'' of the current: off-diagonal W_ij d_ij^m (tilt e^{lambda d_ij} per jump), and
    on the diagonal the weight channels' r+ (e^{lambda delta} - 1) + r- (e^{-lambda delta} - 1)."""
    off = 1.0 - jnp.eye(matrix.shape[-1])
    first = off * matrix * increments + jnp.diag(step * (channels[0] - channels[1]))
    second = off * matrix * increments**2 + jnp.diag(step**2 * (channels[0] + channels[1]))
    return first, second


def _entropy_tilt(matrix, channels):
    """W' of the entropy current: a jump j -> i carries ln(W_ij / W_ji), a weight step
    +-ln(r+ / r-) (local detailed balance)."""
    both = (channels[0] > 0) & (channels[1] > 0)
    ratio = jnp.where(both, channels[0], 1.0) / jnp.where(both, channels[1], 1.0)
    weight = (channels[0] - channels[1]) * jnp.log(ratio)
    return matrix * log_rate_ratio(matrix) + jnp.diag(weight)


def _period(matrices, durations, increments, channels, step):
    """The ring propagator of one period (``_ring_generator``: the current J tilted by lambda,
    the entropy current by mu) and its derivative d/ds at s = 1 when every duration is scaled
    by s."""
    n = matrices.shape[-1]
    one = jnp.zeros((4, n, n)).at[0].set(jnp.eye(n))

    def piece(carry, args):
        ring, slope = carry
        matrix, duration = args
        generator = _ring_generator(
            matrix,
            *_tilts(matrix, increments, channels, step),
            _entropy_tilt(matrix, channels),
        )
        exponential = expm(duration * generator, _ring_multiply, one)
        # d/ds exp(s tau G) = tau G exp(s tau G) at s = 1
        slope = _ring_multiply(exponential, slope) + duration * _ring_multiply(
            generator, _ring_multiply(exponential, ring)
        )
        return (_ring_multiply(exponential, ring), slope), None

    return jax.lax.scan(piece, (one, jnp.zeros((4, n, n))), (matrices, durations))[0]


def _blocks(ring):
    """(P, P', P'', P_mu') at lambda = mu = 0 from a ring element."""
    return ring[0], ring[1], 2 * ring[2], ring[3]


def _statistics(matrices, durations, increments, channels, step):
    """mean, variance, Sigma and T d<J>/dT per period (module docstring), and the periodic
    state pi at the start of the period."""
    n = matrices.shape[-1]
    ring, slope = _period(matrices, durations, increments, channels, step)
    p0, p1, p2, entropy = _blocks(ring)
    pi = stationary_distribution(p0 - jnp.eye(n))
    ones = jnp.ones(n)
    group = jnp.linalg.inv(jnp.eye(n) - p0 + jnp.outer(pi, ones)) - jnp.outer(pi, ones)
    mean = ones @ p1 @ pi
    second = ones @ p2 @ pi + 2 * ones @ p1 @ group @ (p1 @ pi - mean * pi)
    # d<J>/ds = 1^T dP' pi + 1^T P' dpi, with (1 - P) dpi = dP pi, 1^T dpi = 0
    dp0, dp1, _, _ = _blocks(slope)
    derivative = ones @ dp1 @ pi + ones @ p1 @ group @ dp0 @ pi
    sigma = ones @ entropy @ pi
    return mean, second - mean**2, sigma, derivative, pi


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
_NODES, _WEIGHTS = (_NODES + 1.0) / 2, _WEIGHTS / 2  # on [0, 1]
_LEVELS = 30  # dyadic levels of the time grid in a piece, down to tau 2^-30


def _inverse_log_mean(forward, backward):
    """ln(a / b) / (a - b) for the forward and backward fluxes of an edge, by the series
    2 (1 + x^2 / 3) / (a + b), x = (a - b) / (a + b), where |x| < 1e-4 (1 / a at a = b); 0
    where either is 0 (no edge)."""
    edge = (forward > 0) & (backward > 0)
    a, b = jnp.where(edge, forward, 1.0), jnp.where(edge, backward, 1.0)
    x = (a - b) / (a + b)
    near = jnp.abs(x) < 1e-4
    exact = (jnp.log(a) - jnp.log(b)) / jnp.where(near, 1.0, a - b)
    return jnp.where(edge, jnp.where(near, 2.0 * (1.0 + x**2 / 3.0) / (a + b), exact), 0.0)


def _piece_form(matrix, duration, channels, start):
    """The piece's share of Q (module docstring: Sigma~ = pbar^T Q pbar) and its end state.
    Per edge, int ln(a/b)/(a - b) dt with a = W_ij p_j(t), b = W_ji p_i(t) by composite
    Gauss-Legendre (8 nodes) on [0, tau 2^-L] and the dyadic intervals [tau 2^-k, tau 2^-k+1]:
    the relaxation at the start of a piece is resolved on every time scale. The propagators at
    the nodes come from two exponentials by squaring: exp(W a (1 + s)) = exp(W a) exp(W a s)."""
    scale = duration * 2.0**-_LEVELS
    # exp(W a s_q) at a = tau 2^-L, and exp(W a)
    propagators = jax.vmap(lambda s: expm(s * matrix))(scale * jnp.append(_NODES, 1.0))
    nodes, jump = propagators[:-1], propagators[-1]

    def weights(propagators, width):
        states = propagators @ start  # (q, n)
        forward = matrix[None] * states[:, None, :]  # W_ij p_j
        edges = _inverse_log_mean(forward, jnp.swapaxes(forward, -1, -2))
        loops = _inverse_log_mean(channels[0][None] * states, channels[1][None] * states)
        return width * jnp.tensordot(_WEIGHTS, edges, 1), width * _WEIGHTS @ loops

    def level(carry, _):
        nodes, jump, width = carry
        edges, loops = weights(jump @ nodes, width)
        return (nodes @ nodes, jump @ jump, 2 * width), (edges, loops)

    edges, loops = weights(nodes, scale)
    (_, end, _), (more_edges, more_loops) = jax.lax.scan(
        level, (nodes, jump, scale), None, length=_LEVELS
    )
    edges, loops = edges + more_edges.sum(0), loops + more_loops.sum(0)
    off = 1.0 - jnp.eye(matrix.shape[-1])
    edges = edges * off
    drift = channels[0] - channels[1]
    form = -edges * matrix * matrix.T + jnp.diag((edges * matrix**2).sum(0) + loops * drift**2)
    return form, end @ start


def _effective_entropy(matrices, durations, channels, start):
    """Sigma~ per period (module docstring) from the periodic state ``start``: Q summed over
    the pieces, then min over sum(pbar) = 1 of pbar^T Q pbar = 1 / (1^T Q^-1 1)."""

    def piece(state, args):
        form, end = _piece_form(*args[:2], channels, state)
        return end, form

    form = jax.lax.scan(piece, start, (matrices, durations))[1].sum(0)
    return 1.0 / jnp.sum(jnp.linalg.solve(form, jnp.ones(form.shape[-1])))


_effective_batched = jax.jit(
    jnp.vectorize(_effective_entropy, signature="(k,n,n),(k),(2,n),(n)->()")
)


_batched = jax.jit(
    jnp.vectorize(_statistics, signature="(k,n,n),(k),(n,n),(2,n),()->(),(),(),(),(n)")
)


def periodic_state(
    matrices: Float[ArrayLike, "k n n"], durations: Float[ArrayLike, " k"]
) -> Float[Array, " n"]:
    """The periodic state at the start of the period: the fixed point pi = P pi of the
    one-period propagator P = prod_k exp(tau_k W_k), normalised (SciPy, one case)."""
    propagator = np.eye(matrices.shape[-1])
    for matrix, duration in zip(np.asarray(matrices), np.asarray(durations), strict=True):
        propagator = scipy.linalg.expm(duration * matrix) @ propagator
    return stationary_distribution(propagator - np.eye(len(propagator)))


def _finite(matrices, durations, increments, channels, step, n_periods):
    """Exact variance of J over ``n_periods`` periods from the periodic state: with
    G(lambda) = 1^T P(lambda)^n pi (G(0) = 1), Var = G''(0) - G'(0)^2."""
    n = matrices.shape[-1]
    ring = _period(matrices, durations, increments, channels, step)[0]
    pi = stationary_distribution(ring[0] - jnp.eye(n))
    power = jax.lax.fori_loop(1, n_periods, lambda _, p: _ring_multiply(ring, p), ring)
    _, first, second, _ = _blocks(power)
    return jnp.sum(second @ pi) - jnp.sum(first @ pi) ** 2


@functools.cache
def _finite_batched(n_periods: int):
    """``_finite`` jitted and vectorised, one compilation per number of periods."""
    return jax.jit(
        jnp.vectorize(
            functools.partial(_finite, n_periods=n_periods),
            signature="(k,n,n),(k),(n,n),(2,n),()->()",
        )
    )


def current_statistics(
    matrices: Float[ArrayLike, "*case k n n"],
    durations: Float[ArrayLike, " k"],
    increments: Float[ArrayLike, "n n"] | None = None,
    *,
    channels: Float[ArrayLike, "*case 2 n"] | None = None,
    step: float = 1.0,
    n_periods: int | None = None,
    generalised: bool = False,
) -> xr.Dataset:
    """Exact statistics of a current J per period of a piecewise-constant drive (rate matrix
    ``matrices[k]`` for ``durations[k]``; increments ``d[i, j]`` per jump j -> i, antisymmetric;
    weight ``channels`` (r+, r-) with step ``step``), and its uncertainty relations (module
    docstring): mean, variance, entropy production Sigma, T d<J>/dT, ``tur_ratio`` (Barato-Seifert,
    >= 1 for constant driving) and ``periodic_ratio`` (Koyuk-Seifert 2019, >= 1 always). With
    ``n_periods``, also the exact variance over that many periods from the periodic state (what
    a simulation of n_periods periods estimates). With ``generalised``, also the effective
    entropy Sigma~ and ``generalised_ratio`` (Koyuk-Seifert-Pietzonka form, >= 1 always; about
    as costly again as the rest). A leading batch axis gives dimension ``case``.
    """
    matrices = np.asarray(matrices, float)
    if matrices.ndim not in (3, 4):
        raise ValueError(
            f"matrices must have shape (k, n, n) or (cases, k, n, n), got {matrices.shape}."
        )
    n = matrices.shape[-1]
    require_positive("durations", durations)
    durations = np.asarray(durations, float)
    if durations.shape != (matrices.shape[-3],):
        raise ValueError(
            f"durations has shape {durations.shape}; pass one duration per rate matrix "
            f"({matrices.shape[-3]})."
        )
    check_generators(matrices, "rate matrix")
    increments = np.zeros((n, n)) if increments is None else np.asarray(increments, float)
    require_finite("increments", increments)
    if increments.shape != (n, n) or not np.allclose(increments, -increments.T, atol=1e-12):
        raise ValueError(
            "increments must be an antisymmetric (n, n) array (d[i, j] = -d[j, i]: a current "
            f"counts a jump and its reverse with opposite signs), got shape {increments.shape}."
        )
    channels = np.zeros((2, n)) if channels is None else np.asarray(channels, float)
    check_channels(channels)
    require_finite("step", step)
    batch = matrices.shape[:-3]
    args = tuple(
        jnp.broadcast_to(jnp.asarray(value, float), (*batch, *np.shape(value)[-dims:]))
        for value, dims in ((matrices, 3), (durations, 1), (increments, 2), (channels, 2))
    ) + (jnp.broadcast_to(float(step), batch),)
    mean, variance, sigma, slope, start = _batched(*args)
    product = variance * sigma
    variables = {
        "mean": (mean, "current", "mean of J per period (scaled cumulant, perturbation theory)"),
        "variance": (variance, "current^2", "variance of J per period (scaled cumulant)"),
        "entropy_production": (sigma, "k_B", "entropy production per period"),
        "period_derivative": (slope, "current", "T d<J>_T/dT at fixed protocol shape"),
        "tur_ratio": (
            product / (2 * mean**2),
            "1",
            "Var J Sigma / (2 <J>^2): Barato-Seifert TUR, >= 1 for constant driving",
        ),
        "periodic_ratio": (
            product / (2 * slope**2),
            "1",
            "Var J Sigma / (2 (T d<J>/dT)^2): Koyuk-Seifert 2019 bound, >= 1",
        ),
    }
    if n_periods is not None:
        if not isinstance(n_periods, int) or n_periods < 1:
            raise ValueError(f"n_periods must be a positive integer, got {n_periods!r}.")
        finite = _finite_batched(n_periods)(*args)
        variables["variance_finite"] = (
            finite,
            "current^2",
            f"exact variance of J over {n_periods} periods from the periodic state",
        )
    if generalised:
        effective = _effective_batched(*args[:2], args[3], start)
        variables["effective_entropy"] = (
            effective,
            "k_B",
            "effective entropy Sigma~ per period, minimised over the effective distribution",
        )
        variables["generalised_ratio"] = (
            variance * effective / (2 * mean**2),
            "1",
            "Var J Sigma~ / (2 <J>^2): generalised TUR (Koyuk-Seifert-Pietzonka form), >= 1",
        )
    variables = {k: (np.asarray(v), u, ln) for k, (v, u, ln) in variables.items()}
    return dataset(
        variables,
        "case" if matrices.ndim == 4 else None,
        "Full counting statistics and uncertainty relations of a current",
        {"durations": durations, "step": step, "n_periods": n_periods or 0},
    )


def synapse_current_statistics(
    memory: AbstractMarkovMemory,
    protocol: AbstractProtocol,
    *,
    n_steps: int = 16,
    force: float = 1.0,
    rate: float = 1.0,
    step: float = 1.0,
    n_periods: int | None = None,
) -> xr.Dataset:
    """``current_statistics`` of the weight change per period of a Markov synapse driven by
    s(t) = protocol(t): the memory's rate matrices at the midpoints of ``piecewise_drive`` and
    the weight walker of ``weight_channels`` (force, rate, step delta). The memory's own
    transitions carry no increment: the weight moves only through its channels, but the
    entropy production counts both the memory and the weight."""
    values, durations = piecewise_drive(protocol, n_steps)
    matrices = np.asarray(memory.rate_matrix(jnp.asarray(values)))
    return current_statistics(
        matrices,
        durations,
        channels=weight_channels(memory, force, rate),
        step=step,
        n_periods=n_periods,
    )


def gillespie_current(
    matrices: Float[ArrayLike, "k n n"],
    durations: Float[ArrayLike, " k"],
    increments: Float[ArrayLike, "n n"] | None = None,
    *,
    channels: Float[ArrayLike, "2 n"] | None = None,
    step: float = 1.0,
    n_periods: int = 1,
    n_trajectories: int = 10_000,
    seed: int = 0,
) -> np.ndarray:
    """J over ``n_periods`` periods for ``n_trajectories`` independent Gillespie trajectories
    (NumPy, vectorised over trajectories; seeded), started from the exact periodic state. Within
    a piece the rates are constant, so the waiting times are exponential, cut at its end."""
    matrices = np.asarray(matrices, float)
    durations = np.asarray(durations, float)
    n = matrices.shape[-1]
    increments = np.zeros((n, n)) if increments is None else np.asarray(increments, float)
    channels = np.zeros((2, n)) if channels is None else np.asarray(channels, float)
    rng = np.random.default_rng(seed)
    # targets 0..n-1 are jumps, n and n+1 the weight's +step and -step
    rates = [
        np.concatenate([m * (1 - np.eye(n)), channels], axis=0).T for m in matrices
    ]  # [state, target]
    gains = np.concatenate([increments, np.full((1, n), step), np.full((1, n), -step)]).T
    cumulative = [np.cumsum(r, axis=1) for r in rates]
    start = np.asarray(periodic_state(matrices, durations))
    state = rng.choice(n, size=n_trajectories, p=start / start.sum())
    total = np.zeros(n_trajectories)
    for _ in range(n_periods):
        for table, duration in zip(cumulative, durations, strict=True):
            left = np.full(n_trajectories, duration)
            active = np.arange(n_trajectories)
            while active.size:
                escape = table[state[active], -1]
                wait = rng.exponential(1.0, active.size) / escape
                jumps = wait < left[active]
                active, wait = active[jumps], wait[jumps]
                left[active] -= wait
                pick = rng.random(active.size) * table[state[active], -1]
                target = (table[state[active]] <= pick[:, None]).sum(axis=1)
                total[active] += gains[state[active], target]
                state[active] = np.where(target < n, target, state[active])
    return total
