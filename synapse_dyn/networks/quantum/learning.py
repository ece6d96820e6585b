"""Quantum equilibrium propagation on the Ising network: the rules' EP estimator applied to
ground states, the exact gradient it estimates, and a small training loop.

With F(theta, beta) = E_0(H(theta) + beta C) the ground-state energy, Hellmann-Feynman gives
dF/dtheta = <dH/dtheta>_beta and dF/dbeta = <C>_beta, so by symmetry of the mixed derivative

    dL/dtheta = d<C>_0/dtheta = lim_{beta -> 0} (<dH/dtheta>_beta - <dH/dtheta>_0) / beta,

L = <C> in the free ground state. ``ep_gradient`` forms the estimate of ``rules.EP`` from the
rule's own phase strengths (b1, b2) (positive (0, b), negative (-b, 0), centered (-b, b),
random sign): g_hat = [s(b2) - s(b1)] / (b2 - b1), s = <dH/dtheta> (sign convention of
docs/conventions.md: g_hat estimates dL/dtheta and theta <- theta - alpha g_hat).
"""

import numpy as np
import scipy.sparse.linalg as spla
from jaxtyping import ArrayLike, Float

from synapse_dyn.networks._base import SoftNudge
from synapse_dyn.rules import EP

from .ising import (
    DENSE_QUBITS,
    PARAMETERS,
    TransverseFieldIsing,
    _columns,
    _spins,
    single_threaded,
)


def _batch(network, inputs, targets):
    inputs = np.asarray(inputs, dtype=float)
    targets = np.asarray(targets, dtype=float)
    if (
        inputs.ndim != 2
        or targets.ndim != 2
        or inputs.shape[1] != network.n_inputs
        or targets.shape != (inputs.shape[0], network.n_outputs)
    ):
        raise ValueError(
            f"inputs and targets must have shapes (batch, {network.n_inputs}) and (batch, "
            f"{network.n_outputs}), got {inputs.shape} and {targets.shape}."
        )
    return inputs, targets


def ep_gradient(
    network: TransverseFieldIsing,
    w: dict,
    inputs: Float[ArrayLike, "batch n_in"],
    targets: Float[ArrayLike, "batch n_out"],
    rule: EP,
    shots: int | None = None,
    seed: int | np.random.Generator | None = None,
    repeats: int | None = None,
) -> dict[str, np.ndarray]:
    """Batch mean of the EP estimate of dL/dtheta (module docstring). The nudged phases start
    from the free ground state. ``shots``: currents estimated from that many projective
    measurements per basis and phase (seeded by ``seed``, which also draws the random sign);
    ``repeats`` independent estimates stacked on a leading axis."""
    if not isinstance(rule, EP):
        raise TypeError(
            f"quantum networks learn with rules.EP only, got {type(rule).__name__}: a clamp of "
            "<Z> is not a Hamiltonian term."
        )
    network.check_parameters(w)
    inputs, targets = _batch(network, inputs, targets)
    rng = np.random.default_rng(seed)
    sign = float(rng.choice([-1.0, 1.0])) if rule.variant == "random" else 1.0
    b1, b2 = (None if b is None else float(b) for b in rule.strengths(sign))
    denominator = (b2 or 0.0) - (b1 or 0.0)
    total = {key: 0.0 for key in PARAMETERS}
    for x, y in zip(inputs, targets, strict=True):
        free = network.solve(w, x)

        def current(b, x=x, y=y, free=free):
            state = free if b is None else network.solve(w, x, SoftNudge(b, y, rule.cost), free)
            return network.synaptic_current(state, shots=shots, rng=rng, repeats=repeats)

        low, high = current(b1), current(b2)
        total = {key: total[key] + (high[key] - low[key]) / denominator for key in PARAMETERS}
    return {key: value / len(inputs) for key, value in total.items()}


def exact_gradient(
    network: TransverseFieldIsing,
    w: dict,
    inputs: Float[ArrayLike, "batch n_in"],
    targets: Float[ArrayLike, "batch n_out"],
) -> dict[str, np.ndarray]:
    """Batch mean of dL/dtheta, L = <C>_0, by first-order perturbation theory (one adjoint solve
    per sample): (H - E_0) lambda = (C - <C>) psi_0 with lambda orthogonal to psi_0, then
    dL/dtheta = -2 <lambda| dH/dtheta |psi_0>. Exact diagonalisation only."""
    if network.method != "exact":
        raise ValueError("exact_gradient needs method='exact' (the state vector).")
    network.check_parameters(w)
    inputs, targets = _batch(network, inputs, targets)
    n, g = network.n_qubits, network.graph
    z = _spins(n).astype(float)
    total = {key: 0.0 for key in PARAMETERS}
    for x, y in zip(inputs, targets, strict=True):
        state = network.solve(w, x)
        psi, matrix = state.vector, network.matrix(w, x)
        cost = -z[:, network.output_qubits] @ y  # C up to its constant
        rhs = (cost - psi @ (cost * psi)) * psi
        # H - E_0 + psi psi^T is positive definite and maps the complement of psi onto itself
        with single_threaded():
            adjoint = _adjoint(matrix, state.energy, psi, rhs, n)
        weight = adjoint * psi
        gradient = {
            "J": 2.0 * weight @ (z[:, g.senders] * z[:, g.receivers]),
            "h": 2.0 * weight @ z,
            "Gamma": 2.0 * adjoint @ psi[_columns(n)[:, 1:]],
        }
        total = {key: total[key] + gradient[key] for key in PARAMETERS}
    return {key: value / len(inputs) for key, value in total.items()}


def _adjoint(matrix, energy, psi, rhs, n):
    """Solve (H - E_0 + psi psi^T) lambda = rhs (rhs orthogonal to psi, so lambda is too)."""
    if n <= DENSE_QUBITS:
        return np.linalg.solve(matrix.toarray() - energy * np.eye(2**n) + np.outer(psi, psi), rhs)
    operator = spla.LinearOperator(
        matrix.shape, matvec=lambda v: matrix @ v - energy * v + psi * (psi @ v), dtype=float
    )
    adjoint, info = spla.cg(operator, rhs, rtol=1e-12, atol=0.0, maxiter=20 * 2**n)
    if info != 0:
        raise RuntimeError(f"the adjoint solve did not converge (cg info {info}).")
    return adjoint


def evaluate(network: TransverseFieldIsing, w: dict, inputs, targets) -> dict[str, float]:
    """Mean loss <C> and accuracy (sign of <Z_o> agrees with the +-1 target on every output)
    over free ground states."""
    inputs, targets = _batch(network, inputs, targets)
    losses, correct = [], []
    for x, y in zip(inputs, targets, strict=True):
        state = network.solve(w, x)
        losses.append(network.loss(state, y))
        correct.append(np.all(np.sign(network.output(state)) == np.sign(y)))
    return {"loss": float(np.mean(losses)), "accuracy": float(np.mean(correct))}


def train(
    network: TransverseFieldIsing,
    w: dict,
    data: tuple,
    rule: EP | None,
    learning_rate: float = 0.1,
    epochs: int = 20,
    batch_size: int = 10,
    seed: int = 0,
    test: tuple | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Mini-batch gradient descent theta <- project(theta - lr g_hat), g_hat from ``rule`` (EP) or
    ``exact_gradient`` (rule=None). ``data``/``test``: (inputs, +-1 targets). Returns the final
    parameters and the history {epoch, train_loss, train_accuracy[, test_loss,
    test_accuracy]} (index 0 = before training)."""
    inputs, targets = _batch(network, *data)
    rng = np.random.default_rng(seed)
    history = {}

    def record():
        for name, split in (("train", (inputs, targets)), ("test", test)):
            if split is not None:
                for key, value in evaluate(network, w, *split).items():
                    history.setdefault(f"{name}_{key}", []).append(value)

    record()
    for _ in range(epochs):
        order = rng.permutation(len(inputs))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            if rule is None:
                g = exact_gradient(network, w, inputs[batch], targets[batch])
            else:
                g = ep_gradient(network, w, inputs[batch], targets[batch], rule, seed=rng)
            w = network.project({key: w[key] - learning_rate * g[key] for key in PARAMETERS})
        record()
    history = {key: np.asarray(value) for key, value in history.items()}
    history["epoch"] = np.arange(epochs + 1)
    return w, history


def iris_two_class(
    seed: int = 0,
    classes: tuple[int, int] = (1, 2),
    features: tuple[int, ...] = (2, 3),
    test_fraction: float = 0.5,
    field: float = 1.0,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) from ``tasks.iris``: two species (default
    versicolor vs virginica), the chosen features (default petal length and width) min-max
    scaled over the training rows to input fields in [-field, field] (units of the
    couplings), targets +1 for the first class and -1 for the second (one output qubit)."""
    from synapse_dyn import tasks

    task = tasks.iris(seed=seed, test_fraction=test_fraction)
    splits = []
    for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
        label = np.argmax(y, axis=1)
        keep = np.isin(label, classes)
        splits.append((x[keep][:, list(features)], np.where(label[keep] == classes[0], 1.0, -1.0)))
    low, high = splits[0][0].min(0), splits[0][0].max(0)
    scale = lambda x: field * (2.0 * (x - low) / np.where(high > low, high - low, 1.0) - 1.0)
    return tuple((scale(x), y[:, None]) for x, y in splits)
