"""``python -m erts ...``: the command line, also as torchrun starts it (``torchrun ... -m erts train``)."""
import sys

from erts.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
