"""Model files: the .npz archive that ``Sequential.save`` writes and ``load_model`` reads.

One zip member per parameter (``"<layer>.<name>.npy"``) plus ``config.json.npy``, a 0-d string
array holding the JSON config. Both sides resolve a name the way ``numpy.savez`` does: ``.npz``
is appended unless the name already ends with it, so ``save("m")`` and ``load_model("m")`` both
mean ``m.npz``.

Writing goes to a temporary file in the target's folder, flushed to disk, then ``os.replace``-d
over the target: a failed save leaves the previous file as it was and no temporary file behind.

Reading trusts nothing in the file before checking it against the rest of the file. Every
member's .npy header is read from the zip stream (a few KiB inflated at most) and must agree with
the member's size in the zip directory, and that size must be one the member's compressed bytes
can hold (stored: equal; deflated: at most ``_DEFLATE_MAX_RATIO`` times larger). The config's
parameter shapes (``Layer.param_shapes``, computed without allocating) must equal the headers'.
Only then are the layers built and the data inflated, so what loading allocates is bounded by
what the file holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy_format

# Deflate encodes a run of 258 bytes in at least 2 bits, so one compressed byte never inflates to
# more than 1032 bytes; a member whose directory entry claims more is lying about its size.
_DEFLATE_MAX_RATIO = 1032
CONFIG = "config.json"
# What zipfile and zlib raise for damaged archives and members.
_DAMAGED = (zipfile.BadZipFile, EOFError, zlib.error, RuntimeError, NotImplementedError, ValueError)


@contextlib.contextmanager
def _damaged(where: str):
    """Turn zipfile's and zlib's errors for a damaged archive into a ValueError starting ``where``."""
    try:
        yield
    except _DAMAGED as e:
        if isinstance(e, ValueError) and str(e).startswith("load_model: "):
            raise
        raise ValueError(f"{where}: {type(e).__name__}: {e}") from None


def model_file(path) -> str:
    """The file name ``save`` writes and ``load_model`` reads for ``path`` (str or path-like)."""
    path = os.fsdecode(os.fspath(path))
    return path if path.endswith(".npz") else path + ".npz"


def _new_temp(target: str):
    """Create a new, empty temporary file next to ``target``; returns (fd, name). The mode is
    what ``open`` gives a new file (0o666 less the umask)."""
    folder = os.path.dirname(os.path.abspath(target))
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp


def check_writable(path) -> str:
    """Raise OSError unless a model can be saved as ``path`` (the folder exists and takes a new
    file); returns the resolved file name. Creates and removes one empty temporary file."""
    target = model_file(path)
    fd, tmp = _new_temp(target)
    os.close(fd)
    os.unlink(tmp)
    return target


def atomic_write(target: str, write) -> None:
    """Call ``write(fh)`` on a new temporary file next to ``target``, fsync it and rename it over
    ``target``; on any failure the temporary file is removed and ``target`` is left as it was."""
    fd, tmp = _new_temp(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_npz(path, arrays: dict) -> str:
    """``numpy.savez`` of ``arrays`` to ``model_file(path)``, atomically; returns the file name."""
    target = model_file(path)
    atomic_write(target, lambda fh: np.savez(fh, **arrays))
    return target


class _Member:
    """One .npy member, its header checked against its zip directory entry."""

    def __init__(self, archive: "ModelArchive", info: zipfile.ZipInfo):
        self.info, self.key = info, info.filename[: -len(".npy")]
        where = f"load_model: {archive.path}: member {info.filename!r}"
        if info.compress_type == zipfile.ZIP_STORED:
            plausible = info.file_size == info.compress_size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            plausible = info.file_size <= _DEFLATE_MAX_RATIO * info.compress_size + 64
        else:
            raise ValueError(f"{where} uses zip compression method {info.compress_type}; "
                             "model files are stored or deflated")
        if not plausible:
            raise ValueError(f"{where} claims {info.file_size} bytes, more than its {info.compress_size} "
                             "compressed bytes can hold")
        with _damaged(f"{where} is not a valid .npy array"), archive.zip.open(info) as fh:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            self.offset = fh.tell()
        self.where = where
        if dtype.hasobject:
            raise ValueError(f"{where} holds Python objects; model files hold numbers and text only")
        self.shape, self.fortran, self.dtype = shape, fortran, dtype
        self.nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if self.offset + self.nbytes != info.file_size:
            raise ValueError(f"{where}: its header declares {dtype} {shape} ({self.nbytes} bytes of data), "
                             f"but it holds {info.file_size - self.offset}")

    def read(self, archive: "ModelArchive") -> np.ndarray:
        with _damaged(f"{self.where} is damaged"), archive.zip.open(self.info) as fh:
            fh.read(self.offset)
            data = fh.read(self.nbytes)
        if len(data) != self.nbytes:
            raise ValueError(f"{self.where} is damaged: {len(data)} of its {self.nbytes} bytes of data are there")
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape, order="F" if self.fortran else "C")


class ModelArchive:
    """An open model file: ``config`` (the parsed JSON) and its checked members."""

    def __init__(self, path):
        self.path = model_file(path)
        with _damaged(f"load_model: {self.path} is not a model file (a .npz archive)"):
            self.zip = zipfile.ZipFile(self.path)
        try:
            self.members = {}
            for info in self.zip.infolist():
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"load_model: {self.path}: member {info.filename!r} is not a .npy array")
                member = _Member(self, info)
                self.members[member.key] = member
            self.config = self._read_config()
        except BaseException:
            self.zip.close()
            raise
        self.unused = set(self.members) - {CONFIG}

    def _read_config(self) -> dict:
        member = self.members.get(CONFIG)
        if member is None:
            raise ValueError(f"load_model: {self.path} has no {CONFIG}: not a file written by Sequential.save")
        if member.dtype.kind != "U" or member.shape != ():
            raise ValueError(f"load_model: {self.path}: {CONFIG} must be a 0-d string array, "
                             f"got {member.dtype} {member.shape}")
        data = member.read(self)
        try:
            config = json.loads(str(data[()]))
        except (ValueError, RecursionError) as e:
            raise ValueError(f"load_model: {self.path}: {CONFIG} is not valid JSON: {e}") from None
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list) or not all(
                isinstance(c, dict) for c in config["layers"]):
            raise ValueError(f"load_model: {self.path}: {CONFIG} must be an object with a list of layer objects")
        return config

    def header(self, key: str, shape: tuple) -> _Member:
        """The member of parameter ``key``, which the config says has ``shape``."""
        member = self.members.get(key)
        if member is None:
            raise ValueError(f"load_model: {self.path}: parameter {key} {shape} is missing from the file")
        if member.shape != tuple(shape):
            raise ValueError(f"load_model: {self.path}: parameter {key} has shape {member.shape} in the file, "
                             f"but the config declares {tuple(shape)}")
        if member.dtype.kind != "f":
            raise ValueError(f"load_model: {self.path}: parameter {key} must be floating point, got {member.dtype}")
        self.unused.discard(key)
        return member

    def read(self, key: str) -> np.ndarray:
        return self.members[key].read(self)

    def close(self):
        self.zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
