"""Markov-chain synaptic memory: the state is an occupation vector p over the chain's states,
driven by the synaptic current s through its rate matrix,

    dp/dt = M(s) p,    M[i, j] = rate j -> i (i != j),  M[j, j] = -sum_{i != j} M[i, j],

and the output u is the deviation of an observable c.p (the receptor activity) from its
adapted value: u = c.p_ss(reference) - c.p. The ESA ladder (Lan et al., Nat. Phys. 8, 422
(2012); tcl_model.md Sec. 2.7) is the 10-state adaptation network of the paper's Fig. 6:
activity row a in {top, bottom} x methylation m in {0..4}, state index 5 a + m.

Time units: rate matrices are in "Markov" time units; ``time_scale`` Markov units elapse per
simulation time unit (5 by default: the recipe's 5-unit step-response window becomes the
kernel's [0, 1], like the E. coli kernel's support).
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import concrete, require_finite, require_in_range, require_positive
from synapse_dyn._runtime_checks import poison

from .kernels import SampledKernel, sampled_moments
from .memory import AbstractMemory

N_METHYLATION = 5
_TOP = np.arange(N_METHYLATION)
_BOTTOM = N_METHYLATION + _TOP


def check_rate_matrix(matrix: Float[ArrayLike, "n n"], name: str = "rate matrix") -> None:
    """Raise a ValueError unless ``matrix`` (or each matrix of a batch) is a valid irreducible
    rate matrix: square, finite, non-negative off the diagonal, columns summing to zero, every
    state reachable from every other. Skipped for traced values (inside jit/vmap)."""
    array = concrete(matrix)
    if array is None:
        return
    if array.ndim < 2 or array.shape[-1] != array.shape[-2]:
        raise ValueError(f"{name} must be square (shape (..., n, n)), got shape {array.shape}.")
    if array.ndim > 2:
        for index in np.ndindex(array.shape[:-2]):
            check_rate_matrix(array[index], f"{name} {list(index)}")
        return
    require_finite(name, array)
    off = array - np.diag(np.diag(array))
    if np.any(off < 0):
        i, j = np.argwhere(off < 0)[0]
        raise ValueError(
            f"{name} has a negative rate {array[i, j]!r} from state {j} to state {i}; "
            "transition rates (off-diagonal entries) must be >= 0."
        )
    sums = array.sum(axis=0)
    scale = np.max(np.abs(array), axis=0)
    bad = np.flatnonzero(np.abs(sums) > 1e-10 * np.maximum(scale, 1e-300))
    if bad.size:
        raise ValueError(
            f"{name} column {bad[0]} sums to {sums[bad[0]]!r}, not 0: the diagonal must be "
            "M[j, j] = -sum_{i != j} M[i, j] (probability is conserved)."
        )
    unreachable = _unreachable_states(off > 0)
    if unreachable:
        raise ValueError(
            f"{name} is not irreducible: state(s) {unreachable} cannot be reached from, or "
            "cannot return to, state 0; add transitions so that every state connects to "
            "every other (the steady state is otherwise not unique)."
        )


def check_reversible(matrix: Float[ArrayLike, "... n n"], name: str = "rate matrix") -> None:
    """Raise a ValueError if a transition j -> i has a positive rate but its reverse i -> j has
    none: its entropy production ln(M[i, j] p_j / (M[j, i] p_i)) is infinite (Schnakenberg),
    so no finite dissipation or thermodynamic bound exists. Skipped for traced values."""
    array = concrete(matrix)
    if array is None:
        return
    off = ~np.eye(array.shape[-1], dtype=bool)
    one_way = off & (array > 0) & ~(np.swapaxes(array, -1, -2) > 0)
    if np.any(one_way):
        *index, i, j = (int(k) for k in np.argwhere(one_way)[0])
        where = f" {index}" if index else ""
        raise ValueError(
            f"{name}{where} has a one-way transition {j} -> {i} (rate "
            f"{float(array[(*index, i, j)])!r}, "
            f"reverse rate 0): its entropy production is infinite; give the reverse transition "
            f"{i} -> {j} a positive rate (thermodynamic consistency needs both directions)."
        )


def _unreachable_states(adjacency: np.ndarray) -> list[int]:
    """States not in the strongly connected component of state 0 (adjacency[i, j]: j -> i)."""
    n = adjacency.shape[0]
    step = (adjacency | np.eye(n, dtype=bool)).astype(np.int64)
    reach = np.eye(n, dtype=np.int64)
    for _ in range(int(np.ceil(np.log2(max(n, 2)))) + 1):
        reach = np.minimum(reach @ reach + reach @ step, 1)
    forward, backward = reach[:, 0] > 0, reach[0, :] > 0
    return np.flatnonzero(~(forward & backward)).tolist()


def stationary_distribution(matrix: Float[Array, "... n n"]) -> Float[Array, "... n"]:
    """The steady state p_ss of dp/dt = M p: M p_ss = 0 with sum(p_ss) = 1, solved with the
    last balance equation replaced by the normalisation."""
    matrix = jnp.asarray(matrix, dtype=float)
    n = matrix.shape[-1]
    system = matrix.at[..., -1, :].set(1.0)
    rhs = jnp.broadcast_to(jnp.eye(n)[-1], matrix.shape[:-1])
    return jnp.linalg.solve(system, rhs[..., None])[..., 0]


def energy_difference(
    s: Float[ArrayLike, "..."], m: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Delta E(s, m) = 2 (1 - m) + ln[(1 + s/18.2)/(1 + s/3000)] (kT; s in micromolar)."""
    s = jnp.asarray(s, dtype=float)
    return 2.0 * (1.0 - m) + jnp.log((1.0 + s / 18.2) / (1.0 + s / 3000.0))


def esa_rate_matrix(
    s: Float[ArrayLike, ""], gamma: Float[ArrayLike, ""], rate_factor: Float[ArrayLike, ""] = 25.0
) -> Float[Array, "10 10"]:
    """The ESA ladder's rate matrix in Markov time units (tcl_model.md Sec. 2.7).

    Methylation: top row m -> m-1 at rate 1 and m -> m+1 at e gamma; bottom row m -> m+1 at
    rate 1 and m -> m-1 at e gamma. Activity: top m -> bottom m at w1, bottom m -> top m at
    w0, with w1/w0 = exp(Delta E(s, m)) and min(w0, w1) = rate_factor. The product of rates
    around each square loop is gamma^2 times that of the reverse loop: gamma = 1 is detailed
    balance, gamma < 1 drives a cycle with free energy 2 ln(1/gamma) kT per turn.
    """
    if concrete(s) is not None:
        require_positive("ligand concentration s", s, allow_zero=True)
    if concrete(gamma) is not None:
        require_in_range("gamma", gamma, 0.0, 1.0, closed=(False, True))
    require_positive("rate_factor", rate_factor)
    delta = energy_difference(s, jnp.arange(N_METHYLATION, dtype=float))
    up = rate_factor * jnp.exp(jnp.maximum(delta, 0.0))  # top m -> bottom m, w1
    down = rate_factor * jnp.exp(jnp.maximum(-delta, 0.0))  # bottom m -> top m, w0
    back = jnp.e * gamma * jnp.ones(N_METHYLATION - 1)
    ones = jnp.ones(N_METHYLATION - 1)
    rates = (
        jnp.zeros((2 * N_METHYLATION, 2 * N_METHYLATION))
        .at[_TOP[:-1], _TOP[1:]]
        .set(ones)
        .at[_TOP[1:], _TOP[:-1]]
        .set(back)
        .at[_BOTTOM[1:], _BOTTOM[:-1]]
        .set(ones)
        .at[_BOTTOM[:-1], _BOTTOM[1:]]
        .set(back)
        .at[_BOTTOM, _TOP]
        .set(up)
        .at[_TOP, _BOTTOM]
        .set(down)
    )
    return rates - jnp.diag(rates.sum(axis=0))


class AbstractMarkovMemory(AbstractMemory):
    """A memory whose state is the occupation vector p of a Markov chain (last axis):
    dp/dt = time_scale M(s) p and u = c.p_ss(reference) - c.p, with c the observable."""

    time_scale: eqx.AbstractVar[Float[ArrayLike, ""]]
    reference: eqx.AbstractVar[Float[ArrayLike, ""]]

    @abc.abstractmethod
    def markov_matrix(self, s: Float[ArrayLike, ""]) -> Float[Array, "n n"]:
        """M(s) in Markov time units, for a scalar current s."""

    @property
    @abc.abstractmethod
    def observable(self) -> Float[Array, " n"]:
        """c, the state observable read out (the activity)."""

    def rate_matrix(self, s: Float[ArrayLike, "..."]) -> Float[Array, "... n n"]:
        """time_scale M(s): the rate matrix in simulation time units, for any shape of s."""
        matrix = jnp.vectorize(self.markov_matrix, signature="()->(n,n)")
        return self.time_scale * matrix(jnp.asarray(s, dtype=float))

    def vector_field(self, z, s):
        return jnp.einsum(
            "...ij,...j->...i", self.rate_matrix(jnp.broadcast_to(s, z.shape[:-1])), z
        )

    def output(self, z, s):
        adapted = stationary_distribution(self.rate_matrix(self.reference)) @ self.observable
        return adapted - z @ self.observable

    def steady_state(self, s):
        return stationary_distribution(self.rate_matrix(s))

    def step_response(
        self,
        step: Float[ArrayLike, ""],
        base: Float[ArrayLike, ""] = 0.0,
        window: float = 1.0,
        n_samples: int = 10_001,
    ) -> tuple[Float[Array, " t"], Float[Array, " t"]]:
        """(t, u(t)): the output on t = 0..window (simulation time, n_samples points) after the
        current jumps from ``base`` (in steady state) to ``base + step``, by exact propagation
        p(t + dt) = exp(M dt) p(t)."""
        dt = window / (n_samples - 1)
        propagator = jax.scipy.linalg.expm(self.rate_matrix(base + step) * dt)

        def advance(p, _):
            return propagator @ p, p

        _, occupations = jax.lax.scan(advance, self.steady_state(base), None, length=n_samples)
        return dt * jnp.arange(n_samples), self.output(occupations, base + step)

    def kernel(
        self,
        step: Float[ArrayLike, ""] = 200.0,
        base: Float[ArrayLike, ""] = 0.0,
        window: float = 1.0,
        n_samples: int = 10_001,
    ) -> SampledKernel:
        """The recipe's kernel (tcl_model.md Sec. 2.7): the central-difference derivative of
        the step response u(t), normalised to first moment -1 (K <- -K / m1, trapezoid
        moments). Traceable: vmap it over a batch of memories and steps."""
        _, response = self.step_response(step, base, window, n_samples)
        dt = window / (n_samples - 1)
        derivative = jnp.gradient(response, dt)
        _, first = sampled_moments(derivative, dt)
        flat = jnp.max(jnp.abs(response - response[0])) <= 1e-12
        if concrete(flat) is not None and bool(flat):
            raise ValueError(
                f"the step response to step = {step!r} is flat (no memory to normalise): pass a "
                "non-zero step to a ladder whose activity responds to the current."
            )
        first = poison(first, ~flat)  # traced: a flat response gives a NaN kernel
        return SampledKernel(dt, -derivative / first)


class MarkovLadder(AbstractMarkovMemory):
    """The 10-state ESA adaptation ladder as synaptic memory (tcl_model.md Sec. 2.7): state
    p over (top, bottom) x methylation 0..4, dp/dt = time_scale M(s; gamma, rate_factor) p,
    output u = a_ss(reference) - a(p) with a = top-row occupancy (the receptor activity).

    gamma in (0, 1] breaks detailed balance (1 = equilibrium); rate_factor sets the speed of
    the activity switches; time_scale is Markov time units per simulation time unit.
    """

    gamma: Float[ArrayLike, ""]
    rate_factor: Float[ArrayLike, ""] = 25.0
    time_scale: Float[ArrayLike, ""] = 5.0
    reference: Float[ArrayLike, ""] = 0.0

    def __check_init__(self):
        require_in_range("MarkovLadder gamma", self.gamma, 0.0, 1.0, closed=(False, True))
        require_positive("MarkovLadder rate_factor", self.rate_factor)
        require_positive("MarkovLadder time_scale", self.time_scale)
        require_positive("MarkovLadder reference", self.reference, allow_zero=True)

    def markov_matrix(self, s):
        return esa_rate_matrix(s, self.gamma, self.rate_factor)

    @property
    def observable(self):
        return jnp.concatenate([jnp.ones(N_METHYLATION), jnp.zeros(N_METHYLATION)])
