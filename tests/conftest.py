"""Shared fixtures: ``xp`` runs a test on every array backend that can run here, ``rng`` gives it seeded data.

Where a test lives: tests live in ``tests/test_<module>.py`` for the module they guard (``lnedu/_io.py`` ->
``test_io.py``, ``lnedu/__main__.py`` -> ``test_cli.py``, ``lnedu/experiments/runner.py`` ->
``test_experiments_runner.py``), plus the property suite (random inputs over the public API) and the fault
suite (``test_faults.py``: killed and corrupted runs). A regression test goes into the file of the code it
guards, never into a file named after where the bug was found.

* ``xp`` is parametrized over ``numpy`` and ``cupy``. The cupy case carries the ``gpu`` marker and is
  skipped (never failed) where :func:`lnedu.backend.available_backends` does not list it, that is without
  CuPy or without a CUDA device. ``pytest -m "not gpu"`` leaves it out altogether.
* ``rng`` is a ``numpy.random.Generator`` seeded from the test's id: different data for every test and
  parameter set, the same data on every run.
* Any test marked ``@pytest.mark.gpu`` is skipped where no GPU backend is available.
* ``emulator`` installs the CPU emulator of lnedu's CUDA kernels (``tests/cuda_emulator``) as the kernel
  provider for one test, so that ``lnedu.cuda``'s launch code runs the real kernel source on NumPy arrays;
  ``real_gpu_provider`` installs CuPy's for one test. Either puts the previous provider back afterwards.
"""

from __future__ import annotations

import importlib
import zlib

import numpy as np
import pytest

from lnedu import backend

AVAILABLE_BACKENDS = backend.available_backends()
GPU_SKIP_REASON = "cupy backend: CuPy is not installed or no CUDA device is visible (lnedu.backend.gpu_available())"


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CuPy and a CUDA device (skipped otherwise)")


def pytest_collection_modifyitems(config, items):
    if "cupy" in AVAILABLE_BACKENDS:
        return
    skip = pytest.mark.skip(reason=GPU_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module of one backend (numpy, or cupy where a GPU is available)."""
    if request.param not in AVAILABLE_BACKENDS:
        pytest.skip(GPU_SKIP_REASON)
    return importlib.import_module(request.param)


@pytest.fixture
def rng(request):
    """A generator seeded by the test's node id (stable across runs, distinct across tests)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def _emulator_provider():
    """Every kernel instantiation of lnedu.cuda, compiled once per session for the CPU (cached on disk)."""
    from lnedu import cuda
    from tests.cuda_emulator import EmulatorProvider, compiler

    if compiler() is None:
        pytest.skip("no C++ compiler (g++) to build the CUDA emulator")
    return EmulatorProvider(cuda.name_expressions(), multiprocessors=2)


@pytest.fixture
def emulator(_emulator_provider):
    """The CPU emulator as lnedu.cuda's kernel provider for this test (its launch log cleared)."""
    from lnedu import cuda

    _emulator_provider.launches.clear()
    previous = cuda.set_provider(_emulator_provider)
    yield _emulator_provider
    cuda.set_provider(previous)


@pytest.fixture
def real_gpu_provider():
    """CuPy's NVRTC provider for this test (the default), whatever another test installed."""
    from lnedu import cuda

    previous = cuda.set_provider(None)
    yield cuda.get_provider()
    cuda.set_provider(previous)


@pytest.fixture
def gpu_spy(monkeypatch, real_gpu_provider):
    """For the GPU tests: ``spy(module, names)`` returns ``(cupy, calls)``, skipping without a CUDA device,
    and wraps ``module``'s functions ``names`` so that every call appends its name to ``calls``: a test can
    then tell which path (fused or portable) really ran."""

    def spy(module, names):
        if not backend.gpu_available():
            pytest.skip(GPU_SKIP_REASON)
        calls = []
        for name in names:
            real = getattr(module, name)

            def wrapper(*args, _real=real, _name=name, **kwargs):
                calls.append(_name)
                return _real(*args, **kwargs)

            monkeypatch.setattr(module, name, wrapper)
        return importlib.import_module("cupy"), calls

    return spy
