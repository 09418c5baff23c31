"""lnedu._io: atomic writes, readers that name a damaged file, and the lock of a run folder."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import numpy as np
import pytest

from lnedu import _io
from lnedu._io import (
    DamagedFile,
    FolderLocked,
    atomic_write_bytes,
    atomic_write_text,
    folder_lock,
    read_json,
    read_jsonl,
    save_npz_atomic,
)


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "first")
    atomic_write_text(p, "second")
    assert p.read_text() == "second"
    assert [q.name for q in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_keeps_the_file_mode(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    os.chmod(p, 0o644)
    atomic_write_text(p, "new")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644 and p.read_text() == "new"


def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old bytes")

    def half_then_crash(f):
        f.write(b"new by")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write(p, half_then_crash, binary=True)
    assert p.read_bytes() == b"old bytes" and [q.name for q in tmp_path.iterdir()] == ["f.bin"]


def test_save_npz_atomic_round_trips_and_keeps_its_old_homes(tmp_path):
    from lnedu import nn
    from lnedu.nn import module

    assert nn.save_npz_atomic is save_npz_atomic and module.save_npz_atomic is save_npz_atomic  # one release
    a = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)
    save_npz_atomic(tmp_path / "a.npz", {"a": a, "s": np.array("text")})
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["a"], a)
        assert str(z["s"]) == "text"


def test_read_jsonl_drops_only_a_record_cut_off_at_the_end(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    assert read_jsonl(p) == [{"step": 1}, {"step": 2}]
    with pytest.raises(DamagedFile, match="line 3"):
        read_jsonl(p, allow_cut_last=False)


@pytest.mark.parametrize("text, line", [('{"step": 1}\nxx junk\n{"step": 3}\n', 2), ('{"step": 1}\n\n{"step": 2}\n', 2),
                                         ('[1, 2]\n', 1), ('{"step": 1}\n{"st\n', 2)])
def test_read_jsonl_names_the_file_and_the_line(tmp_path, text, line):
    p = tmp_path / "m.jsonl"
    p.write_text(text)
    with pytest.raises(DamagedFile) as err:
        read_jsonl(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: line {line}:") and "\n" not in msg


@pytest.mark.parametrize("content, problem", [(b"", "empty file"), (b'{"a": 1', "invalid JSON at line 1"),
                                               (b"\xff\xfe\x00garbage", "undecodable")])
def test_read_json_names_the_file(tmp_path, content, problem):
    p = tmp_path / "r.json"
    p.write_bytes(content)
    with pytest.raises(DamagedFile, match=problem) as err:
        read_json(p, "run result")
    assert str(err.value).startswith(str(p))


def test_second_lock_is_refused_with_the_owner_and_released_after(tmp_path):
    with folder_lock(tmp_path):
        owner = json.loads((tmp_path / "lock").read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(FolderLocked, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            with folder_lock(tmp_path):
                pass
        assert (tmp_path / "lock").exists()  # the refused one did not remove the owner's lock
    assert not (tmp_path / "lock").exists()
    assert sorted(q.name for q in tmp_path.iterdir()) == []


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # that process has exited and been reaped
    (tmp_path / "lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": 0.0}))
    with folder_lock(tmp_path):
        assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()


def test_live_lock_of_another_process_is_refused(tmp_path):
    (tmp_path / "lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "since": 0.0}))
    with pytest.raises(FolderLocked, match=f"pid {os.getppid()}"):
        with folder_lock(tmp_path):
            pass
    (tmp_path / "lock").write_text(json.dumps({"pid": 1, "host": "another-machine", "since": 0.0}))
    with pytest.raises(FolderLocked, match="another-machine"):  # another host's pid cannot be checked from here
        with folder_lock(tmp_path):
            pass


@pytest.mark.parametrize("content", ["", "garbage", '{"pid": "x"}', "[1]"])
def test_unreadable_lock_is_refused_naming_it(tmp_path, content):
    (tmp_path / "lock").write_text(content)
    with pytest.raises(DamagedFile, match="delete it if no run is writing") as err:
        with folder_lock(tmp_path):
            pass
    assert str(err.value).startswith(str(tmp_path / "lock")) and "\n" not in str(err.value)
