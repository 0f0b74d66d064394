"""``--check`` says what differs in a board's content (issue 44, item 2): cells, evaluations, provenance."""
from __future__ import annotations

import copy
import json

from xaibench.leaderboard.compare import SHOWN, differences

CELL = {"mean": 65.6, "ci_low": 53.1, "ci_high": 76.6, "n": 64, "status": "ok", "rank": 4, "tied": False,
        "detail": None}
DOC = {"schema": 1, "suite": "demo",
       "header": {"versions": {"torch": "2.14.1", "numpy": "2.3.0"}, "cpu": "AVX512",
                  "training_threads": {"net": 1}},
       "blocks": [{"dataset": "ds", "model": "net", "evaluation": {"accuracy": 0.983, "n": 300},
                   "rows": [{"method": "good", "cells": {"dic": CELL, "iic": {**CELL, "mean": 34.4}}},
                            {"method": "bad", "cells": {"dic": {**CELL, "status": "failed", "mean": None}}}],
                   "winners": ["good"]}]}


def _text(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def test_equal_documents_have_no_difference_and_another_layout_is_named() -> None:
    assert differences(_text(DOC), _text(DOC)) == []
    assert differences(json.dumps(DOC), _text(DOC)) == ["the same content, written in another layout"]


def test_each_differing_cell_evaluation_and_provenance_entry_is_named_with_both_values() -> None:
    other = copy.deepcopy(DOC)
    other["header"]["cpu"] = "AVX2"
    other["header"]["versions"]["torch"] = "2.15.0"
    block = other["blocks"][0]
    block["evaluation"]["accuracy"] = 0.987
    block["rows"][0]["cells"]["dic"] = {**CELL, "mean": 67.2, "ci_low": 55.0, "ci_high": 78.1, "rank": 2,
                                        "tied": True}
    block["winners"] = ["good", "bad"]
    assert differences(_text(DOC), _text(other)) == [
        "header.cpu: 'AVX512' in the file, 'AVX2' from the store",
        "header.versions.torch: '2.14.1' in the file, '2.15.0' from the store",
        "ds × net: the model's test-split accuracy: 0.983 in the file, 0.987 from the store",
        "ds × net: dic of good: 65.6 [53.1, 76.6] n=64 rank 4 in the file, 67.2 [55, 78.1] n=64 rank 2= from the store",
        "ds × net: also differ: winners",
    ]


def test_a_failed_cell_a_missing_section_and_many_cells_are_reported() -> None:
    other = copy.deepcopy(DOC)
    other["blocks"][0]["rows"][1]["cells"]["dic"] = {**CELL, "mean": 50.0}
    other["blocks"].append({**copy.deepcopy(DOC["blocks"][0]), "model": "net2"})
    assert differences(_text(DOC), _text(other)) == [
        "ds × net: dic of bad: failed in the file, 50 [53.1, 76.6] n=64 rank 4 from the store",
        "ds × net2: a section the store renders that the file lacks"]
    many = copy.deepcopy(DOC)
    many["blocks"][0]["rows"] = [{"method": f"m{i}", "cells": {"dic": CELL}} for i in range(SHOWN + 3)]
    fewer = copy.deepcopy(many)
    for row in fewer["blocks"][0]["rows"]:
        row["cells"]["dic"] = {**CELL, "rank": 1}
    lines = differences(_text(many), _text(fewer))
    assert len(lines) == SHOWN + 1 and lines[0] == (
        "ds × net: dic of m0: 65.6 [53.1, 76.6] n=64 rank 4 in the file, 65.6 [53.1, 76.6] n=64 rank 1 from the store")
    assert lines[-1] == f"ds × net: ... and 3 more cells differ ({SHOWN + 3} of {SHOWN + 3})"
    assert differences(_text(DOC)[:-3], _text(DOC))[0].startswith("the file is not a JSON document")


def test_entries_on_one_side_only_undefined_cells_and_exactly_shown_cells() -> None:
    """A board written before a provenance entry existed, a cell one side lacks, an undefined or unranked cell,
    a section of the file only, a model evaluation one side lacks: each is named with what each side holds."""
    old = copy.deepcopy(DOC)
    del old["header"]["cpu"]
    old["blocks"].append({**copy.deepcopy(DOC["blocks"][0]), "model": "gone"})
    new = copy.deepcopy(DOC)
    block = new["blocks"][0]
    block["evaluation"] = None
    block["rows"][0]["cells"]["iic"] = {**CELL, "mean": None, "n": 0, "rank": None}
    block["rows"][0]["cells"]["srg"] = {**CELL, "rank": None}
    block["winners"], block["verdict"] = [], "fail"
    assert differences(_text(old), _text(new)) == [
        "header.cpu: None in the file, 'AVX512' from the store",
        "ds × gone: a section of the file only",
        "ds × net: the model's test-split accuracy: 0.983 in the file, None from the store",
        "ds × net: the model's test-split n: 300 in the file, None from the store",
        "ds × net: iic of good: 34.4 [53.1, 76.6] n=64 rank 4 in the file, undefined (n=0) from the store",
        "ds × net: srg of good: absent in the file, 65.6 [53.1, 76.6] n=64 rank – from the store",
        "ds × net: also differ: verdict, winners",
    ]
    exactly = copy.deepcopy(DOC)
    exactly["blocks"][0]["rows"] = [{"method": f"m{i}", "cells": {"dic": CELL}} for i in range(SHOWN)]
    moved = copy.deepcopy(exactly)
    for row in moved["blocks"][0]["rows"]:
        row["cells"]["dic"] = {**CELL, "n": 63}
    assert len(differences(_text(exactly), _text(moved))) == SHOWN  # all shown, no "... and 0 more"
    empty = copy.deepcopy(DOC)
    empty["blocks"][0]["evaluation"] = {}
    unevaluated = copy.deepcopy(DOC)
    unevaluated["blocks"][0]["evaluation"] = None
    assert differences(_text(empty), _text(unevaluated)) == [
        "ds × net: the model's test-split evaluation: {} in the file, None from the store"]
