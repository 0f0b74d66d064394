"""CI: the medical board the README's first command regenerated equals the committed one (issue 44, item 2).

A board does not depend on the machine's thread count (docs/leaderboards.md, "The same board on any
machine"), so CI's run must reproduce the committed ``leaderboards/medical.json`` (compared as content,
with :func:`xaibench.leaderboard.compare.differences`) and ``medical.md`` (byte for byte). A difference
only in the library versions (a new numpy, a new torch) is printed as a warning, not a failure: the
board's provenance names those versions as something that can change it, and the numbers are
compared all the same. Exit 1, naming what moved, on any other difference.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from xaibench.leaderboard.compare import differences


def committed(path: str) -> str:
    return subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True, text=True, check=True).stdout


def main() -> int:
    moved = differences(committed("leaderboards/medical.json"),
                        Path("leaderboards/medical.json").read_text(encoding="utf-8"))
    versions = [line for line in moved if line.startswith("header.versions.")]
    other = [line for line in moved if line not in versions]
    if other:
        print("the regenerated medical board differs from the committed one (file: committed, store: this run):",
              *other, sep="\n  ", file=sys.stderr)
        return 1
    if versions:
        print("warning: the committed medical board was made with other library versions; its numbers are the "
              "same here:", *versions, sep="\n  ", file=sys.stderr)
        return 0
    if Path("leaderboards/medical.md").read_text(encoding="utf-8") != committed("leaderboards/medical.md"):
        print("leaderboards/medical.md differs from the committed one though medical.json does not: regenerate it "
              "with `xaibench leaderboard --suite medical`", file=sys.stderr)
        return 1
    print("the regenerated medical board equals the committed one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
