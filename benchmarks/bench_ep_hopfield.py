"""One EP training epoch of a 784-500-10 layered Hopfield network (centered EP, 20 free and 4
nudged sweeps per phase, batch 20, beta 0.5, MSE), ``synapse_dyn.training.sgd_epoch``
(vmapped rule, lax.scan over batches, jitted) against independent implementations of the same
iterations, timed in the same run on the same random data (784-dimensional inputs in [0, 1],
one-hot targets; MNIST-sized epochs are extrapolated from ``--samples``):

* NumPy: batched matrix products written out;
* PyTorch (optional, ``pip install ".[bench]"``), in the style of the public code of Laborieux
  et al., "Scaling equilibrium propagation to deep ConvNets" (Front. Neurosci. 2021): the
  network as ``torch.nn.Linear`` layers and a primitive function Phi(x, s) =
  sum_k s_(k+1) . (W_k s_k + b_k) - beta C, the neurons updated from autograd's dPhi/ds and
  the synaptic gradient from autograd's backward pass through the difference of Phi at the
  two nudged states; float64, as ours.

Ratio = baseline time / ours (> 1: we are faster). The final parameter sets are compared to
show the computations are the same. Baselines run with the stated BLAS (and PyTorch) threads.

Usage: python benchmarks/bench_ep_hopfield.py [--samples 2000]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _report import BLAS_THREADS, pin_blas_threads, report

from synapse_dyn import rules
from synapse_dyn.networks import HopfieldNetwork
from synapse_dyn.training import sgd_epoch

jax.config.update("jax_enable_x64", True)

SIZES = (784, 500, 10)
FREE, NUDGED, BATCH, BETA, RATE = 20, 4, 20, 0.5, 0.05


def numpy_epoch(w, x, y):
    """Exact block coordinate descent (hidden then output layer per sweep) and the centered
    EP update, written directly with NumPy."""
    (W1, W2), (b1, b2) = [np.array(a) for a in w["weights"]], [np.array(a) for a in w["biases"]]

    def relax(X, H, Out, beta, Y, sweeps):
        for _ in range(sweeps):
            H = np.clip(X @ W1.T + Out @ W2 + b1, 0.0, 1.0)
            Out = (H @ W2.T + b2 + beta * Y) / (1.0 + beta)
        return H, Out

    for start in range(0, len(x) - BATCH + 1, BATCH):
        X, Y = x[start : start + BATCH], y[start : start + BATCH]
        H0, O0 = relax(X, np.zeros((BATCH, SIZES[1])), np.zeros((BATCH, SIZES[2])), 0.0, Y, FREE)
        Hp, Op = relax(X, H0, O0, BETA, Y, NUDGED)
        Hm, Om = relax(X, H0, O0, -BETA, Y, NUDGED)
        scale = 1.0 / (2 * BETA * BATCH)
        # dE/dW1 = -h x^T, dE/dW2 = -o h^T, dE/db = -s; g = [s(+beta) - s(-beta)] / (2 beta)
        W1 -= RATE * -scale * (Hp - Hm).T @ X
        W2 -= RATE * -scale * (Op.T @ Hp - Om.T @ Hm)
        b1 -= RATE * -scale * (Hp - Hm).sum(0)
        b2 -= RATE * -scale * (Op - Om).sum(0)
    return W1, W2, b1, b2


def torch_epoch(w, x, y):
    """The same epoch with PyTorch in the Scaling-EP style (module docstring). The layers are
    relaxed in our order (hidden, then output, each from the other's latest value) with each
    one's exact minimiser, so the two epochs match number for number: hidden = clip(dPhi/dh,
    0, 1); output = (dPhi/do + beta y) / (1 + beta), dPhi/do taken at beta = 0."""
    import torch

    torch.set_num_threads(BLAS_THREADS)
    layers = torch.nn.ModuleList(
        torch.nn.Linear(n_in, n_out, dtype=torch.float64)
        for n_in, n_out in zip(SIZES[:-1], SIZES[1:], strict=True)
    )
    with torch.no_grad():
        for layer, weight, bias in zip(layers, w["weights"], w["biases"], strict=True):
            layer.weight.copy_(torch.from_numpy(np.array(weight)))
            layer.bias.copy_(torch.from_numpy(np.array(bias)))
    optimizer = torch.optim.SGD(layers.parameters(), lr=RATE)

    def phi(X, neurons):
        below = [X, *neurons[:-1]]
        return sum(
            torch.sum(layer(s) * up, dim=1)
            for layer, s, up in zip(layers, below, neurons, strict=True)
        )

    def relax(X, Y, neurons, beta, sweeps):
        neurons = [s.detach().requires_grad_(True) for s in neurons]
        for _ in range(sweeps):
            for k in range(len(neurons)):
                drive = torch.autograd.grad(phi(X, neurons).sum(), neurons[k])[0]
                if k < len(neurons) - 1:
                    value = torch.clamp(drive, 0.0, 1.0)
                else:
                    value = (drive + beta * Y) / (1.0 + beta)
                neurons[k] = value.detach().requires_grad_(True)
        return [s.detach() for s in neurons]

    X_all, Y_all = torch.from_numpy(x), torch.from_numpy(y)
    for start in range(0, len(x) - BATCH + 1, BATCH):
        X, Y = X_all[start : start + BATCH], Y_all[start : start + BATCH]
        zeros = [torch.zeros(BATCH, n, dtype=torch.float64) for n in SIZES[1:]]
        free = relax(X, Y, zeros, 0.0, FREE)
        plus = relax(X, Y, free, BETA, NUDGED)
        minus = relax(X, Y, free, -BETA, NUDGED)
        optimizer.zero_grad()
        # centered EP: g = -[dPhi(s+)/dw - dPhi(s-)/dw] / (2 beta), batch mean (the cost
        # term of Phi does not depend on w)
        delta = -(phi(X, plus).mean() - phi(X, minus).mean()) / (2 * BETA)
        delta.backward()
        optimizer.step()
    return [layer.weight.detach().numpy() for layer in layers] + [
        layer.bias.detach().numpy() for layer in layers
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    limiter = pin_blas_threads()  # noqa: F841
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.samples, SIZES[0]))
    y = np.eye(10)[rng.integers(0, 10, args.samples)]
    net = HopfieldNetwork(SIZES, FREE, NUDGED)
    w = net.init(jax.random.key(0))
    rule = rules.EP(BETA, "centered")
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    # identity order (no shuffling) so both implementations see the same batches
    def ours():
        return jax.block_until_ready(
            sgd_epoch(net, rule, w, xj, yj, None, jnp.asarray(RATE), BATCH)
        )

    ours()  # compile
    start = time.perf_counter()
    w_ours = ours()
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    w_np = numpy_epoch(w, x, y)
    t_np = time.perf_counter() - start
    ours_flat = [
        w_ours["weights"][0],
        w_ours["weights"][1],
        w_ours["biases"][0],
        w_ours["biases"][1],
    ]
    difference = max(
        float(np.abs(np.asarray(a) - b).max()) for a, b in zip(ours_flat, w_np, strict=True)
    )
    per_epoch = 60000 / args.samples
    print(
        f"EP epoch 784-500-10, {args.samples} samples: ours {t_ours:.2f} s, NumPy {t_np:.2f} s, "
        f"ratio {t_np / t_ours:.2f}; MNIST epoch (60000) ~ ours {t_ours * per_epoch:.0f} s, "
        f"NumPy {t_np * per_epoch:.0f} s; max |w_ours - w_numpy| {difference:.1e}"
    )
    report(
        "ep_hopfield",
        f"EP epoch 784-500-10, {args.samples} samples",
        t_ours,
        f"NumPy ({BLAS_THREADS} BLAS thread(s))",
        t_np,
        t_np / t_ours,
        "> 1 (baseline / ours)",
        t_np / t_ours > 1,
        f"max |w_ours - w_numpy| {difference:.1e}",
    )
    try:
        import torch  # noqa: F401
    except ImportError:
        print('PyTorch baseline skipped: install it with pip install ".[bench]"')
        return
    start = time.perf_counter()
    w_torch = torch_epoch(w, x, y)
    t_torch = time.perf_counter() - start
    difference = max(
        float(np.abs(np.asarray(a) - b).max()) for a, b in zip(ours_flat, w_torch, strict=True)
    )
    report(
        "ep_hopfield",
        f"EP epoch 784-500-10, {args.samples} samples",
        t_ours,
        f"PyTorch, Scaling-EP style ({BLAS_THREADS} thread(s))",
        t_torch,
        t_torch / t_ours,
        "> 1 (baseline / ours)",
        t_torch / t_ours > 1,
        f"max |w_ours - w_torch| {difference:.1e}",
    )


if __name__ == "__main__":
    main()
