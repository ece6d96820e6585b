"""The layered Hopfield network of equilibrium propagation (Scellier and Bengio).

Layers s_0 = inputs (clamped), s_1 .. s_L free, hidden units in [0, 1] (the hard-sigmoid
rho(s) = clip(s, 0, 1) is the identity on the feasible set), output bounds configurable
(linear by default). Parameters: weights W_k of shape (n_{k+1}, n_k) and biases b_k of the
free layers. Energy
    E = sum_{k>=1} 1/2 |s_k|^2 - sum_k s_{k+1}^T W_k s_k - sum_{k>=1} b_k^T s_k,
local currents dE/dW_k = -s_{k+1} s_k^T, dE/db_k = -s_k. Free layer k has curvature 1 and
drive W_{k-1} s_{k-1} + W_k^T s_{k+1} + b_k, so s_k <- clip(drive, lo, hi) is exact.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from synapse_dyn._checks import require_finite

from .layered import AbstractLayeredNetwork, check_layered_parameters, check_layers


class HopfieldNetwork(AbstractLayeredNetwork):
    """Layered Hopfield network with sizes (n_in, hidden..., n_out)."""

    sizes: tuple[int, ...] = eqx.field(static=True)
    free_sweeps: int = eqx.field(static=True)
    nudged_sweeps: int = eqx.field(static=True)
    output_bounds: tuple[float, float] = eqx.field(static=True)
    gain: float = eqx.field(static=True)
    relaxation_time: float = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)

    def __init__(
        self,
        sizes,
        free_sweeps: int = 20,
        nudged_sweeps: int = 4,
        output_bounds: tuple[float, float] = (-np.inf, np.inf),
        gain: float = 0.5,
        relaxation_time: float = 1.0,
    ):
        sizes = check_layers(sizes, free_sweeps, nudged_sweeps)
        if not output_bounds[0] < output_bounds[1]:
            raise ValueError(
                f"output_bounds must be (low, high) with low < high, got {output_bounds}."
            )
        self.sizes = sizes
        self.free_sweeps = int(free_sweeps)
        self.nudged_sweeps = int(nudged_sweeps)
        self.output_bounds = (float(output_bounds[0]), float(output_bounds[1]))
        self.gain = float(gain)
        self.relaxation_time = float(relaxation_time)
        self.n_inputs = sizes[0]

    def layer_bounds(self):
        hidden = [(jnp.zeros(n), jnp.ones(n)) for n in self.sizes[1:-1]]
        lo, hi = self.output_bounds
        n = self.sizes[-1]
        return (*hidden, (jnp.full(n, lo), jnp.full(n, hi)))

    def layer_coefficients(self, k, layers, w, inputs):
        weights, biases = w["weights"], w["biases"]
        below = inputs if k == 0 else layers[k - 1]
        drive = weights[k] @ below + biases[k]
        if k + 1 < len(layers):
            drive = drive + weights[k + 1].T @ layers[k + 1]
        return jnp.ones_like(drive), drive

    def energy(self, x, w, inputs):
        """E = 1/2 sum |s_k|^2 - sum s_{k+1}^T W_k s_k - sum b_k^T s_k."""
        below = (inputs, *x[:-1])
        quadratic = sum(0.5 * jnp.sum(s**2) for s in x)
        coupling = sum(up @ W @ low for up, W, low in zip(x, w["weights"], below, strict=True))
        bias = sum(b @ s for b, s in zip(w["biases"], x, strict=True))
        return quadratic - coupling - bias

    def power(self, x, w, inputs):
        """Static power dissipated in the resistors of Hopfield's analog circuit (PNAS 81, 3088,
        1984) at state x (docs/thermodynamics.md, "Energy to accuracy"). Each free unit is an
        ideal amplifier (infinite input resistance) with input potential u and output
        s = clip(S u, lo, hi); the inputs are voltage sources; each coupling W_k[i, j] is a
        conductance |W_k[i, j]| from the output sign(W) s_j (inverting output when W < 0) to
        the input u_i, and one more from sign(W) s_i to u_j between free layers (T_ij = T_ji);
        the biases are current sources b into u. S = sum_j |W_ij| over both directions (the
        total conductance at u, Hopfield's 1/R_i), so E is Hopfield's circuit energy. KCL at u:
        u = (W s + b) / S at a hidden unit (saturated or not) and u = s / S at a linear output
        (where a nudge's current or a clamp acts). Then
            P = sum over resistors |W_ij| (sign(W_ij) s_j - u_i)^2 >= 0,
        heat into the environment per time in conductance x potential^2 (W a conductance, s a
        potential), the resistor network's unit. The amplifiers' own supply power is not
        counted (ideal amplifiers, as ideal sources elsewhere)."""
        if np.isfinite(self.output_bounds).any():
            raise ValueError(
                f"HopfieldNetwork.power needs linear outputs, got output_bounds "
                f"{self.output_bounds}: a saturated output's input potential is not a function "
                "of the state; use output_bounds=(-inf, inf)."
            )
        weights, n = w["weights"], len(x)
        conductance = [jnp.sum(jnp.abs(W), 1) for W in weights]  # from the layer below
        for k in range(n - 1):
            conductance[k] = conductance[k] + jnp.sum(jnp.abs(weights[k + 1]), 0)  # from above
        potentials = []
        for k, (s, S) in enumerate(zip(x, conductance, strict=True)):
            numerator = s if k == n - 1 else self.layer_coefficients(k, x, w, inputs)[1]
            potentials.append(jnp.where(S > 0, numerator / jnp.where(S > 0, S, 1.0), 0.0))

        def resistors(W, sources, u):
            """Heat of conductances |W_ij| from sign(W_ij) sources_j to u_i."""
            return jnp.sum(jnp.abs(W) * (jnp.sign(W) * sources[None, :] - u[:, None]) ** 2)

        below = (inputs, *x[:-1])
        forward = sum(
            resistors(W, low, u) for W, low, u in zip(weights, below, potentials, strict=True)
        )
        backward = sum(resistors(weights[k].T, x[k], potentials[k - 1]) for k in range(1, n))
        return forward + backward

    def synaptic_current(self, x, w, inputs):
        """dE/dW_k = -s_{k+1} s_k^T, dE/db_k = -s_k."""
        below = (inputs, *x[:-1])
        return {
            "weights": tuple(-jnp.outer(up, low) for up, low in zip(x, below, strict=True)),
            "biases": tuple(-s for s in x),
        }

    def project(self, w):
        """Weights and biases are unconstrained."""
        return w

    def init(self, key):
        """W_k ~ U(+-gain / sqrt(n_k)), b_k ~ U(+-gain / sqrt(n_k))."""
        keys = jax.random.split(key, 2 * (len(self.sizes) - 1))
        weights, biases = [], []
        for k, (low, up) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            scale = self.gain / np.sqrt(low)
            weights.append(jax.random.uniform(keys[2 * k], (up, low), minval=-scale, maxval=scale))
            biases.append(jax.random.uniform(keys[2 * k + 1], (up,), minval=-scale, maxval=scale))
        return {"weights": tuple(weights), "biases": tuple(biases)}

    def check_parameters(self, w):
        check_layered_parameters(self.sizes, w)
        for k, W in enumerate(w["weights"]):
            require_finite(f"weights[{k}]", W)
