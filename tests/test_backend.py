"""lnedu.backend: NumPy by default, CuPy on request, clear errors where CuPy cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest

import lnedu
from lnedu import backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_no_gpu = pytest.mark.skipif(backend.gpu_available(), reason="this machine has a GPU: CuPy would work")


@pytest.fixture(autouse=True)
def _restore_backend():
    """Every test starts on NumPy and leaves the default as it found it."""
    before = backend.current()
    yield
    backend.use(before)


def _python(code: str, **env):
    """Run ``code`` in a fresh interpreter with the repository importable; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.pop("LNEDU_BACKEND", None)
    full_env["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=60)


def test_numpy_is_the_default():
    assert backend.current() == "numpy"
    assert backend.xp() is np
    assert "numpy" in backend.available_backends()
    assert backend.use("NumPy") is np  # names are case-insensitive


@pytest.mark.parametrize("name", ["tpu", "torch", ""])
def test_unknown_backend_is_a_value_error_naming_backend(name):
    with pytest.raises(ValueError, match=r"backend: expected one of \('numpy', 'cupy'\)"):
        backend.use(name)
    assert backend.current() == "numpy"  # a failed use() changes nothing


def test_cupy_not_installed_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    assert backend.gpu_available() is False
    assert backend.available_backends() == ["numpy"]
    with pytest.raises(backend.BackendError, match="CuPy is not installed.*lnedu\\[gpu\\]"):
        backend.use("cupy")
    assert backend.current() == "numpy"


def test_cupy_without_a_device_gives_a_clear_error(monkeypatch):
    fake = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setattr(backend, "_import_cupy", lambda: fake)
    assert backend.gpu_available() is False
    with pytest.raises(backend.BackendError, match="no CUDA device is available"):
        backend.use("cupy")


@needs_no_gpu
def test_use_cupy_without_gpu_raises_backend_error():
    with pytest.raises(backend.BackendError, match="backend: 'cupy' was requested"):
        backend.use("cupy")
    assert issubclass(backend.BackendError, RuntimeError)


def test_get_array_module(xp, rng):
    a = xp.asarray(rng.standard_normal((2, 3)))
    assert backend.get_array_module(a) is xp
    assert backend.get_array_module(None, a) is xp  # None entries (absent gain/bias) are skipped
    assert backend.get_array_module(np.float64(1.0)) is np
    assert backend.get_array_module(1.5, [1, 2]) is np  # plain Python values: numpy


def test_to_numpy_and_asarray(xp, rng):
    host = rng.standard_normal((3, 4))
    a = xp.asarray(host)
    back = backend.to_numpy(a)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)
    assert backend.to_numpy(host) is host  # no copy for data already on the host
    assert isinstance(backend.to_numpy([1.0, 2.0]), np.ndarray)
    b = backend.asarray([[1, 2], [3, 4]], dtype=np.float32)
    assert isinstance(b, np.ndarray) and b.dtype == np.float32 and b.shape == (2, 2)


@pytest.mark.gpu
def test_use_cupy_switches_the_default():
    import cupy

    assert backend.use("cupy") is cupy
    assert backend.current() == "cupy"
    a = backend.asarray(np.arange(3.0))
    assert isinstance(a, cupy.ndarray)
    np.testing.assert_array_equal(backend.to_numpy(a), np.arange(3.0))


def test_import_lnedu_without_cupy():
    code = (
        "import sys; sys.modules['cupy'] = None\n"
        "import lnedu, lnedu.functional, lnedu.nn, lnedu.optim\n"
        "from lnedu import backend\n"
        "assert backend.current() == 'numpy' and backend.available_backends() == ['numpy']\n"
        "print('ok', lnedu.__version__)"
    )
    res = _python(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"ok {lnedu.__version__}"


@needs_no_gpu
def test_env_variable_cupy_without_gpu_fails_at_import_with_a_clear_message():
    res = _python("import lnedu", LNEDU_BACKEND="cupy")
    assert res.returncode != 0
    assert "BackendError" in res.stderr
    assert "backend: 'cupy' was requested" in res.stderr


def test_env_variable_selects_numpy_and_rejects_unknown_names():
    res = _python("from lnedu import backend; print(backend.current())", LNEDU_BACKEND=" NumPy ")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "numpy"
    res = _python("import lnedu", LNEDU_BACKEND="tpu")
    assert res.returncode != 0
    assert "ValueError: backend: expected one of" in res.stderr
