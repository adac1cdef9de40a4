"""``python -m seqkern predict``: score a text corpus of any size with a saved text classifier.

    python -m seqkern predict --model sst2.npz --input corpus.txt --output scores.tsv
    python -m seqkern predict --model sst2.npz --input reviews.tsv --text-column 1 --header \\
        --output scores.tsv --workers 2

Input: one text per line (``.txt``, or any name with ``--format text``), or tab-separated
columns (``.tsv``/``--format tsv``) with the text in column ``--text-column`` (0-based). Output:
a header ``id<TAB>label<TAB>p_<label>...`` and one row per input line, in input order; ``id``
is the line's number in the input (1-based, a header line counts), so ``sed -n '<id>p'`` shows
the line that was scored. Probabilities are printed with 6 decimals.

How it runs
-----------
The input is cut into partitions of ``--partition-size`` bytes, each extended to the end of the
line it cuts (a line belongs to the partition its first byte lies in), so memory is bounded by
the partition size times the partitions in flight (two per worker), never by the input size.
Each partition's rows go to ``<output>.parts/part-NNNNN.tsv``: written to a temporary file,
flushed to disk (fsync) and renamed into place, so a part file is complete or absent.
``<output>.parts/manifest.json`` records what the parts were computed from: the input's path,
size and modification time, the partitioning, the columns, the batch size and the SHA-256 of the
model file. A rerun with the same arguments skips the parts already there (after a crash, a
``kill -9`` or Ctrl-C); a rerun whose input, model or partitioning differ refuses to mix the two
unless ``--restart`` is given. A lock (``flock`` on ``<output>.parts/lock``, released by the
kernel when the process dies) stops two runs from writing one output. When every part is there
they are concatenated, again through a temporary file and a rename, and the parts folder is
removed: the output is complete or absent, and identical, byte for byte, whether or not the run
was interrupted, and whatever ran it.

``--workers 1`` (the default) scores in this process. ``--workers N`` starts a local Dask
cluster (``distributed.LocalCluster``) of N single-threaded worker processes, each running the
kernels on ``--threads`` threads (default: the CPUs divided by N, at least 1), with OpenMP and
BLAS pools sized the same way so the cores are not oversubscribed; ``--scheduler ADDRESS`` uses
a running Dask cluster instead. This process reads the partitions and sends their bytes with
the tasks (workers need no access to the input), ships the predictor once per worker, and
writes the parts as results arrive; a worker that dies has its partitions run again elsewhere.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sys
import time

__all__ = ["main", "partition_bounds", "score_partition"]

_MANIFEST_VERSION = 1
_READ_CHUNK = 1 << 16


def _fail(msg: str) -> int:
    print(f"predict: {msg}", file=sys.stderr)
    return 2


def _align(fh, offset: int, size: int) -> int:
    """The first line start at or after ``offset`` (0 stays 0, anything past the end is ``size``)."""
    if offset <= 0:
        return 0
    if offset >= size:
        return size
    fh.seek(offset - 1)
    pos = offset - 1
    while True:
        chunk = fh.read(_READ_CHUNK)
        if not chunk:
            return size
        i = chunk.find(b"\n")
        if i >= 0:
            return pos + i + 1
        pos += len(chunk)


def partition_bounds(path: str, partition_size: int) -> list[tuple[int, int]]:
    """Byte ranges ``(start, end)`` of the partitions of ``path``: ``ceil(size / partition_size)``
    ranges that together hold every line exactly once (a range may be empty when one line is
    longer than a partition). Reads one line per partition, never the whole file."""
    size = os.path.getsize(path)
    n = -(-size // partition_size)
    with open(path, "rb") as fh:
        cuts = [_align(fh, k * partition_size, size) for k in range(n)] + [size]
    return [(cuts[k], cuts[k + 1]) for k in range(n)]


def read_partition(path: str, start: int, end: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(end - start)


def score_partition(predictor, data: bytes, *, fmt: str = "text", text_column: int = 0, skip_first: bool = False,
                    batch_size: int = 256, threads: int | None = None, where: str = "input", offset: int = 0) -> bytes:
    """The part file of one partition: a first line ``#lines<TAB>N`` (input lines it covers,
    a skipped header included) and one ``local_line<TAB>label<TAB>p...`` row per scored line.
    ``where`` and ``offset`` (the partition's first byte in the input) locate errors."""
    if threads is not None:
        from ._runtime import set_num_threads

        set_num_threads(threads)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    texts, local = [], []
    pos = offset
    for i, raw in enumerate(lines):
        start, pos = pos, pos + len(raw) + 1
        if i == 0 and skip_first:
            continue
        try:
            line = raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"predict: {where}: the line at byte {start} is not valid UTF-8 "
                             f"(byte {start + e.start}: {raw[e.start:e.start + 1]!r})") from None
        if fmt == "tsv":
            fields = line.split("\t")
            if text_column >= len(fields):
                raise ValueError(f"predict: {where}: the line at byte {start} has {len(fields)} tab-separated "
                                 f"column(s); --text-column {text_column} needs at least {text_column + 1}")
            line = fields[text_column]
        texts.append(line)
        local.append(i)
    proba = predictor.predict_proba(texts, batch_size=batch_size)
    names = predictor.labels
    out = [f"#lines\t{len(lines)}\n"]
    for i, row in zip(local, proba.tolist()):
        best = max(range(len(row)), key=row.__getitem__)
        out.append(f"{i}\t{names[best]}\t" + "\t".join(f"{p:.6f}" for p in row) + "\n")
    return "".join(out).encode("utf-8")


def _score_task(predictor, data, kwargs):
    """One Dask task: a partition's bytes in, its part file's bytes out."""
    return score_partition(predictor, data, **kwargs)


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: str, write) -> None:
    """``atomic_write`` (nn/_files.py), then an fsync of the folder so the rename itself is durable."""
    from .nn._files import atomic_write

    atomic_write(path, write)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Lock:
    """An exclusive ``flock`` on ``path``; the kernel drops it when the process ends, however."""

    def __init__(self, path: str):
        import fcntl

        self.fh = open(path, "a+")
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "unknown"
            self.fh.close()
            raise RuntimeError(f"another run (pid {holder}) is writing this output; its lock is {path}") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()

    def release(self):
        self.fh.close()


def _part_name(parts: str, k: int) -> str:
    return os.path.join(parts, f"part-{k:05d}.tsv")


def _in_process(todo, bounds, path, predictor, kwargs, threads):
    from ._runtime import set_num_threads

    if threads is not None:
        set_num_threads(threads)
    for k in todo:
        start, end = bounds[k]
        data = read_partition(path, start, end)
        yield k, score_partition(predictor, data, offset=start, skip_first=kwargs["skip_first"] and k == 0,
                                 **{a: v for a, v in kwargs.items() if a != "skip_first"})


def _on_dask(todo, bounds, path, predictor, kwargs, threads, workers, scheduler):
    """Score the partitions ``todo`` on a Dask cluster; yields ``(k, part bytes)`` as they finish."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        env = {v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               env=env)
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
            shipped = client.scatter(predictor, broadcast=True, hash=False)
            run = secrets.token_hex(4)
            in_flight = as_completed()
            pending = iter(todo)

            def submit_next():
                k = next(pending, None)
                if k is None:
                    return False
                start, end = bounds[k]
                task = dict(kwargs, skip_first=kwargs["skip_first"] and k == 0, offset=start, threads=threads)
                fut = client.submit(_score_task, shipped, read_partition(path, start, end), task,
                                    key=f"seqkern-predict-{run}-{k}", pure=False)
                fut.partition = k
                in_flight.add(fut)
                return True

            for _ in range(2 * n_workers):
                if not submit_next():
                    break
            for fut in in_flight:
                k = fut.partition
                result = fut.result()
                fut.release()
                submit_next()
                yield k, result
    finally:
        if cluster is not None:
            cluster.close()


def _concatenate(parts: str, n: int, output: str, header: str) -> int:
    """Write the final output from the part files; returns the number of rows."""
    rows = 0

    def write(out):
        nonlocal rows
        out.write(header.encode("utf-8"))
        first_line = 1
        for k in range(n):
            with open(_part_name(parts, k), "rb") as fh:
                head = fh.readline()
                if not head.startswith(b"#lines\t"):
                    raise ValueError(f"predict: {_part_name(parts, k)} is not a part file; rerun with --restart")
                count = int(head.split(b"\t")[1])
                for line in fh:
                    local, rest = line.split(b"\t", 1)
                    out.write(b"%d\t" % (first_line + int(local)) + rest)
                    rows += 1
                first_line += count

    _atomic_write(output, write)
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m seqkern predict", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model file (.npz) saved with its vocabulary in model.extra")
    p.add_argument("--input", required=True, help="corpus: one text per line (.txt) or tab-separated (.tsv)")
    p.add_argument("--output", required=True, help="scores: id, label and one probability per class (TSV)")
    p.add_argument("--format", choices=("text", "tsv"), help="input format (default: tsv for .tsv names, else text)")
    p.add_argument("--text-column", type=int, default=0, help="TSV column holding the text, 0-based (default 0)")
    p.add_argument("--header", action="store_true", help="the input's first line is a header: not scored")
    p.add_argument("--batch-size", type=int, default=256, help="rows per kernel call (default 256)")
    p.add_argument("--workers", type=int, default=1,
                   help="1: score in this process (default); N > 1: a local Dask cluster of N processes")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786) to score on")
    p.add_argument("--threads", type=int, help="kernel threads per worker (default: CPUs / workers, at least 1)")
    p.add_argument("--partition-size", type=int, default=1 << 20, help="bytes of input per partition (default 1 MiB)")
    p.add_argument("--restart", action="store_true", help="discard parts left by an earlier run with other inputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("batch_size", "workers", "partition_size", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return _fail(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.text_column < 0:
        return _fail(f"--text-column must be >= 0, got {args.text_column}")
    fmt = args.format or ("tsv" if args.input.lower().endswith(".tsv") else "text")
    if fmt == "text" and args.text_column:
        return _fail(f"--text-column {args.text_column} needs TSV input (--format tsv or a .tsv name)")
    if not os.path.isfile(args.input):
        return _fail(f"--input {args.input!r} is not a file")
    model_path = args.model if os.path.isfile(args.model) or not os.path.isfile(args.model + ".npz") else args.model + ".npz"
    if not os.path.isfile(model_path):
        return _fail(f"--model {args.model!r} is not a file")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        return _fail(f"--output {args.output!r}: folder {out_dir!r} does not exist")
    distributed = args.workers > 1 or args.scheduler is not None
    if distributed:
        try:
            import dask  # noqa: F401
            import distributed as _distributed  # noqa: F401
        except ImportError:
            what = f"--workers {args.workers}" if args.scheduler is None else "--scheduler"
            return _fail(f"{what} runs on Dask, which is not installed: pip install 'seqkern[dask]' "
                         "(dask[dataframe] and distributed), or use --workers 1")
    threads = args.threads
    if threads is None and args.scheduler is None:
        threads = max(1, (os.cpu_count() or 1) // args.workers)
    elif threads is None:
        threads = 1

    from .nn.predict import Predictor

    try:
        predictor = Predictor.load(model_path, batch_size=args.batch_size)
    except (OSError, ValueError) as e:
        return _fail(str(e))
    if not predictor.labels_known:
        print(f"predict: {model_path} names no labels (model.extra['classes']); the label column holds class ids",
              file=sys.stderr)

    st = os.stat(args.input)
    bounds = partition_bounds(args.input, args.partition_size)
    manifest = {"version": _MANIFEST_VERSION, "input": os.path.abspath(args.input), "input_size": st.st_size,
                "input_mtime_ns": st.st_mtime_ns, "partition_size": args.partition_size, "partitions": len(bounds),
                "format": fmt, "text_column": args.text_column, "header": args.header, "batch_size": args.batch_size,
                "model_sha256": _sha256(model_path), "labels": predictor.labels}
    parts = args.output + ".parts"
    os.makedirs(parts, exist_ok=True)
    try:
        lock = _Lock(os.path.join(parts, "lock"))
    except RuntimeError as e:
        return _fail(f"--output {args.output!r}: {e}")
    try:
        manifest_path = os.path.join(parts, "manifest.json")
        old = None
        if os.path.exists(manifest_path):
            try:
                with open(manifest_path) as fh:
                    old = json.load(fh)
            except ValueError:
                old = {}
        if old is not None and old != manifest:
            if not args.restart:
                changed = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
                return _fail(f"{parts} holds parts of another run (changed: {', '.join(changed)}); "
                             "rerun with --restart to discard them")
            old = None
        for name in os.listdir(parts):
            if name.endswith(".tmp") or (old is None and name.startswith("part-")):
                os.unlink(os.path.join(parts, name))
        stale = f".{os.path.basename(args.output)}."
        for name in os.listdir(out_dir):  # a concatenation killed before its rename
            if name.startswith(stale) and name.endswith(".tmp") and len(name) == len(stale) + 16:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(out_dir, name))
        if old is None:
            _atomic_write(manifest_path, lambda fh: fh.write(json.dumps(manifest, indent=1).encode()))
        todo = [k for k in range(len(bounds)) if not os.path.exists(_part_name(parts, k))]
        done = len(bounds) - len(todo)
        kwargs = {"fmt": fmt, "text_column": args.text_column, "skip_first": args.header,
                  "batch_size": args.batch_size, "where": args.input}
        from .nn.model import _Progress

        bar = _Progress(len(bounds), "predict", not args.no_progress, unit="part", start=done)
        t0, lines = time.perf_counter(), 0
        if distributed:
            results = _on_dask(todo, bounds, args.input, predictor, kwargs, threads, args.workers, args.scheduler)
        else:
            results = _in_process(todo, bounds, args.input, predictor, kwargs, threads)
        try:
            for k, data in results:
                _atomic_write(_part_name(parts, k), lambda fh, data=data: fh.write(data))
                lines += data.count(b"\n") - 1
                bar.update(1, lines_per_s=f"{lines / max(time.perf_counter() - t0, 1e-9):,.0f}")
        except ValueError as e:
            bar.close()
            if not any(name.startswith("part-") for name in os.listdir(parts)):
                shutil.rmtree(parts, ignore_errors=True)  # nothing to resume
            return _fail(str(e).removeprefix("predict: "))
        finally:
            results.close()
        bar.close()
        header = "id\tlabel\t" + "\t".join(f"p_{lab}" for lab in predictor.labels) + "\n"
        _concatenate(parts, len(bounds), args.output, header)
    finally:
        lock.release()
    shutil.rmtree(parts, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
