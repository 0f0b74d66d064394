"""What differs between two ``<suite>.json`` documents of one board: the numbers, ranks and provenance.

``xaibench leaderboard --check`` compares the published files with what the store renders byte
for byte; when they differ, :func:`differences` says whether the board's content changed (a
cell's mean, CI, n or rank, a model's test-split evaluation, a section's winners or verdict,
the provenance: versions, CPU instruction set, thread counts) or only its rendering (the same
numbers written by another version of the renderer). A board regenerated on another machine
is then read for what moved, not only found "stale".
"""
from __future__ import annotations

import json
from typing import Any

#: Lines of differing cells shown before "... and N more".
SHOWN = 6


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: nested mappings as dotted paths, anything else as one leaf."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    return {path: leaf for key, sub in sorted(value.items()) for path, leaf in _flat(sub, f"{prefix}.{key}").items()}


def _changed(published: dict[str, Any], rendered: dict[str, Any]) -> list[str]:
    """The dotted paths whose values differ between two flattened mappings, in order."""
    return [k for k in sorted(set(published) | set(rendered)) if published.get(k) != rendered.get(k)]


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "absent"
    if cell.get("status") != "ok":
        return str(cell.get("status"))
    rank = "–" if cell.get("rank") is None else f"{cell['rank']}{'=' if cell.get('tied') else ''}"
    return f"{cell.get('mean'):.6g} [{cell.get('ci_low'):.6g}, {cell.get('ci_high'):.6g}] n={cell.get('n')} rank {rank}" \
        if cell.get("mean") is not None else f"undefined (n={cell.get('n')})"


def _cells(block: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["method"], metric): cell for row in block.get("rows", []) for metric, cell in row["cells"].items()}


def _block_lines(name: str, published: dict[str, Any], rendered: dict[str, Any]) -> list[str]:
    evaluations = _flat(published.get("evaluation"), "evaluation"), _flat(rendered.get("evaluation"), "evaluation")
    lines = [f"{name}: the model's test-split {path.partition('.')[2] or 'evaluation'}: {evaluations[0].get(path)!r} "
             f"in the file, {evaluations[1].get(path)!r} from the store" for path in _changed(*evaluations)][:SHOWN]
    ours, theirs = _cells(published), _cells(rendered)
    cells = [key for key in sorted(set(ours) | set(theirs)) if ours.get(key) != theirs.get(key)]
    lines += [f"{name}: {metric} of {method}: {_cell_text(ours.get((method, metric)))} in the file, "
              f"{_cell_text(theirs.get((method, metric)))} from the store" for method, metric in cells[:SHOWN]]
    if len(cells) > SHOWN:
        lines.append(f"{name}: ... and {len(cells) - SHOWN} more cells differ ({len(cells)} of {len(theirs)})")
    others = sorted(k for k in set(published) | set(rendered)
                    if k not in ("rows", "evaluation") and published.get(k) != rendered.get(k))
    if others:
        lines.append(f"{name}: also differ: {', '.join(others)}")
    return lines


def differences(published: str, rendered: str) -> list[str]:
    """What differs in content between two ``<suite>.json`` texts (the file's, the store's rendering).

    Returns lines that name each differing provenance entry (``header.versions.torch: '2.14.1' in the file,
    '2.15.0' from the store``), each section present on one side only, each differing model evaluation
    and cell (mean, 95% CI, n defined, rank; the first :data:`SHOWN` per section, then a count) and the
    section's other differing parts (winners, verdict, agreement...). Empty when the documents are equal as
    JSON. When they are equal in content but not as text (key order, indentation), one line says so.
    A text that is not JSON is reported in one line.
    """
    try:
        ours, theirs = json.loads(published), json.loads(rendered)
    except ValueError as exc:
        return [f"the file is not a JSON document ({exc}): it cannot be compared cell by cell"]
    if ours == theirs:
        return [] if published == rendered else ["the same content, written in another layout"]
    flat_ours = {k: v for k, v in _flat(ours, "").items() if not k.startswith(".blocks")}
    flat_theirs = {k: v for k, v in _flat(theirs, "").items() if not k.startswith(".blocks")}
    lines = [f"{path[1:]}: {flat_ours.get(path)!r} in the file, {flat_theirs.get(path)!r} from the store"
             for path in _changed(flat_ours, flat_theirs)]
    blocks = [{f"{b['dataset']} × {b['model']}": b for b in doc.get("blocks", [])} for doc in (ours, theirs)]
    for name in sorted(set(blocks[0]) | set(blocks[1])):
        if name not in blocks[1]:
            lines.append(f"{name}: a section of the file only")
        elif name not in blocks[0]:
            lines.append(f"{name}: a section the store renders that the file lacks")
        else:
            lines += _block_lines(name, blocks[0][name], blocks[1][name])
    return lines
