"""``python -m xaibench``: the same as the ``xaibench`` command."""
import sys

from xaibench.api.cli import main

sys.exit(main())
