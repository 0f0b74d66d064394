"""The ``xaibench`` command: parse arguments, call the library, print.

User errors print one clear line and exit 2 (``--debug`` shows the traceback);
failed cells make ``run`` exit 1 after the rest of the run has finished.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from xaibench.contract import validate
from xaibench.base.version import __version__
from xaibench.api import resolve_suite, run_suite
from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import Harness, load_harness
from xaibench.storage.store import DEFAULT_STORE, Store

if TYPE_CHECKING:
    from xaibench.suites.suite import Suite


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
    from xaibench.leaderboard.publish import publish_run
    from xaibench.running.runner import RunOptions

    suite = _suite(harness, args)
    options = RunOptions(**_data_options(args), device=args.device, limit=args.limit, batch_size=args.batch_size,
                         progress=not args.no_progress, fail_fast=args.fail_fast, cell_timeout=args.cell_timeout,
                         autocast=args.autocast, executor=args.executor, workers=args.workers, address=args.address)
    with _results_store(args.store) as store:
        results = run_suite(harness, suite, store, options)
        runner, summary = results.runner, results.summary
        for reason in summary.skip_reasons:
            print(f"skipped: {reason}")
        if summary.computed == 0 and not summary.failed:
            print(f"all {summary.reused} cells of suite {suite.name!r} were already in {args.store}: nothing recomputed")
        else:
            print(f"computed {summary.computed} cells ({summary.maps_computed} saliency maps, "
                  f"{summary.models_trained} models trained), reused {summary.reused} from {args.store}")
        for line, to_stderr in publish_run(store, suite.name, args.out, None if args.no_figures else runner):
            print(line, file=sys.stderr if to_stderr else sys.stdout)
    if summary.failed:
        print(f"{len(summary.failed)} cell(s) failed (stored with their errors; the rest of the run completed):",
              file=sys.stderr)
        for line in summary.failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _cmd_train(args: argparse.Namespace, harness: Harness) -> int:
    from tabulate import tabulate

    from xaibench.running.runner import RunOptions, RunSummary, Runner

    suite = _suite(harness, args)
    options = RunOptions(**_data_options(args), device=args.device, progress=False)
    summary = RunSummary()
    with _results_store(args.store) as store:
        rows = Runner(harness, suite, store, options).train_models(summary)
    columns = ("accuracy", "precision", "recall", "f1", "majority", "dice", "iou", "n")  # a segmenter: Dice, IoU
    print(tabulate([[d, m, *(e.get(k) for k in columns)] for d, m, e in rows],
                   headers=["dataset", "model", "accuracy", "precision", "recall", "F1", "majority", "Dice", "IoU",
                            "n test"],
                   floatfmt=".3f"))
    print(f"{summary.models_trained} model(s) trained, {len(rows) - summary.models_trained} loaded from the cache "
          f"or a checkpoint; test-split evaluations stored in {args.store}")
    return 0


def _suite(harness: Harness, args: argparse.Namespace) -> Suite:
    """``--suite`` with the values of every ``--set KEY=VALUE`` on it (:mod:`xaibench.suites.overrides`)."""
    from xaibench.suites.overrides import parse_assignments

    return resolve_suite(harness, args.suite, parse_assignments(args.set))


def _suite_name(harness: Harness, name_or_path: str) -> str:
    return resolve_suite(harness, name_or_path).name if Path(name_or_path).exists() else name_or_path


def _cmd_leaderboard(args: argparse.Namespace, harness: Harness) -> int:
    from xaibench import leaderboard

    if args.suite is None:
        if not args.index:
            raise XaibenchError("give --suite NAME (one leaderboard) or --index (the leaderboards/README.md index)")
        if args.check:  # the index renders from the <suite>.json files in --out: no store needed
            return _report_problems(leaderboard.index_problems(args.out), f"{args.out}/README.md", args)
        print(f"index written to {leaderboard.write_index(args.out)}")
        return 0
    _require_store(args.store)
    with Store(args.store) as store:
        name = _suite_name(harness, args.suite)
        if args.format == "json":
            sys.stdout.write(leaderboard.to_json(store, name))
            return 0
        if args.check:
            return _report_problems(leaderboard.problems(store, name, args.out), f"{args.out}/{name}.md", args)
        print(f"leaderboard written to {leaderboard.write(store, name, args.out)}")
    return 0


def _report_problems(problems: list[str], what: str, args: argparse.Namespace) -> int:
    if not problems:
        print(f"{what} is up to date")
        return 0
    for line in problems:
        print(line, file=sys.stderr)
    print(f"regenerate with `xaibench run --suite NAME --store {args.store} --out {args.out}` for each suite",
          file=sys.stderr)
    return 1


def _cmd_explain(args: argparse.Namespace, harness: Harness) -> int:
    from xaibench.figures.overlay import explain_overlay
    from xaibench.running.runner import RunOptions, Runner

    suite = _suite(harness, args)
    with _results_store(args.store) as store:
        runner = Runner(harness, suite, store, RunOptions(**_data_options(args), device=args.device, progress=False))
        path = explain_overlay(runner, args.method, args.sample, args.output, args.dataset, args.model)
    print(f"overlay written to {path}")
    return 0


def _cmd_results(args: argparse.Namespace, harness: Harness) -> int:
    from xaibench import leaderboard

    _require_store(args.store)
    with Store(args.store) as store:
        sys.stdout.write(leaderboard.export(store, _suite_name(harness, args.suite), args.format))
    return 0


@contextmanager
def _results_store(path: str) -> Iterator[Store]:
    """The store at ``path``; one this command created is removed again when no run was planned in it,
    whether the command failed (a mistake must not leave an empty store behind) or never runs a suite
    (``explain``: a later ``results`` must not find an empty store and report it has no results)."""
    store_path = Path(path)
    created = [p for p in (store_path.parent, *store_path.parent.parents) if not p.exists()]
    existed = store_path.exists()
    store = Store(store_path)
    try:
        with store:
            yield store
    finally:
        if not existed and not _planned(store_path):
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{store_path}{suffix}").unlink(missing_ok=True)
            for folder in created:  # innermost first
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


def _planned(path: Path) -> bool:
    with Store(path) as store:
        return bool(store.suites())


def check_values(args: argparse.Namespace) -> None:
    """Every command-line value, before anything is opened or written (:mod:`xaibench.contract.validate`)."""
    for option in ("limit", "batch_size", "workers"):
        validate.positive_int(getattr(args, option, None), "--" + option.replace("_", "-"))
    validate.positive_seconds(getattr(args, "cell_timeout", None), "--cell-timeout")
    if getattr(args, "device", None) is not None:
        validate.device(args.device)
    if getattr(args, "address", None) and getattr(args, "executor", "ray") != "ray":
        raise XaibenchError("--address names a Ray cluster: use it with --executor ray")
    for option in ("store", "output"):
        value = getattr(args, option, None)
        if value is not None and Path(value).is_dir():
            raise XaibenchError(f"--{option} {value} is a directory; give a file path")
    out = getattr(args, "out", None)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise XaibenchError(f"--out {out} is a file; give a directory for the leaderboards")


def _require_store(path: str) -> None:
    if not Path(path).exists():
        raise XaibenchError(f"no results store at {path}; run `xaibench run` first or pass --store")


def _cmd_new(args: argparse.Namespace, harness: Harness | None) -> int:
    from xaibench.authoring.scaffold import new_plugin

    root = new_plugin(args.kind, args.name, args.dir)
    print(f"wrote the {args.kind} plugin package {root}\nnext: python -m pip install -e {root} "
          f"&& python -m pytest {root}/tests && xaibench plugins | grep {args.name}")
    return 0


def _cmd_hooks(args: argparse.Namespace, harness: Harness | None) -> int:
    from xaibench.authoring import hookdoc

    text = hookdoc.render()
    if args.check is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.check)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        print(f"{path} is stale: regenerate it with `xaibench hooks > {path}`", file=sys.stderr)
        return 1
    print(f"{path} is up to date")
    return 0


def _add_store(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--store", default=DEFAULT_STORE, help="the SQLite results store (default: %(default)s)")


def _add_run_context(sp: argparse.ArgumentParser) -> None:
    """The options every command that loads data or models shares."""
    _add_store(sp)
    sp.add_argument("--data-root", default=None, help="root of real datasets (default: $XAIBENCH_DATA)")
    sp.add_argument("--download", action="store_true",
                    help="fetch a missing dataset's public release into the data root, checksum-verified "
                         "(default root with this flag: $XAIBENCH_HOME/data)")
    sp.add_argument("--mirror", default=None, metavar="URL",
                    help="with --download: fetch release files from URL/<file name> instead (default: "
                         "$XAIBENCH_MIRROR), e.g. an intranet or file:// copy; same checksums")
    sp.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="set a suite value, typed as YAML (repeatable): image_size=224, samples=32, "
                         "models.0.train.epochs=3, methods.gradcam.params.layer=layer3")


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    """``RunOptions``' data fields: the root (``--data-root``, ``$XAIBENCH_DATA``), ``--download``, ``--mirror``.

    ``--download`` without a root fetches into ``<cache home>/data`` and says so.
    """
    from xaibench.storage.cache import cache_home

    data_root = args.data_root or os.environ.get("XAIBENCH_DATA")
    if args.download and not data_root:
        data_root = str(cache_home() / "data")
        print(f"--download without --data-root or XAIBENCH_DATA: datasets are read from and fetched into "
              f"{data_root}", file=sys.stderr)
    return {"data_root": data_root, "download": args.download, "mirror": args.mirror}


def build_parser() -> argparse.ArgumentParser:
    """The ``xaibench`` argument parser: one subcommand per ``_cmd_*`` function, each with its options."""
    p = argparse.ArgumentParser(prog="xaibench", description="Benchmark saliency methods on CNNs.")
    p.add_argument("--version", action="version", version=f"xaibench {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("plugins", help="list registered datasets, models, methods, metrics and suites")
    sp.add_argument("--json", action="store_true", help="print JSON (name, plugin, distribution, version, metadata)")
    sp.set_defaults(func=_cmd_plugins)

    sp = sub.add_parser("run", help="run a suite and write its leaderboard")
    sp.add_argument("--suite", required=True, help="built-in suite name or path to a YAML suite")
    _add_run_context(sp)
    sp.add_argument("--limit", type=int, default=None, help="at most N samples per dataset")
    sp.add_argument("--batch-size", type=int, default=None,
                    help="forward-pass batch size (default: the largest that fits a memory budget: 1 GiB on the "
                         "CPU, half the free memory on CUDA)")
    sp.add_argument("--autocast", action="store_true", help="run forward passes in bfloat16 on CUDA")
    sp.add_argument("--executor", choices=("local", "ray"), default="local",
                    help="where cells run: this machine (default) or a Ray cluster (pip install 'xaibench[ray]')")
    sp.add_argument("--workers", type=int, default=1, help="local executor: N worker processes (default 1: in process)")
    sp.add_argument("--address", default=None,
                    help="Ray cluster address ('auto' or 'ray://host:10001'; default: start a local Ray instance)")
    sp.add_argument("--out", default="leaderboards", help="directory of the markdown leaderboards")
    sp.add_argument("--fail-fast", action="store_true", help="stop at the first failed cell")
    sp.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                    help="fail a cell whose method or metric call runs longer (default: the suite's cell_timeout, "
                         "else none); interrupts Python code, a single long native call ends first")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.add_argument("--no-figures", action="store_true",
                    help="skip the saliency galleries and deletion/insertion curves (drawn from the caches)")
    sp.set_defaults(func=_cmd_run)

    sp = sub.add_parser("train", help="train (or load) and evaluate every model of a suite, caching checkpoints")
    sp.add_argument("--suite", required=True, help="built-in suite name or path to a YAML suite")
    _add_run_context(sp)
    sp.set_defaults(func=_cmd_train)

    sp = sub.add_parser("leaderboard", help="render a suite's leaderboard from the store")
    sp.add_argument("--suite", default=None, help="the suite (omit with --index)")
    sp.add_argument("--index", action="store_true",
                    help="only the index <out>/README.md, from the <suite>.json files in <out>")
    _add_store(sp)
    sp.add_argument("--out", default="leaderboards", help="directory of the markdown leaderboards")
    sp.add_argument("--check", action="store_true",
                    help="exit 1 when the markdown or the index on disk is stale or a linked figure is missing")
    sp.add_argument("--format", choices=("md", "json"), default="md",
                    help="md: write <out>/<suite>.md and .json, heat maps and index; json: print the JSON")
    sp.set_defaults(func=_cmd_leaderboard)

    sp = sub.add_parser("explain", help="draw one saliency map over one test sample")
    sp.add_argument("--suite", required=True, help="built-in suite name or path to a YAML suite")
    sp.add_argument("--method", required=True, help="a method of the suite (its label if it has one)")
    sp.add_argument("--sample", required=True, help="a test-split sample id")
    sp.add_argument("-o", "--output", required=True,
                    help="figure file to write, in the format its suffix names: .png, .jpg, .jpeg, .pdf or .svg")
    sp.add_argument("--dataset", default=None, help="a dataset of the suite (default: its first)")
    sp.add_argument("--model", default=None, help="a model of the suite (default: its first)")
    _add_run_context(sp)
    sp.set_defaults(func=_cmd_explain)

    sp = sub.add_parser("results", help="export per-cell results")
    sp.add_argument("--suite", required=True, help="built-in suite name or path to a YAML suite")
    _add_store(sp)
    sp.add_argument("--format", choices=("json", "csv"), default="json", help="json or csv, on stdout")
    sp.set_defaults(func=_cmd_results)

    sp = sub.add_parser("new", help="write a ready-to-install plugin package (method, metric or dataset)")
    sp.add_argument("kind", choices=("method", "metric", "dataset"), help="what the package registers")
    sp.add_argument("name", help="the name suites will use, e.g. gradient-x-input")
    sp.add_argument("--dir", default=None, help="where to write it (default: ./xaibench-NAME)")
    sp.set_defaults(func=_cmd_new, needs_plugins=False)

    sp = sub.add_parser("hooks", help="print the hook reference (markdown) generated from the hookspecs")
    sp.add_argument("--check", metavar="PATH", default=None, help="exit 1 when PATH differs from the generated text")
    sp.set_defaults(func=_cmd_hooks, needs_plugins=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    0: success; 1: cells failed (the rest of the run completed) or ``--check`` found stale files;
    2: a user error (:class:`~xaibench.base.errors.XaibenchError`), printed as one line without a
    traceback unless ``--debug``; 130: interrupted (finished cells stay in the store).
    """
    args = build_parser().parse_args(argv)
    try:
        check_values(args)
        harness = load_harness() if getattr(args, "needs_plugins", True) else None
        return args.func(args, harness)
    except XaibenchError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        command = shlex.join(["xaibench", *(sys.argv[1:] if argv is None else argv)])
        print(f"\ninterrupted: every finished cell is saved in the store; resume with the same command: {command}",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
