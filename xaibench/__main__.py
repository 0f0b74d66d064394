"""``python -m xaibench``: the same as the ``xaibench`` command."""
import sys

from xaibench.cli import main

sys.exit(main())
