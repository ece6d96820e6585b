"""The JAX runtime the project installs: concurrent batched LAPACK calls on CPU complete.

jax 0.10 (jaxlib's ``ParallelBatchMap``) runs the parts of a batched LU on XLA's intra-op
thread pool and blocks until they finish; a program with as many independent batched solves
as pool threads then waits for ever (a CI worker hung in fig6b's sweep). pyproject.toml
excludes those versions; this test fails if they come back."""

import subprocess
import sys

PROGRAM = """
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
a = jax.random.normal(jax.random.key(0), (64, 20, 20))
solves = jax.jit(lambda a: sum(jnp.linalg.solve(a * (k + 1), jnp.ones((64, 20, 1))).sum()
                               for k in range(6)))
for i in range(50):
    solves(a + i).block_until_ready()
"""


def test_concurrent_batched_lapack_calls_complete():
    """Six independent batched solves in one program, 50 times, in a fresh process: about 1 s
    (jax 0.9.2); with the parallel batch path of jax 0.10 it hangs on the first call."""
    finished = subprocess.run([sys.executable, "-c", PROGRAM], timeout=120, capture_output=True)
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
