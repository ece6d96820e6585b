"""Data and targets, shipped or generated (no downloads): linear regression from a teacher
matrix, allostery for spring networks, Iris (shipped table), handwritten digits 8x8
(scikit-learn's bundled copy) and MNIST from a local ``mnist.npz``."""

from ._tasks import Task, allostery, digits, iris, linear_regression, mnist

__all__ = ["Task", "allostery", "digits", "iris", "linear_regression", "mnist"]
