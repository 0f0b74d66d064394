"""The ``xaibench`` command: parse arguments, call the library, print.

User errors print one clear line and exit 2 (``--debug`` shows the traceback);
failed cells make ``run`` exit 1 after the rest of the run has finished.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Sequence

from xaibench import __version__
from xaibench.errors import XaibenchError, did_you_mean
from xaibench.plugins import Harness, load_harness
from xaibench.store import DEFAULT_STORE, Store
from xaibench.suite import Suite, load_suite


def resolve_suite(harness: Harness, name_or_path: str) -> Suite:
    """A registered suite name, or a path to a YAML file."""
    if name_or_path in harness.suites:
        return load_suite(harness.suites.get(name_or_path).path)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise XaibenchError(f"suite file {path} does not exist")
        return load_suite(path)
    known = ", ".join(harness.suites.names()) or "none"
    raise XaibenchError(f"unknown suite {name_or_path!r}{did_you_mean(name_or_path, harness.suites.names())}; "
                        f"built-in suites: {known}; or give a path to a YAML file")


def _cmd_plugins(args: argparse.Namespace, harness: Harness) -> int:
    kinds = ("datasets", "models", "methods", "metrics", "suites")
    if args.json:
        out: dict[str, object] = {}
        for kind in kinds:
            items = []
            for e in harness.registry(kind):
                info = harness.plugins.get(e.plugin)
                item = {"name": e.spec.name, "plugin": e.plugin,
                        "distribution": info.distribution if info else None,
                        "version": info.version if info else None}
                for attr in ("category", "higher_is_better", "modality", "has_masks", "requires_mask", "citation",
                             "description"):
                    if hasattr(e.spec, attr):
                        item[attr] = getattr(e.spec, attr)
                if hasattr(e.spec, "modalities"):
                    item["modalities"] = sorted(e.spec.modalities)
                items.append(item)
            out[kind] = items
        out["broken"] = [{"plugin": k, "error": v.splitlines()[0]} for k, v in sorted(harness.broken.items())]
        print(json.dumps(out, indent=2))
        return 0
    for kind in kinds:
        print(f"{kind}:")
        for e in harness.registry(kind):
            info = harness.plugins.get(e.plugin)
            extra = ""
            if hasattr(e.spec, "category"):
                extra = f" [{e.spec.category}, {'higher' if e.spec.higher_is_better else 'lower'} is better]"
            elif hasattr(e.spec, "modalities"):
                extra = f" [{', '.join(sorted(e.spec.modalities))}]"
            provider = f"{info.distribution} {info.version}" if info else e.plugin
            print(f"  {e.spec.name:<28} {provider} ({e.plugin}){extra}")
    for name, why in sorted(harness.broken.items()):
        print(f"warning: plugin {name!r} failed to load: {why.splitlines()[0]}", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace, harness: Harness) -> int:
    from xaibench import leaderboard
    from xaibench.runner import RunOptions, Runner

    suite = resolve_suite(harness, args.suite)
    data_root = args.data_root or os.environ.get("XAIBENCH_DATA")
    options = RunOptions(data_root=data_root, device=args.device, limit=args.limit, batch_size=args.batch_size,
                         progress=not args.no_progress, fail_fast=args.fail_fast)
    with Store(args.store) as store:
        runner = Runner(harness, suite, store, options)
        cells = runner.plan()
        summary = runner.run(cells)
        for reason in summary.skip_reasons:
            print(f"skipped: {reason}")
        if summary.computed == 0 and not summary.failed:
            print(f"all {summary.reused} cells of suite {suite.name!r} were already in {args.store}: nothing recomputed")
        else:
            print(f"computed {summary.computed} cells ({summary.maps_computed} saliency maps, "
                  f"{summary.models_trained} models trained), reused {summary.reused} from {args.store}")
        path = leaderboard.write(store, suite.name, args.out)
        print(f"leaderboard written to {path}")
    if summary.failed:
        print(f"{len(summary.failed)} cell(s) failed (stored with their errors; the rest of the run completed):",
              file=sys.stderr)
        for line in summary.failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _suite_name(harness: Harness, name_or_path: str) -> str:
    return resolve_suite(harness, name_or_path).name if Path(name_or_path).exists() else name_or_path


def _cmd_leaderboard(args: argparse.Namespace, harness: Harness) -> int:
    from xaibench import leaderboard

    name = _suite_name(harness, args.suite)
    _require_store(args.store)
    with Store(args.store) as store:
        if args.check:
            stale, path = leaderboard.is_stale(store, name, args.out)
            if stale:
                print(f"{path} is stale: it differs from what the store renders; "
                      f"regenerate with `xaibench leaderboard --suite {name} --store {args.store} --out {args.out}`",
                      file=sys.stderr)
                return 1
            print(f"{path} is up to date")
            return 0
        print(f"leaderboard written to {leaderboard.write(store, name, args.out)}")
    return 0


def _cmd_results(args: argparse.Namespace, harness: Harness) -> int:
    from xaibench import leaderboard

    _require_store(args.store)
    with Store(args.store) as store:
        sys.stdout.write(leaderboard.export(store, _suite_name(harness, args.suite), args.format))
    return 0


def _require_store(path: str) -> None:
    if not Path(path).exists():
        raise XaibenchError(f"no results store at {path}; run `xaibench run` first or pass --store")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xaibench", description="Benchmark saliency methods on CNNs.")
    p.add_argument("--version", action="version", version=f"xaibench {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("plugins", help="list registered datasets, models, methods, metrics and suites")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=_cmd_plugins)

    sp = sub.add_parser("run", help="run a suite and write its leaderboard")
    sp.add_argument("--suite", required=True, help="built-in suite name or path to a YAML suite")
    sp.add_argument("--store", default=DEFAULT_STORE)
    sp.add_argument("--data-root", default=None, help="root of real datasets (default: $XAIBENCH_DATA)")
    sp.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    sp.add_argument("--limit", type=int, default=None, help="at most N samples per dataset")
    sp.add_argument("--batch-size", type=int, default=None, help="evaluation batch size (default: the suite's)")
    sp.add_argument("--out", default="leaderboards", help="directory of the markdown leaderboards")
    sp.add_argument("--fail-fast", action="store_true", help="stop at the first failed cell")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cmd_run)

    sp = sub.add_parser("leaderboard", help="render a suite's leaderboard from the store")
    sp.add_argument("--suite", required=True)
    sp.add_argument("--store", default=DEFAULT_STORE)
    sp.add_argument("--out", default="leaderboards")
    sp.add_argument("--check", action="store_true", help="exit 1 when the file on disk is stale")
    sp.set_defaults(func=_cmd_leaderboard)

    sp = sub.add_parser("results", help="export per-cell results")
    sp.add_argument("--suite", required=True)
    sp.add_argument("--store", default=DEFAULT_STORE)
    sp.add_argument("--format", choices=("json", "csv"), default="json")
    sp.set_defaults(func=_cmd_results)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        harness = load_harness()
        return args.func(args, harness)
    except XaibenchError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: every finished cell is saved in the store; run the same command again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
