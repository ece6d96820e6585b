"""Deep resistive networks with ideal diodes (Scellier, arXiv:2402.11674).

Layers of nodes; the input layer is a set of voltage sources at gain * [x, -x] (each input
duplicated with inverted sign, so positive conductances realise signed weights); free layers
hidden..., output. Consecutive layers are joined by crossbars of conductances G_k >= 0 of shape
(n_{k+1}, n_k); each free node has a current-source bias b (learnable); each hidden node has
an ideal diode to ground, the first half of a layer "excitatory" (v >= 0), the second half
"inhibitory" (v <= 0); outputs are linear. The steady state minimises the co-content

    E = sum_k sum_ij 1/2 G_k[i, j] (v_{k+1, i} - v_{k, j})^2 - sum b^T v

under the diode constraints, a convex quadratic program with linear inequality constraints.
For free layer k the curvature is a = G_{k-1} 1 + G_k^T 1 (total conductance at the node) and
the drive d = G_{k-1} v_{k-1} + G_k^T v_{k+1} + b_k: the node update v <- clip(d / a, lo, hi)
(conductance-weighted mean of neighbours plus source current, then the diode) is the paper's
exact coordinate descent. Local currents dE/dG_k[i, j] = 1/2 (v_{k+1, i} - v_{k, j})^2,
dE/db = -v.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from synapse_dyn._checks import concrete, require_positive

from .layered import AbstractLayeredNetwork, check_layered_parameters, check_layers
from .spice import build_netlist


class DiodeNetwork(AbstractLayeredNetwork):
    """A deep resistive network with sizes (n_in, hidden..., n_out); the physical input
    layer has 2 n_in sources."""

    sizes: tuple[int, ...] = eqx.field(static=True)
    input_gain: float
    free_sweeps: int = eqx.field(static=True)
    nudged_sweeps: int = eqx.field(static=True)
    min_conductance: float = eqx.field(static=True)
    relaxation_time: float = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)

    def __init__(
        self,
        sizes,
        input_gain: float = 1.0,
        free_sweeps: int = 6,
        nudged_sweeps: int = 6,
        min_conductance: float = 1e-6,
        relaxation_time: float = 1.0,
    ):
        sizes = check_layers(sizes, free_sweeps, nudged_sweeps)
        odd = [n for n in sizes[1:-1] if n % 2]
        if odd:
            raise ValueError(
                f"hidden layer sizes must be even (half excitatory, half inhibitory), got {sizes}."
            )
        require_positive("input_gain", input_gain)
        require_positive("min_conductance", min_conductance)
        self.sizes = sizes
        self.input_gain = input_gain
        self.free_sweeps = int(free_sweeps)
        self.nudged_sweeps = int(nudged_sweeps)
        self.min_conductance = float(min_conductance)
        self.relaxation_time = float(relaxation_time)
        self.n_inputs = sizes[0]

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Physical layer sizes, the duplicated input first."""
        return (2 * self.sizes[0], *self.sizes[1:])

    def sources(self, inputs):
        """Input voltage sources gain * [x, -x]."""
        return self.input_gain * jnp.concatenate([inputs, -inputs])

    def layer_bounds(self):
        bounds = []
        for n in self.sizes[1:-1]:
            excitatory = jnp.arange(n) < n // 2
            bounds.append(
                (jnp.where(excitatory, 0.0, -jnp.inf), jnp.where(excitatory, jnp.inf, 0.0))
            )
        n = self.sizes[-1]
        return (*bounds, (jnp.full(n, -jnp.inf), jnp.full(n, jnp.inf)))

    def layer_coefficients(self, k, layers, w, inputs):
        G, biases = w["weights"], w["biases"]
        below = self.sources(inputs) if k == 0 else layers[k - 1]
        curvature = jnp.sum(G[k], axis=1)
        drive = G[k] @ below + biases[k]
        if k + 1 < len(layers):
            curvature = curvature + jnp.sum(G[k + 1], axis=0)
            drive = drive + G[k + 1].T @ layers[k + 1]
        return curvature, drive

    def energy(self, x, w, inputs):
        """E = sum 1/2 G_ij (v_i - v_j)^2 - sum b^T v (the resistors' half of ``power``)."""
        bias = sum(b @ v for b, v in zip(w["biases"], x, strict=True))
        return 0.5 * self.power(x, w, inputs) - bias

    def power(self, x, w, inputs):
        """Power dissipated at state x, the sum over elements of current x voltage drop:
        P = sum_k sum_ij G_k[i, j] (v_{k+1, i} - v_{k, j})^2 >= 0 (heat into the environment
        per time, potential^2 x conductance), expanded per crossbar as
        v_up^2 . G 1 - 2 v_up^T G v_low + G^T 1 . v_low^2. The ideal diodes add nothing (a
        conducting one has no voltage drop, a blocking one no current), and the bias current
        sources deliver power rather than dissipate it, so P = 2 (E + b^T v), not 2 E."""
        below = (self.sources(inputs), *x[:-1])
        return sum(
            up**2 @ jnp.sum(G, 1) - 2 * up @ G @ low + jnp.sum(G, 0) @ low**2
            for up, G, low in zip(x, w["weights"], below, strict=True)
        )

    def synaptic_current(self, x, w, inputs):
        """dE/dG_k[i, j] = 1/2 (v_{k+1, i} - v_{k, j})^2, dE/db = -v."""
        below = (self.sources(inputs), *x[:-1])
        return {
            "weights": tuple(
                0.5 * (up[:, None] - low[None, :]) ** 2 for up, low in zip(x, below, strict=True)
            ),
            "biases": tuple(-v for v in x),
        }

    def project(self, w):
        """G <- max(G, min_conductance); biases free."""
        return {
            "weights": tuple(jnp.maximum(G, self.min_conductance) for G in w["weights"]),
            "biases": w["biases"],
        }

    def init(self, key):
        """G_k ~ U(0, 1 / sqrt(fan_in)), biases 0."""
        keys = jax.random.split(key, len(self.sizes) - 1)
        weights = tuple(
            jax.random.uniform(k, (up, low), maxval=1.0 / np.sqrt(low))
            for k, low, up in zip(keys, self.layer_sizes[:-1], self.layer_sizes[1:], strict=True)
        )
        return {"weights": weights, "biases": tuple(jnp.zeros(n) for n in self.sizes[1:])}

    def check_parameters(self, w):
        check_layered_parameters(self.layer_sizes, w)
        for k, G in enumerate(w["weights"]):
            values = concrete(G)
            if values is None:
                continue
            if not np.all(np.isfinite(values)):
                raise ValueError(
                    f"conductances weights[{k}] must be finite; remove NaN or inf values."
                )
            if np.any(values < 0):
                bad = np.argwhere(values < 0)[:5].tolist()
                raise ValueError(
                    f"conductances must be >= 0, got negative values in weights[{k}] at {bad} "
                    f"(min {values.min()!r}); use network.project(w)."
                )
            if np.any(values.sum(axis=1) <= 0):
                dead = np.flatnonzero(values.sum(axis=1) <= 0)[:10].tolist()
                raise ValueError(
                    f"nodes {dead} of layer {k + 1} have zero conductance to the layer below: they "
                    "float; use network.project(w) (conductances >= min_conductance)."
                )

    def to_spice(self, w, inputs) -> str:
        """SPICE netlist: sources on the duplicated inputs, crossbar resistors, bias current
        sources, and a near-ideal diode to ground per hidden node."""
        offsets = np.concatenate([[0], np.cumsum(self.layer_sizes)])
        name = lambda layer, i: f"n{offsets[layer] + i}"
        resistors = [
            (name(k + 1, i), name(k, j), 1.0 / g)
            for k, G in enumerate(np.asarray(W, float) for W in w["weights"])
            for (i, j), g in np.ndenumerate(G)
        ]
        sources = [
            (name(0, j), v)
            for j, v in enumerate(np.asarray(self.sources(jnp.asarray(inputs, float))))
        ]
        currents = [
            (name(k + 1, i), c)
            for k, b in enumerate(w["biases"])
            for i, c in enumerate(np.asarray(b, float))
            if c != 0
        ]
        diodes = []
        for k, n in enumerate(self.sizes[1:-1]):
            for i in range(n):
                diodes.append(("0", name(k + 1, i)) if i < n // 2 else (name(k + 1, i), "0"))
        return build_netlist("deep resistive network", resistors, sources, currents, diodes)

    def node_names(self) -> list[list[str]]:
        """SPICE node names of each free layer."""
        offsets = np.concatenate([[0], np.cumsum(self.layer_sizes)])
        return [
            [f"n{offsets[k] + i}" for i in range(n)]
            for k, n in enumerate(self.layer_sizes)
            if k > 0
        ]
