"""Files: every atomic write of lnedu, the readers that name a damaged file, and the lock of a run folder.

An atomic write goes to a temporary file in the target's folder, is flushed to disk, then renamed over the
target: a reader never sees a half-written file, an interrupted write leaves the old file intact, and the
new file keeps the old one's permissions (``mkstemp`` would otherwise make it private). Text, bytes,
``.npz`` archives, notebooks, reports and checkpoints are all written through :func:`atomic_write`.

A file lnedu reads back (JSON, JSON lines) and finds damaged raises :class:`DamagedFile`, whose message is one
line naming the file and what is wrong with it; nothing is ever loaded with ``allow_pickle``.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = [
    "DamagedFile",
    "FolderLocked",
    "atomic_write",
    "atomic_write_text",
    "atomic_write_bytes",
    "save_npz_atomic",
    "file_mode_for",
    "read_json",
    "read_jsonl",
    "folder_lock",
]


class DamagedFile(ValueError):
    """A file lnedu wrote earlier cannot be read back as it was written (cut off, emptied, garbled).

    Its message is one line, ``"PATH: what is wrong"``; ``.path`` and ``.problem`` hold the two parts.
    """

    def __init__(self, path, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # pickled whole: a worker process's refusal reaches the caller (joblib, Dask)
        return type(self), (self.path, self.problem)


class FolderLocked(RuntimeError):
    """Another live process holds the lock of a folder this process wants to write into."""


def file_mode_for(path) -> int:
    """The permissions a rewritten file should keep: the old file's, or the umask's default for a new one
    (``mkstemp`` makes its temporary file private, 0600)."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path, write, *, binary: bool = False) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(text))


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data), binary=True)


def save_npz_atomic(path, arrays: dict) -> None:
    """Write ``arrays`` (name -> NumPy or CuPy array) to ``path`` as an uncompressed ``.npz``, atomically."""
    from .backend import to_numpy

    atomic_write(path, lambda f: np.savez(f, **{k: to_numpy(v) for k, v in arrays.items()}), binary=True)


def read_json(path, what: str = "JSON file"):
    """The JSON value stored in ``path``; :class:`DamagedFile` (naming the file) when it does not parse."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DamagedFile(path, f"expected a {what} in UTF-8 text, got undecodable bytes") from None
    if not text.strip():
        raise DamagedFile(path, f"expected a {what}, got an empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DamagedFile(path, f"expected a {what}, got invalid JSON at line {exc.lineno} column {exc.colno}") \
            from None


def read_jsonl(path, *, allow_cut_last: bool = True) -> list:
    """The records (one JSON object a line) of the JSON-lines file ``path``.

    A line that does not parse raises :class:`DamagedFile` naming the file and the line, except, with
    ``allow_cut_last``, a last line without its newline: that is a record whose write was interrupted
    (the file is appended one whole line at a time), and it is left out.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DamagedFile(path, "expected JSON lines in UTF-8 text, got undecodable bytes") from None
    lines = text.split("\n")  # the part after the last newline is "" for a complete file
    records = []
    for i, ln in enumerate(lines, start=1):
        last = i == len(lines)
        if not ln.strip():
            if not last:
                raise DamagedFile(path, f"line {i}: expected a JSON record, got a blank line")
            continue
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError:
            if last and allow_cut_last:
                continue  # cut off mid-write
            raise DamagedFile(path, f"line {i}: expected a JSON record, got {ln[:40]!r}") from None
        if not isinstance(rec, dict):
            raise DamagedFile(path, f"line {i}: expected a JSON object, got {type(rec).__name__}")
        records.append(rec)
    return records


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


class folder_lock:
    """``with folder_lock(folder):``: hold ``folder/lock`` while writing into ``folder``.

    The lock file holds the owner's ``{"pid", "host", "since"}``; it appears atomically (written to a
    temporary file, then hard-linked into place, which fails if a lock is already there). A second process
    is refused with :class:`FolderLocked`, naming the owner. A lock left by a process that died (its pid is
    gone on this host) is stale and taken over. A lock that cannot be read is refused as :class:`DamagedFile`.
    """

    def __init__(self, folder, name: str = "lock"):
        self.path = Path(folder) / name
        self.mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}

    def _owner(self):
        advice = "; delete it if no run is writing into this folder"
        try:
            owner = read_json(self.path, "lock (JSON with pid and host)")
        except FileNotFoundError:
            return None
        except DamagedFile as exc:
            raise DamagedFile(self.path, exc.problem + advice) from None
        if not (isinstance(owner, dict) and isinstance(owner.get("pid"), int) and isinstance(owner.get("host"), str)):
            raise DamagedFile(self.path, f"expected a lock with an integer pid and a host, got {str(owner)[:40]!r}"
                                         + advice)
        return owner

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".lock-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(self.mine))
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                    return self
                except FileExistsError:
                    pass
                owner = self._owner()
                if owner is None:
                    continue  # released meanwhile: try again
                if owner["host"] == self.mine["host"] and not _pid_alive(owner["pid"]):
                    if self._owner() == owner:  # stale: its process is gone (re-read: another may have taken it)
                        self.path.unlink(missing_ok=True)
                    continue
                raise FolderLocked(f"{self.path}: another run (pid {owner['pid']} on {owner['host']}) is writing "
                                   f"into {self.path.parent}; wait for it, or delete the lock if that run is gone")
            raise FolderLocked(f"{self.path}: could not take the lock (other runs keep taking it)")
        finally:
            os.unlink(tmp)

    def __exit__(self, *exc):
        try:
            if self._owner() == self.mine:
                self.path.unlink()
        except (DamagedFile, FileNotFoundError):
            pass
        return False
