"""Fetching real data sets: a cache folder, checksums, atomic writes, and no surprise network access.

lnedu never downloads behind a reader's back: notebooks and tests use a local copy or the cache when one
is there, and an embedded default otherwise. A download happens only when asked for, with
``download=True``, the environment variable ``LNEDU_DOWNLOAD=1``, or ``python -m lnedu data fetch NAME``.
Every downloaded file is checked against its published checksum (MD5 or SHA-1) before it is moved into
the cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataUnavailable", "DataCorrupt", "RealDataSet", "cache_dir", "file_hash", "md5sum", "fetch",
           "download_allowed"]


class DataUnavailable(RuntimeError):
    """A real data set is neither on disk nor allowed/able to be downloaded."""


class DataCorrupt(DataUnavailable, ValueError):
    """A data file is there but damaged (wrong checksum, truncated, not the format): refused, in one line that
    names it. The ``source='auto'`` loaders never fall back to an embedded default on this: a damaged copy is
    a problem to fix (delete it and fetch it again), not a reason to quietly train on something else.
    Also a ``ValueError``, which is what a malformed file raised before this class existed."""


def damaged(path, problem: str, *, refetch: str | None = None, todo: str | None = None) -> DataCorrupt:
    """The one-line refusal of a damaged file: ``"{path}: {problem}; {what to do}"``. ``refetch``: how to
    download it again; ``todo``: another remedy ("" for none); default: replace it with a complete copy."""
    if refetch:
        todo = f"delete it and download it again ({refetch})"
    elif todo is None:
        todo = "replace it with a complete copy"
    msg = f"{path}: {problem}" + (f"; {todo}" if todo else "")
    return DataCorrupt(" ".join(msg.splitlines()))


@dataclass(frozen=True)
class RealDataSet:
    """A real data set an experiment's ``paper`` preset needs: what it is, where it comes from, how to get it.

    A loader asked for the real set explicitly (``source="mnist"``, not ``"auto"``) that cannot find it raises
    ``SET.missing(looked_in=[...])``: one line naming the set, the folders searched, its origin and how to get
    it (``python -m lnedu data fetch NAME`` or the manual step), so a paper-size run never trains on a stand-in.
    """

    name: str  # short id: "mnist", "text8", "iam_ondb"
    what: str  # in words, with its size: "MNIST handwritten digits (60,000 + 10,000 28x28 images)"
    source: str  # who published it and where: "LeCun, Cortes & Burges; https://yann.lecun.com/exdb/mnist/"
    get: str  # how to get it: "`python -m lnedu data fetch mnist`", or the manual steps in one sentence
    files: str  # what the folder (or file) passed with --data must hold

    def missing(self, looked_in=()) -> DataUnavailable:
        """The refusal: a :class:`DataUnavailable` whose one-line message says all of the above."""
        places = [str(p) for p in looked_in if p not in (None, "")] or [str(cache_dir())]
        msg = (f"{self.name}: {self.what} is needed and was not found in {', '.join(places)}; it comes from "
               f"{self.source}; get it with {self.get}, or pass its folder with --data PATH (it must hold "
               f"{self.files})")
        return DataUnavailable(" ".join(msg.splitlines()))


def cache_dir() -> Path:
    """Where data sets are cached: ``$LNEDU_DATA`` or ``~/.cache/lnedu``."""
    return Path(os.environ.get("LNEDU_DATA") or Path.home() / ".cache" / "lnedu")


def download_allowed(download: bool | None = None) -> bool:
    """``download`` if given, else whether ``$LNEDU_DOWNLOAD`` is set to 1/true/yes."""
    if download is not None:
        return bool(download)
    return os.environ.get("LNEDU_DOWNLOAD", "").strip().lower() in ("1", "true", "yes")


def file_hash(path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """Hex digest of a file with ``algorithm`` (any name :func:`hashlib.new` knows: 'md5', 'sha1', ...)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def md5sum(path) -> str:
    return file_hash(path, "md5")


def fetch(url: str, dest, checksum: str, *, algorithm: str = "md5", download: bool | None = None,
          timeout: float = 30.0, progress: bool = True, refetch: str | None = None) -> Path:
    """Return ``dest`` holding the file at ``url`` whose ``algorithm`` digest is ``checksum``; download it
    if allowed.

    An existing ``dest`` is re-checked on every call and used only with the right checksum; otherwise it is
    refused with :class:`DataCorrupt` (``refetch`` says how to download it again, e.g. the CLI command).
    A download goes to a temporary file beside ``dest``, is checked, and only then renamed: an interrupted
    or corrupt download never leaves a file that looks complete.
    """
    dest = Path(dest)
    if dest.exists():
        got = file_hash(dest, algorithm)
        if got == checksum:
            return dest
        raise damaged(dest, f"checksum mismatch (expected {algorithm} {checksum}, got {got}: damaged or incomplete)",
                      refetch=refetch or "download=True or `python -m lnedu data fetch`")
    if not download_allowed(download):
        raise DataUnavailable(
            f"{dest.name} is not in {dest.parent} and downloading was not requested "
            "(pass download=True, set LNEDU_DOWNLOAD=1, or run `python -m lnedu data fetch`)"
        )
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                for block in iter(lambda: r.read(1 << 16), b""):
                    f.write(block)
                    bar.update(len(block))
        got = file_hash(tmp, algorithm)
        if got != checksum:
            raise DataUnavailable(f"{url}: checksum mismatch (expected {algorithm} {checksum}, got {got})")
        os.replace(tmp, dest)
    except OSError as exc:
        raise DataUnavailable(f"{url}: download failed ({exc})") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
