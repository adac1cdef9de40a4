"""``python -m seqkern.bench``: the same as ``python -m seqkern bench``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
