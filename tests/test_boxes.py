"""Bounding boxes as localization ground truth: each layout written here, rasterised regions derived by hand."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from xaibench_medical import boxes
from xaibench_medical.imagefolder import load_imagefolder

from xaibench.api import cli
from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DatasetRequest

#: Six 20x10 (W x H) images, two classes; the box of image k is (x=2+k, y=1, w=4, h=3) in pixels.
NAMES = [f"{c}/img{k}.png" for k, c in enumerate(["a", "a", "a", "b", "b", "b"])]


def box_of(k: int) -> tuple[int, int, int, int]:
    return 2 + k, 1, 4, 3


def expected(k: int) -> np.ndarray:
    """By hand: columns x..x+w-1 and rows y..y+h-1 of the 10x20 grid (pixel centres j + 0.5 in [x, x + w))."""
    x, y, w, h = box_of(k)
    m = np.zeros((10, 20), bool)
    m[y : y + h, x : x + w] = True
    return m


def folder(root: Path) -> Path:
    for k, name in enumerate(NAMES):
        path = root / "imgs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((10, 20), 40 * k, np.uint8)).save(path)
    return root / "imgs"


def write(root: Path, kind: str) -> str:
    """The six boxes in layout ``kind``; the path relative to the data root."""
    if kind == "cub":
        (root / "images.txt").write_text("".join(f"{k + 1} {n}\n" for k, n in enumerate(NAMES)))
        (root / "bounding_boxes.txt").write_text("".join(
            f"{k + 1} {' '.join(f'{v:.1f}' for v in box_of(k))}\n" for k in range(6)))
        return "bounding_boxes.txt"
    if kind == "voc":
        (root / "voc").mkdir()
        for k, n in enumerate(NAMES):
            x, y, w, h = box_of(k)  # VOC: 1-based inclusive corners
            (root / "voc" / f"{k}.xml").write_text(
                f"<annotation><filename>{Path(n).name}</filename><object><name>lesion</name><bndbox>"
                f"<xmin>{x + 1}</xmin><ymin>{y + 1}</ymin><xmax>{x + w}</xmax><ymax>{y + h}</ymax>"
                f"</bndbox></object></annotation>")
        return "voc"
    if kind == "coco":
        doc = {"images": [{"id": k, "file_name": Path(n).name, "width": 20, "height": 10} for k, n in enumerate(NAMES)],
               "annotations": [{"id": 100 + k, "image_id": k, "bbox": list(box_of(k)), "category_id": 1,
                                "area": 12, "iscrowd": 0} for k in range(6)],
               "categories": [{"id": 1, "name": "lesion"}]}
        (root / "boxes.json").write_text(json.dumps(doc))
        return "boxes.json"
    (root / "boxes.csv").write_text("Image Index,Finding Label,Bbox [x,y,w,h]\n" + "".join(
        f"{Path(n).name},Mass,{','.join(map(str, box_of(k)))}\n" for k, n in enumerate(NAMES)))
    return "boxes.csv"


def load(root: Path, size: int | None, **params: object):
    request = DatasetRequest(params={"path": "imgs", "val": 0.34, "test": 0.34, **params}, seed=0, image_size=size,
                             data_root=str(root))
    return load_imagefolder(request)


@pytest.mark.parametrize("kind", boxes.FORMATS)
def test_each_layout_gives_the_boxes_on_the_pixel_grid(tmp_path: Path, kind: str) -> None:
    folder(tmp_path)
    bundle = load(tmp_path, None, boxes=write(tmp_path, kind))
    assert bundle.ground_truth == "boxes" and "bounding boxes for 6 of 6 images" in bundle.notes
    for split in (bundle.train, bundle.val, bundle.test):
        for i, sample_id in enumerate(split.ids):
            np.testing.assert_array_equal(split.masks[i].numpy(), expected(NAMES.index(sample_id)), err_msg=sample_id)


def test_resized_boxes_keep_the_pixels_whose_centre_is_inside(tmp_path: Path) -> None:
    folder(tmp_path)
    bundle = load(tmp_path, 10, boxes=write(tmp_path, "csv"))
    k = NAMES.index(bundle.test.ids[0])
    x, y, w, h = box_of(k)  # 20 px wide -> 10: column j's centre maps back to 2 (j + 0.5)
    cols = [j for j in range(10) if x <= 2 * (j + 0.5) < x + w]
    want = np.zeros((10, 10), bool)
    want[y : y + h, cols] = True
    np.testing.assert_array_equal(bundle.test.masks[0].numpy(), want)


def test_bad_box_files_stop_with_one_line(tmp_path: Path) -> None:
    folder(tmp_path)
    (tmp_path / "out.csv").write_text("image,x,y,w,h\nimg0.png,18,1,4,3\n")
    with pytest.raises(XaibenchError, match="a/img0.png: box .* leaves the 20x10 image"):
        load(tmp_path, None, boxes="out.csv")
    (tmp_path / "none.csv").write_text("image,x,y,w,h\nother.png,1,1,4,3\n")
    with pytest.raises(XaibenchError, match="none of its 1 image names"):
        load(tmp_path, None, boxes="none.csv")
    (tmp_path / "flat.csv").write_text("image,x,y,w,h\nimg0.png,1,1,0,3\n")
    with pytest.raises(XaibenchError, match="width and height must be positive"):
        load(tmp_path, None, boxes="flat.csv")
    (tmp_path / "cols.csv").write_text("name,x,y,w,h\nimg0.png,1,1,2,3\n")
    with pytest.raises(XaibenchError, match="the header lacks image"):
        load(tmp_path, None, boxes="cols.csv")
    (tmp_path / "b.txt").write_text("1 1 1 2 2\n")
    with pytest.raises(XaibenchError, match="images.txt .* must be beside it"):
        load(tmp_path, None, boxes="b.txt")
    with pytest.raises(TypeError, match="ground_truth must be 'masks' or 'boxes'"):
        load(tmp_path, None, boxes=write(tmp_path, "csv"), ground_truth="box")


def test_masks_and_boxes_together_need_a_choice(tmp_path: Path) -> None:
    root = folder(tmp_path)
    Image.fromarray(np.full((10, 20), 255, np.uint8)).save(root / "a" / "img0_mask.png")
    rel = write(tmp_path, "csv")
    with pytest.raises(TypeError, match="set ground_truth to 'masks' or 'boxes'"):
        load(tmp_path, None, boxes=rel)
    assert load(tmp_path, None, boxes=rel, ground_truth="masks").ground_truth == "masks"
    assert load(tmp_path, None, boxes=rel, ground_truth="boxes").ground_truth == "boxes"


SUITE = """
name: boxes
seed: 0
samples: 2
image_size: 20
datasets:
  - name: imagefolder
    params: {path: imgs, boxes: boxes.csv, val: 0.34, test: 0.34}
models:
  - name: small-cnn
    params: {width: 4, depth: 2}
    train: {epochs: 1, batch_size: 2, patience: 0, min_epochs: 0}
methods: [ground-truth]
metrics: [relevance-mass, energy-pointing-game, iou]
"""


def test_box_metrics_score_the_boxes_and_mask_metrics_say_they_need_masks(
        tmp_path: Path, write_suite, capsys: pytest.CaptureFixture[str]) -> None:
    folder(tmp_path)
    write(tmp_path, "csv")
    suite = write_suite(SUITE)
    out = tmp_path / "out"
    assert cli.main(["run", "--suite", str(suite), "--store", str(tmp_path / "r.db"), "--data-root", str(tmp_path),
                     "--no-progress", "--no-figures", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "has bounding boxes, not masks: metric 'iou' needs masks" in printed
    board = json.loads((out / "boxes.json").read_text())
    row = next(r for r in board["blocks"][0]["rows"] if r["method"] == "ground-truth")
    # the oracle (the box region itself) has all its relevance in the boxes: 1 on both box metrics
    assert row["cells"]["relevance-mass"]["mean"] == pytest.approx(1.0)
    assert row["cells"]["energy-pointing-game"]["mean"] == pytest.approx(1.0)
    assert "iou" not in row["cells"] or row["cells"]["iou"]["status"] != "ok"
    assert "bounding boxes for 6 of 6 images" in board["header"]["datasets"]["imagefolder"]["notes"]
