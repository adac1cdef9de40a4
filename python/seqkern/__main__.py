"""``python -m seqkern bench ...`` (see ``seqkern.bench``), ``python -m seqkern demo ...`` (see
``seqkern.demo``), ``python -m seqkern predict ...`` (see ``seqkern.score``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"bench": "seqkern.bench", "demo": "seqkern.demo", "predict": "seqkern.score"}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: python -m seqkern {" + ",".join(commands) + "} [options]")
        print("  bench   time every kernel against NumPy (and PyTorch / ONNX Runtime if installed)")
        print("  demo    train an LSTM + attention text classifier (--train/--test for your own TSV files)")
        print("  predict score a text corpus of any size with a saved classifier (resumable; --workers N on Dask)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib

    return int(importlib.import_module(commands[argv[0]]).main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
