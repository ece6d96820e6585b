"""Test-wide settings: 64-bit floats and strict rank promotion in JAX, so silent broadcasting
bugs fail loudly; child processes and the shared compilation cache as described below."""

import os
import shutil
import sys
import tempfile

# The tests' programs are small and run once or a few times, so XLA's CPU compilation costs more
# than their running: compile them without LLVM's optimisations and with XLA's older loop
# emitters (set before JAX starts its backend; child processes inherit it). Measured on eight
# of the slowest tests, run one after another: 234 s -> 169 s, of which compilation 125 -> 53 s.
FAST_COMPILE = ["--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=0"]
XLA_FLAGS = os.environ.get("XLA_FLAGS", "").split()
os.environ["XLA_FLAGS"] = " ".join(XLA_FLAGS + [f for f in FAST_COMPILE if f not in XLA_FLAGS])

import jax  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from synapse_dyn.cli import collect_garbage_rarely  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
collect_garbage_rarely()  # as the command does

# Child Pythons (the CLI run as a program, scripts) import the installed package, not the source
# folder the tests run from: with a non-editable install, that folder lacks the mapped
# protocols/ and analysis/ packages.
os.environ["PYTHONSAFEPATH"] = "1"
# One persistent compilation cache for the whole run, in a fresh folder (never the user's): the
# first test to compile a program stores it, and every later one loads it, in this process
# (after a module's programs are released, below), in the other xdist workers and in the child
# processes the tests start (the CLI, the notebooks' kernels). The controller makes the folder;
# the workers and children inherit it through the environment. It is locked per access.
if "SYNAPSE_DYN_TEST_JAX_CACHE" not in os.environ:
    os.environ["SYNAPSE_DYN_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="synapse-dyn-test-jax-")
    CACHE_OWNER = True
else:
    CACHE_OWNER = False
CACHE = os.environ["SYNAPSE_DYN_TEST_JAX_CACHE"]
os.environ["SYNAPSE_DYN_JAX_CACHE"] = CACHE  # the CLI in child processes
os.environ |= {  # any other JAX program the tests start (notebooks' kernels, scripts)
    "JAX_COMPILATION_CACHE_DIR": CACHE,
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_COMPILATION_CACHE_MAX_SIZE": str(2**33),
}
jax.config.update("jax_compilation_cache_dir", CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_compilation_cache_max_size", 2**33)


def pytest_unconfigure(config):
    if CACHE_OWNER and not hasattr(config, "workerinput"):
        shutil.rmtree(CACHE, ignore_errors=True)


def pytest_collection_modifyitems(items):
    """Tests marked ``long`` first: xdist hands tests out in this order, and a long one handed
    out last keeps one worker busy while the other has nothing left to do."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """JAX keeps every compiled program of a process; an xdist worker runs many modules and grew
    to 8-12 GB (a CI worker died). Each module's programs are released after it."""
    yield
    jax.clear_caches()


@pytest.fixture(scope="session")
def quick_figure(tmp_path_factory):
    """``quick_figure(name)``: the dataset ``synapse-dyn figure NAME --quick`` writes (its
    ``encoding["source"]`` is the file; the PNG and PDF lie beside it), made once per test
    process for every test of that figure; those tests carry ``xdist_group("figure NAME")``,
    so that xdist runs them in one process."""
    from synapse_dyn.cli import main

    made = {}

    def make(name: str) -> xr.Dataset:
        if name not in made:
            out = tmp_path_factory.mktemp(name)
            assert main(["figure", name, "--quick", "--quiet", "--out", str(out)]) == 0
            made[name] = xr.load_dataset(out / f"{name}.nc")
        return made[name]

    return make


@pytest.fixture(autouse=True)
def _matplotlib_agg(monkeypatch):
    """Figures draw off screen, and each test's figures are closed after it."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
