"""Agnostic equilibrium propagation (AEqProp; Scellier, Mishra, Bengio and Ollivier,
arXiv:2205.15021): the parameters theta are physical degrees of freedom, each held by a control
knob u through a spring of compliance epsilon, and the learning step is made by the physics.

Total energy of a mini-batch (B physical copies sharing theta; the network energy is their
mean, so batch size 1 is the paper's per-example procedure):

    F(theta, s; u, b) = |theta - u|^2 / (2 epsilon) + mean_k [E(theta, s_k) + b C(o(s_k), y_k)].

One update:
  1. free phase: s relaxes at b = 0;
  2. homeostatic phase: s relaxes at b = beta_1; the knob is set so that theta is exactly at
     equilibrium, u = theta + epsilon dE/dtheta(theta, s_beta1);
  3. u frozen, b = beta_2: s and theta relax jointly to
     theta' = argmin over the feasible set of F(., s'; u, beta_2), s' = s_beta2(theta').

Then theta' - theta = -epsilon (beta_2 - beta_1) g_hat_EP(beta_1, beta_2) + O(epsilon^2):
an SGD step of learning rate alpha = epsilon (beta_2 - beta_1) made by physics. The rule's
estimate is g_hat = (theta - theta') / (epsilon (beta_2 - beta_1)), so the project's step
w <- project(w - alpha g_hat) with alpha = epsilon (beta_2 - beta_1) reproduces theta' exactly.

Modes (beta_1, beta_2): optimistic (0, beta), pessimistic (-beta, 0), centered
(-beta/2, +beta/2); beta_2 - beta_1 = beta in all three, so alpha = epsilon beta. The project's
centered EP, ``EP(beta_EP, "centered")``, nudges at -beta_EP and +beta_EP: centered AEqProp
with beta = 2 beta_EP uses the same two nudges and, to first order in epsilon, the same step
when epsilon = alpha / (2 beta_EP).

Joint relaxation (phase 3): every shipped substrate has an energy affine in its parameters
(resistor 1/2 sum g (dv)^2, diode 1/2 sum G (dv)^2 - b.v, elastic 1/2 sum k (r - l)^2, Hopfield
-s W s - b.s), so for fixed s the theta-block of F is the separable isotropic quadratic
|theta - (u - epsilon dE/dtheta(s))|^2 / (2 epsilon) + const, whose minimiser over the
feasible box (conductances, stiffnesses >= their minimum) is exactly
theta = project(u - epsilon dE/dtheta(s)): a conductance that the springs would pull below
its minimum rests on that bound, as a physical one does. Phase 3 alternates this exact
theta-block with one exact block step of s (a sweep of a layered network, each layer its
exact minimiser; the network's own solve otherwise), warm-started; each block step lowers F.
For the Hopfield network theta = u + (epsilon / B) sum_k s_up,k s_low,k^T is a rank-B update
of the knob; a layer where that is cheaper stays factored during the relaxation (a product
W s costs O(B n), not the O(n_up n_low) of forming theta), and the first layer's knob is
never formed, so an update costs about one EP step plus a few small sweeps. For other
network types the theta-block is minimised by optimistix (BFGS), then projected. The
alternation converges at the rate epsilon lambda, lambda the largest eigenvalue of
-d^2 Phi/d theta^2 (Phi = min_s E + b C is concave in theta for an affine energy): the knob
spring must be stiffer than the network's negative parameter stiffness,
epsilon lambda < 1, the same condition that makes the homeostatic equilibrium stable.
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PyTree

from synapse_dyn._checks import require_positive
from synapse_dyn._runtime_checks import poison
from synapse_dyn.networks import DiodeNetwork, ElasticNetwork, HopfieldNetwork, ResistorNetwork
from synapse_dyn.networks._base import DEFAULT_COST, AbstractCost, AbstractNetwork, SoftNudge
from synapse_dyn.networks.layered import AbstractLayeredNetwork

from ._base import AbstractRule

Mode = Literal["optimistic", "pessimistic", "centered"]
MODES = {"optimistic": (0.0, 1.0), "pessimistic": (-1.0, 0.0), "centered": (-0.5, 0.5)}
# network types whose energy is affine in the parameters (the closed-form theta-block); a
# subclass may change the energy, so the check is on the exact type
AFFINE = (ResistorNetwork, DiodeNetwork, ElasticNetwork, HopfieldNetwork)
_GROWING = 8


class AgnosticPhases(eqx.Module):
    """One AEqProp update of a batch: the states of the three phases (leading batch axis),
    the knob u, the new parameters theta', and the joint relaxation's last fixed-point step
    max |theta_(k+1) - theta_k| (``residual``; for the factored Hopfield weights a
    Cauchy-Schwarz bound of it) after ``iterations`` alternations, and whether it is below
    the tolerance (``converged``)."""

    free: PyTree[Array]
    homeostatic: PyTree[Array]
    knob: PyTree[Array]
    theta: PyTree[Array]
    nudged: PyTree[Array]
    residual: Float[Array, ""]
    iterations: Int[Array, ""]
    converged: Bool[Array, ""]


class AgnosticEP(AbstractRule):
    """Agnostic EP with nudge strength ``beta`` > 0, knob compliance ``epsilon`` > 0 (spring
    stiffness 1/epsilon) and ``mode`` optimistic, pessimistic or centered (module docstring).
    The joint relaxation stops when a fixed-point step of theta is below ``tolerance``
    (1 + max |theta|), theta the parameters before the update, and ends with one alternation
    using the network's own solve of s; it fails loudly after ``max_iterations``
    alternations."""

    strength: Float[Array, ""]
    epsilon: Float[Array, ""]
    mode: str = eqx.field(static=True)
    cost: AbstractCost
    tolerance: float = eqx.field(static=True)
    max_iterations: int = eqx.field(static=True)

    def __init__(
        self,
        beta: Float[ArrayLike, ""],
        epsilon: Float[ArrayLike, ""],
        mode: Mode = "centered",
        cost: AbstractCost = DEFAULT_COST,
        tolerance: float = 1e-11,
        max_iterations: int = 1000,
    ):
        require_positive("AgnosticEP beta", beta)
        require_positive("AgnosticEP epsilon", epsilon)
        if mode not in MODES:
            raise ValueError(f"AgnosticEP mode must be one of {tuple(MODES)}, got {mode!r}.")
        require_positive("AgnosticEP tolerance", tolerance)
        if int(max_iterations) < 1:
            raise ValueError(f"AgnosticEP max_iterations must be >= 1, got {max_iterations!r}.")
        self.strength = jnp.asarray(beta, dtype=float)
        self.epsilon = jnp.asarray(epsilon, dtype=float)
        self.mode = mode
        self.cost = cost
        self.tolerance = float(tolerance)
        self.max_iterations = int(max_iterations)

    @property
    def beta(self) -> Float[Array, ""]:
        return self.strength

    @property
    def betas(self) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """(beta_1, beta_2) of the mode; beta_2 - beta_1 = beta."""
        low, high = MODES[self.mode]
        return low * self.strength, high * self.strength

    @property
    def learning_rate(self) -> Float[Array, ""]:
        """alpha = epsilon (beta_2 - beta_1) = epsilon beta, the SGD step the physics makes."""
        return self.epsilon * self.strength

    @eqx.filter_jit
    def phases(
        self,
        network: AbstractNetwork,
        w: PyTree[Array],
        inputs: Float[Array, "batch n_in"],
        targets: Float[Array, "batch n_out"],
        x0: PyTree[Array] | None = None,
    ) -> AgnosticPhases:
        """The three phases for a batch (free phases started from ``x0`` if given)."""
        beta_1, beta_2 = self.betas
        free = jax.vmap(lambda i, s: network.equilibrium(w, i, None, s))(inputs, x0)

        def relax(theta, b, start):
            return jax.vmap(
                lambda i, y, s: network.equilibrium(theta, i, SoftNudge(b, y, self.cost), s)
            )(inputs, targets, start)

        homeostatic = free if self.mode == "optimistic" else relax(w, beta_1, free)
        knob = jax.tree.map(
            lambda p, d: p + self.epsilon * d, w, network.batch_current(homeostatic, w, inputs)
        )
        block = _theta_block(network, self.epsilon, knob, inputs)
        factored = type(network) is HopfieldNetwork  # theta(s) factored, never formed
        if factored:
            theta_of, formed = _hopfield_block(w, homeostatic, self.epsilon, inputs)
            axes = {"weights": None, "biases": 0}
            theta = theta_of(None, homeostatic)  # = w
        else:
            theta_of, axes, theta = block, None, w
        threshold = self.tolerance * (1.0 + _max_abs(w))
        # one exact block step of s per alternation (theta may be factored: no input checks)
        relax_once = network.sweep if isinstance(network, AbstractLayeredNetwork) else network.solve

        def settle(solver, theta, states):
            return jax.vmap(
                lambda p, i, y, s: solver(p, i, SoftNudge(beta_2, y, self.cost), s),
                in_axes=(axes, 0, 0, 0),
            )(theta, inputs, targets, states)

        def alternate(carry):
            theta, states, step, first, growing, k = carry
            states = settle(relax_once, theta, states)
            new = theta_of(theta, states)
            change = _step(theta, new)
            first = jnp.where(k == 0, change, first)
            return new, states, change, first, jnp.where(change > step, growing + 1, 0), k + 1

        def running(carry):
            _, _, step, first, growing, k = carry
            # a contraction's steps shrink: steps growing 8 times in a row to ten times the
            # first one (or NaN) diverge
            diverging = ((growing >= _GROWING) & (step > 10 * first)) | (
                (k > 0) & ~jnp.isfinite(step)
            )
            return (step > threshold) & ~diverging & (k < self.max_iterations)

        inf, zero = jnp.asarray(jnp.inf), jnp.asarray(0)
        start = (theta, free, inf, inf, zero, zero)
        theta, states, step, _, _, k = jax.lax.while_loop(running, alternate, start)
        # converged: a last alternation with the network's own solve of s, theta' formed
        nudged = settle(network.solve, theta, states)
        theta = formed(nudged) if factored else block(theta, nudged)
        converged = step <= threshold
        return AgnosticPhases(free, homeostatic, knob, theta, nudged, step, k, converged)

    def batch_estimate_and_state(self, network, w, inputs, targets, sign, x0=None):
        """g_hat = (theta - theta') / (epsilon beta), the batch's physical step divided by
        its learning rate; NaN if the joint relaxation did not converge."""
        result = self.phases(network, w, inputs, targets, x0)
        theta = poison(result.theta, result.converged)  # ``failure`` says why
        g = jax.tree.map(lambda a, b: (a - b) / self.learning_rate, w, theta)
        return g, result.free

    def failure(self, network, w, inputs, targets):
        """Whether the joint relaxation ran out of alternations or diverged, and the fix."""
        result = self.phases(network, w, inputs, targets)
        if bool(result.converged):
            return super().failure(network, w, inputs, targets)
        if int(result.iterations) >= self.max_iterations:
            how = f"did not converge in {self.max_iterations} alternations"
            fix = "raise max_iterations or lower epsilon"
        else:
            how = f"diverged (its steps grew {_GROWING} times in a row, past 10x the first)"
            fix = (
                "epsilon exceeds the compliance at which the knobs hold theta (epsilon lambda "
                ">= 1, lambda the network's negative parameter stiffness); lower epsilon, i.e. "
                "the learning rate epsilon beta"
            )
        return (
            f"AgnosticEP: the joint theta-s relaxation {how} (fixed-point step "
            f"{float(result.residual):.1g}, tolerance {self.tolerance:g}): {fix}."
        )

    def estimate_and_state(self, network, w, inputs, target, sign, x0=None):
        x0 = None if x0 is None else jax.tree.map(lambda a: a[None], x0)
        g, free = self.batch_estimate_and_state(network, w, inputs[None], target[None], sign, x0)
        return g, jax.tree.map(lambda a: a[0], free)


def _max_abs(tree) -> Float[Array, ""]:
    return jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree)]))


class _Crossbar(eqx.Module):
    """W = base + scale left^T right (left (B, n_up), right (B, n_low)), never formed:
    W @ v = base @ v + scale left^T (right v) costs O(B (n_up + n_low)) besides base @ v
    (``base`` None: 0, for a product computed once outside the relaxation)."""

    base: Array | None
    left: Array
    right: Array
    scale: Array

    def __matmul__(self, v):
        low_rank = self.scale * (self.left.T @ (self.right @ v))
        return low_rank if self.base is None else self.base @ v + low_rank

    @property
    def T(self) -> "_Crossbar":
        return _Crossbar(
            None if self.base is None else self.base.T, self.right, self.left, self.scale
        )


def _hopfield_block(w, homeostatic, epsilon, inputs):
    """The Hopfield network's exact theta-block, theta = u - epsilon dE/dtheta(states) with
    dE/dW_k = -mean s_(k+1) s_k^T, dE/db_k = -mean s_k and the knob u = w + epsilon
    dE/dtheta(homeostatic states H). Each W_k is a rank-B update, (epsilon / B) L^T R, of a
    base: W_0 = w_0 + (epsilon / B) (S_1 - H_1)^T X (both terms share the clamped inputs X,
    so the first layer's knob is never formed) and W_k = u_k + (epsilon / B) S_(k+1)^T S_k
    above it. Returns (relaxing, formed): ``formed(states)`` is theta; ``relaxing(_, states)``
    keeps a layer factored (``_Crossbar``) where a product costs less so, B (n_up + n_low) <
    n_up n_low, and the first layer's drive w_0 x, constant through the relaxation (x is
    clamped), is then computed once and folded into each example's first bias (batch axis
    on the biases)."""
    rows = inputs.shape[0]
    scale = epsilon / rows
    bases = (
        (w["weights"][0],)
        + tuple(
            w_k - scale * h_up.T @ h_low  # the knob u_k
            for w_k, h_up, h_low in zip(
                w["weights"][1:], homeostatic[1:], homeostatic[:-1], strict=True
            )
        )
    )
    cheaper = [rows * sum(base.shape) < base.size for base in bases]
    drive = inputs @ bases[0].T if cheaper[0] else jnp.zeros((rows, 1))

    def layers(states):
        """Per layer: (base, L, R) of W = base + scale L^T R, and the bias."""
        lefts = (states[0] - homeostatic[0], *states[1:])
        rights = (inputs, *states[:-1])
        biases = tuple(
            b + epsilon * (jnp.mean(s, axis=0) - jnp.mean(h, axis=0))
            for b, s, h in zip(w["biases"], states, homeostatic, strict=True)
        )
        return zip(bases, lefts, rights, strict=True), biases

    def relaxing(_, states):
        weights, biases = layers(states)
        return {
            "weights": tuple(
                _Crossbar(None if k == 0 else base, left, right, scale)
                if cheaper[k]
                else base + scale * left.T @ right
                for k, (base, left, right) in enumerate(weights)
            ),
            "biases": tuple(
                b[None] + (drive if k == 0 else jnp.zeros((rows, 1))) for k, b in enumerate(biases)
            ),
        }

    def formed(states):
        weights, biases = layers(states)
        return {
            "weights": tuple(base + scale * left.T @ right for base, left, right in weights),
            "biases": biases,
        }

    return relaxing, formed


def _step(old, new) -> Float[Array, ""]:
    """max |new - old| over the parameters; for a factored crossbar the Cauchy-Schwarz bound
    scale (max_i |dL_:i| max_j |R'_:j| + max_i |L_:i| max_j |dR_:j|) (column norms over the
    batch) of the formed matrices' max |new - old|."""

    def one(a, b):
        if not isinstance(a, _Crossbar):
            return jnp.max(jnp.abs(b - a))
        norm = lambda m: jnp.max(jnp.linalg.norm(m, axis=0))  # noqa: E731
        return a.scale * (
            norm(b.left - a.left) * norm(b.right) + norm(a.left) * norm(b.right - a.right)
        )

    crossbar = lambda p: isinstance(p, _Crossbar)  # noqa: E731
    return jnp.max(jnp.stack(jax.tree.leaves(jax.tree.map(one, old, new, is_leaf=crossbar))))


def _theta_block(network, epsilon, knob, inputs):
    """theta(theta_guess, states) = argmin over the feasible set of
    |theta - u|^2 / (2 epsilon) + mean E(theta, states): closed form for an affine energy
    (module docstring), else BFGS from the guess followed by the projection."""
    if type(network) in AFFINE:
        return lambda theta, states: network.project(
            jax.tree.map(
                lambda u, d: u - epsilon * d, knob, network.batch_current(states, theta, inputs)
            )
        )
    energies = jax.vmap(network.energy, in_axes=(0, None, 0))

    def minimise(theta, states):
        def objective(p, _):
            shift = jax.tree.leaves(jax.tree.map(jnp.subtract, p, knob))
            spring = sum(jnp.sum(d**2) for d in shift)
            return spring / (2 * epsilon) + jnp.mean(energies(states, p, inputs))

        solution = optx.minimise(
            objective, optx.BFGS(rtol=1e-13, atol=1e-13), theta, max_steps=1000, throw=False
        )
        return network.project(solution.value)

    return minimise


def secant(
    network: AbstractNetwork,
    w: PyTree[Array],
    inputs: Float[Array, "batch n_in"],
    targets: Float[Array, "batch n_out"],
    beta_1: Float[ArrayLike, ""],
    beta_2: Float[ArrayLike, ""],
    cost: AbstractCost = DEFAULT_COST,
) -> Float[Array, ""]:
    """The secant L(theta) = [Phi(theta, beta_2) - Phi(theta, beta_1)] / (beta_2 - beta_1),
    Phi(theta, b) = mean over the batch of min_s E(theta, s) + b C(o(s), y) (the knob spring
    does not depend on b and cancels). Its theta-gradient is the EP estimate g_hat(beta_1,
    beta_2) (envelope theorem); AEqProp is a descent method for it (docs/aeqprop.md)."""
    from .contrastive import primitive

    def phi(b):
        return jnp.mean(
            jax.vmap(lambda i, y: primitive(network, w, i, y, b, cost))(inputs, targets)
        )

    return (phi(beta_2) - phi(beta_1)) / (beta_2 - beta_1)
