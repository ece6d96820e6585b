"""Information thermodynamics of a sensing memory (Sartori, Granger, Lee, Horowitz, "Thermodynamic
costs of information processing in sensory adaptation", PLoS Comput. Biol. 10, e1003974 (2014)).

A Markov memory M senses a random signal X. Each cycle (duration tau) a new signal value is drawn
independently from the ensemble pi(x) and held fixed while M relaxes with rate matrix W(x). Over
a cycle the memory erases information about the previous signal X0 and writes information about
the present one X1. In the cycle-stationary state (the state the cycles converge to), from the
exact joint distributions of (X0, X1, M) at the switching times:

    I_old     = I(M_start; X0)                          held about the past signal at the switch
    I_erased  = I(M_start; X0) - I(M_end; X0 | X1)      erased during the cycle (>= 0)
    I_written = I(M_end; X1)                            written about the present signal
    Q         = sum_x1 pi(x1) sum_{i != j} ln(W_ij / W_ji) W_ij int_0^tau p_j(t | x1) dt
                heat into the medium per cycle (kT); in the cycle-stationary state it equals the
                work done per cycle (signal switches plus any chemical drive), by the first law
    Sigma     = Delta H(M | X0, X1) + Q   entropy produced per cycle, given the signal history
    Sigma_1   = Delta H(M | X1) + Q       entropy produced per cycle, given the present signal

Sigma_1 >= 0 is the second law for the memory under the fixed rates W(x1) started from the
mixture over X0; with the chain rule of entropy it gives the paper's two inequalities:

    (Sartori, entropy form)  Sigma >= I_erased       (Sigma - I_erased = Sigma_1)
    (Sartori, energy form)   Q / kT >= I_written     (Q - I_written = Sigma_1, cycle-stationary)

Information in nats, heat and work in kT, entropy production in k_B; nats and kT compare
directly (1 bit = ln 2 nats costs at least kT ln 2).
"""

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import require_finite, require_positive
from synapse_dyn.synapses.markov import AbstractMarkovMemory, stationary_distribution

from ._common import (
    check_ensemble,
    check_generators,
    dataset,
    entropy,
    expm,
    log_rate_ratio,
)

_QUANTITIES = (
    (
        "information_old",
        "1",
        "I(M_start; X0): information about the past signal at the switch (nats)",
    ),
    ("information_erased", "1", "I_erased = I(M_start; X0) - I(M_end; X0 | X1), per cycle (nats)"),
    ("information_written", "1", "I_written = I(M_end; X1), per cycle (nats)"),
    ("heat", "kT", "heat into the medium per cycle = work per cycle (cycle-stationary)"),
    ("entropy_production", "k_B", "entropy produced per cycle given the signal history, Sigma"),
    (
        "entropy_production_present",
        "k_B",
        "entropy produced per cycle given the present signal, Sigma_1 (the slack of both bounds)",
    ),
    ("erasure_tightness", "1", "I_erased / Sigma (Sartori entropy form: <= 1)"),
    ("writing_tightness", "1", "I_written / (Q / kT) (Sartori energy form: <= 1)"),
)


def _mutual_information(joint: Float[Array, "... a b"]) -> Float[Array, "..."]:
    """I(A; B) (nats) of a joint distribution over the last two axes."""
    return (
        entropy(joint.sum(-1))
        + entropy(joint.sum(-2))
        - entropy(joint.reshape(*joint.shape[:-2], -1))
    )


def _cycle(matrices, probabilities, period):
    """The quantities of ``_QUANTITIES`` for one memory: matrices (k, n, n), pi (k,), tau."""
    pi = probabilities
    end, integral = jax.vmap(lambda w: _propagators(w, period))(matrices)  # (k, n, n) each
    cycle = jnp.einsum("x,xij->ij", pi, end)  # one cycle, signal averaged
    start = stationary_distribution(cycle - jnp.eye(cycle.shape[-1]))  # M at the switch
    old = pi[:, None] * (end @ start)  # p(X0 = x0, M_start = m)
    after = jnp.einsum("bij,aj->abi", end, old / pi[:, None])  # p(M_end | x0, x1)
    joint = pi[:, None, None] * pi[None, :, None] * after  # p(X0, X1, M_end)
    i_old = _mutual_information(old)
    written = joint.sum(0)  # p(X1, M_end)
    i_written = _mutual_information(written)
    i_kept = jnp.sum(pi * _mutual_information(jnp.swapaxes(after, 0, 1) * pi[None, :, None]))
    heat = jnp.sum(
        pi
        * jnp.einsum(
            "xij,xij,xj->x", jax.vmap(log_rate_ratio)(matrices), matrices, integral @ start
        )
    )
    h_history = jnp.sum(pi[:, None] * pi[None, :] * entropy(after)) - jnp.sum(
        pi * entropy(old / pi[:, None])
    )
    h_present = jnp.sum(pi * entropy(written / pi[:, None])) - entropy(start)
    sigma = h_history + heat
    sigma_present = h_present + heat
    erased = i_old - i_kept
    return (
        i_old,
        erased,
        i_written,
        heat,
        sigma,
        sigma_present,
        erased / sigma,
        i_written / heat,
    )


def _propagators(matrix, period):
    """exp(W tau) and int_0^tau exp(W t) dt from one exponential of [[W, 1], [0, 0]]."""
    n = matrix.shape[-1]
    augmented = jnp.zeros((2 * n, 2 * n)).at[:n, :n].set(matrix).at[:n, n:].set(jnp.eye(n))
    full = expm(augmented * period)
    return full[:n, :n], full[:n, n:]


_batched = jax.jit(jnp.vectorize(_cycle, signature="(k,n,n),(k),()->(),(),(),(),(),(),(),()"))


def sensing_bounds(
    matrices: Float[ArrayLike, "*case k n n"],
    probabilities: Float[ArrayLike, " k"],
    period: Float[ArrayLike, "*case"],
    *,
    signals: Float[ArrayLike, " k"] | None = None,
) -> xr.Dataset:
    """Sartori et al. (2014) information bounds of a memory with rate matrix W(x) = matrices[x]
    (columns sum to zero; time unit of ``period``) sensing a signal redrawn each cycle from
    ``probabilities`` (module docstring for every quantity and the two inequalities).

    A leading batch axis of ``matrices`` (and optionally ``period``) gives one value per case
    (dimension ``case``). Exact: matrix exponentials, no sampling and no ODE solver.
    """
    matrices = np.asarray(matrices, float)
    if matrices.ndim not in (3, 4):
        raise ValueError(
            f"matrices must have shape (k, n, n) or (cases, k, n, n), got {matrices.shape}."
        )
    check_ensemble(probabilities)
    probabilities = np.asarray(probabilities, float)
    if probabilities.shape != (matrices.shape[-3],):
        raise ValueError(
            f"probabilities has shape {probabilities.shape} but there are "
            f"{matrices.shape[-3]} signal values (one rate matrix each)."
        )
    require_positive("period", period)
    check_generators(matrices, "rate matrix")
    batch = matrices.shape[:-3]
    values = _batched(
        jnp.asarray(matrices),
        jnp.broadcast_to(jnp.asarray(probabilities), (*batch, probabilities.size)),
        jnp.broadcast_to(jnp.asarray(period, float), batch),
    )
    variables = {
        name: (np.asarray(value), units, long_name)
        for (name, units, long_name), value in zip(_QUANTITIES, values, strict=True)
    }
    ds = dataset(
        variables,
        "case" if matrices.ndim == 4 else None,
        "Information thermodynamics of a sensing memory (Sartori et al. 2014)",
        {"probabilities": probabilities, "period": np.asarray(period, float)},
    )
    ds["probability"] = (
        "signal",
        probabilities,
        {"units": "1", "long_name": "probability pi(x) of each signal value"},
    )
    if signals is not None:
        require_finite("signals", signals)
        ds = ds.assign_coords(
            signal=(
                "signal",
                np.asarray(signals, float),
                {"units": "current", "long_name": "signal value x"},
            )
        )
    return ds


def memory_sensing_bounds(
    memory: AbstractMarkovMemory,
    signals: Float[ArrayLike, " k"],
    probabilities: Float[ArrayLike, " k"],
    period: float,
) -> xr.Dataset:
    """``sensing_bounds`` for a Markov synapse (e.g. ``MarkovLadder``) sensing the current
    values ``signals`` with probabilities ``probabilities``, one value per cycle of ``period``
    simulation time units (rates ``memory.rate_matrix``, in simulation time units)."""
    require_finite("signals", signals)
    signals = np.atleast_1d(np.asarray(signals, float))
    matrices = np.asarray(memory.rate_matrix(jnp.asarray(signals)))
    return sensing_bounds(matrices, probabilities, period, signals=signals)
