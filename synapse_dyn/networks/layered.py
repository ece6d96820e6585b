"""Layered networks relaxed by exact block coordinate descent.

The state is a tuple of free layers (hidden..., output); the input layer is clamped. Units of
one layer do not interact with each other, so holding the other layers fixed the energy of
layer k is separable and quadratic,
    E = 1/2 sum_i a_i s_i^2 - sum_i d_i s_i + const    (curvature a > 0, drive d),
and its exact minimiser over the box [lo, hi] is s = clip(d / a, lo, hi). Layers are swept in
two parity groups (odd then even, counting the input as layer 0), each group updated at once:
every update is an exact block minimisation, so the energy never increases.

Nudges act on the output layer only: a soft nudge adds beta C(o, y), majorised at the current
output o' by beta [C(o') + dC(o').(o - o') + c/2 |o - o'|^2] (exact for the MSE; c = 0 for
beta < 0 and a non-quadratic cost), which adds beta c to the curvature and
beta (c o' - dC(o')) to the drive; a clamp fixes the output.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from synapse_dyn._checks import require_finite

from ._base import AbstractNetwork, Clamp, SoftNudge


def check_layers(sizes, free_sweeps: int, nudged_sweeps: int) -> tuple[int, ...]:
    """Validated layer sizes (inputs, hidden..., outputs) and sweep counts."""
    sizes = tuple(int(n) for n in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(
            f"sizes must list >= 2 non-empty layers (inputs, ..., outputs), got {sizes}."
        )
    if free_sweeps < 1 or nudged_sweeps < 1:
        raise ValueError(f"sweeps must be >= 1, got free {free_sweeps}, nudged {nudged_sweeps}.")
    return sizes


def check_layered_parameters(sizes, w) -> None:
    """Shapes of {"weights": (n_{k+1}, n_k) per layer pair, "biases": (n_k,) per free layer}."""
    if not isinstance(w, dict) or set(w) != {"weights", "biases"}:
        raise ValueError(
            'parameters must be a dict {"weights": (...), "biases": (...)}; use network.init(key).'
        )
    expected_w = [(up, low) for low, up in zip(sizes[:-1], sizes[1:], strict=True)]
    got_w = [tuple(np.shape(W)) for W in w["weights"]]
    got_b = [tuple(np.shape(b)) for b in w["biases"]]
    if got_w != expected_w or got_b != [(n,) for n in sizes[1:]]:
        raise ValueError(
            f"parameter shapes do not match the layer sizes {sizes}: weights need "
            f"{expected_w}, got {got_w}; biases need {[(n,) for n in sizes[1:]]}, "
            f"got {got_b}."
        )
    for k, b in enumerate(w["biases"]):
        require_finite(f"biases[{k}]", b)


class AbstractLayeredNetwork(AbstractNetwork):
    """A layered network; subclasses give per-layer curvature, drive and bounds."""

    sizes: eqx.AbstractVar[tuple[int, ...]]
    free_sweeps: eqx.AbstractVar[int]
    nudged_sweeps: eqx.AbstractVar[int]

    @abc.abstractmethod
    def layer_coefficients(
        self, k: int, layers: tuple[Array, ...], w, inputs: Float[Array, " n_in"]
    ) -> tuple[Float[Array, " n_k"], Float[Array, " n_k"]]:
        """(curvature a, drive d) of free layer k (0-based among free layers)."""

    @abc.abstractmethod
    def layer_bounds(self) -> tuple[tuple[Float[Array, " n_k"], Float[Array, " n_k"]], ...]:
        """(lower, upper) bounds of each free layer."""

    @property
    def n_outputs(self) -> int:
        return self.sizes[-1]

    def state_bounds(self):
        bounds = self.layer_bounds()
        return tuple(lo for lo, _ in bounds), tuple(hi for _, hi in bounds)

    def output(self, x):
        return x[-1]

    def clamp(self, x, values):
        return (*x[:-1], jnp.asarray(values, dtype=jnp.result_type(x[-1], values)))

    def initial_state(self) -> tuple[Array, ...]:
        """Zeros projected into the bounds."""
        return tuple(
            jnp.clip(jnp.zeros(n), lo, hi)
            for n, (lo, hi) in zip(self.sizes[1:], self.layer_bounds(), strict=True)
        )

    def solve(self, w, inputs, nudge=None, x0=None):
        """``free_sweeps`` (free) or ``nudged_sweeps`` (perturbed) sweeps of exact block
        coordinate descent from ``x0`` (default: zeros in the bounds)."""
        x = self.initial_state() if x0 is None else tuple(x0)
        if isinstance(nudge, Clamp):
            x = self.clamp(x, nudge.values)
        sweeps = self.free_sweeps if nudge is None else self.nudged_sweeps
        return jax.lax.fori_loop(
            0, sweeps, lambda _, layers: self.sweep(w, inputs, nudge, layers), x
        )

    def sweep(
        self, w, inputs: Float[Array, " n_in"], nudge, x: tuple[Array, ...]
    ) -> tuple[Array, ...]:
        """One sweep: every free layer (odd physical layers first, then even; a clamped
        output excluded) replaced by its exact minimiser given its neighbours."""
        n_free = len(self.sizes) - 1
        bounds = self.layer_bounds()
        order = [k for k in range(n_free) if k % 2 == 0] + [k for k in range(n_free) if k % 2 == 1]
        if isinstance(nudge, Clamp):
            order.remove(n_free - 1)
        for k in order:
            curvature, drive = self.layer_coefficients(k, x, w, inputs)
            if k == n_free - 1 and isinstance(nudge, SoftNudge):
                o, bc = x[k], nudge.majoriser_curvature()
                curvature = curvature + bc
                drive = drive + bc * o - nudge.beta * nudge.cost.grad(o, nudge.target)
            lo, hi = bounds[k]
            x = x[:k] + (jnp.clip(drive / curvature, lo, hi),) + x[k + 1 :]
        return x
