"""A folder is read as the user sees it (issue 33, item 4): orientation, what else folders hold, the mask rule.

Expected values come from Pillow's own ``ImageOps.exif_transpose``, from numpy rotations worked by hand (EXIF
Orientation 6 is "rotate 90 degrees clockwise to view": ``np.rot90(stored, -1)``), and from the masks as drawn.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torch import nn
from xaibench_medical.imagefolder import load_imagefolder
from xaibench_medical.imageio import ORIENTATION, Report, read_image, to_array
from xaibench_medical.masks import read_mask

from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DatasetRequest

SIDE, LESION = 32, (8, 16, 16, 24)  # (top, bottom, left, right) of the lesion as a viewer shows it


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif


def _request(root: Path, **params: object) -> DatasetRequest:
    return DatasetRequest(params={"val": 0.25, "test": 0.25, **params}, seed=0, image_size=None,
                          data_root=str(root))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_turned_as_pillows_exif_transpose_turns_it(tmp_path: Path, orientation: int) -> None:
    stored = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7) * 7  # no symmetry: every transposition differs
    path = tmp_path / "x.png"  # PNG: Pillow's TIFF loader turns some files itself when it reads from a path
    Image.fromarray(stored).save(path, exif=_exif(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    np.testing.assert_allclose(to_array(read_image(path), 1, None)[0], expected / 255.0, atol=1e-7)
    deep = tmp_path / "deep.png"  # 16-bit: decoded by OpenCV, which ignores the tag when reading unchanged
    Image.fromarray(stored.astype(np.uint16) * 257).save(deep, exif=_exif(orientation))
    np.testing.assert_allclose(to_array(read_image(deep), 1, None)[0], expected / 255.0, atol=1e-6)


@pytest.mark.parametrize("name", ["x.jpg", "x16.tif"])
def test_orientation_6_by_hand(tmp_path: Path, name: str) -> None:
    stored = np.zeros((8, 16), dtype=np.uint8)
    stored[:4, :4] = 255  # stored top-left; turned 90 degrees clockwise it shows at the top right
    image = Image.fromarray(stored.astype(np.uint16) * 257 if name.endswith("tif") else stored)
    image.save(tmp_path / name, exif=_exif(6), **({"quality": 100} if name.endswith("jpg") else {}))
    shown = to_array(read_image(tmp_path / name), 1, None)[0]
    np.testing.assert_allclose(shown, np.rot90(stored, -1) / 255.0, atol=0.02)


# -- the example: a fixed-weight lesion detector on rotated JPEGs ---------------------------------


class Detector(nn.Module):
    """Logits (0.5 - s, s - 0.5) with s the bright mass ``sum relu(x - 0.5)``: its gradient is non-zero exactly on
    the pixels brighter than 0.5, the lesion; fixed weights, so nothing it does depends on training."""

    def __init__(self, num_classes: int = 2, in_channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 1, bias=False)  # the channel mean, a fixed weight
        nn.init.constant_(self.conv.weight, 1.0 / in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.conv(x) - 0.5).flatten(1).sum(1)
        return torch.stack([0.5 - s, s - 0.5], dim=1)


def _lesion_folder(root: Path, rotated: bool) -> None:
    """16 square JPEGs per class; class "lesion" shows a bright square at LESION, its mask drawn as shown."""
    top, bottom, left, right = LESION
    for cls in ("clear", "lesion"):
        (root / "photos" / cls).mkdir(parents=True)
        for i in range(16):
            shown = np.full((SIDE, SIDE), 20, dtype=np.uint8)
            mask = np.zeros((SIDE, SIDE), dtype=np.uint8)
            if cls == "lesion":
                shown[top:bottom, left:right] = 235
                mask[top:bottom, left:right] = 255
            # a camera stores the pixels turned back and tags Orientation 6 (rotate 90 degrees clockwise to view)
            stored = np.rot90(shown, 1) if rotated else shown
            Image.fromarray(np.ascontiguousarray(stored)).save(root / "photos" / cls / f"img{i}.jpg", quality=95,
                                                               exif=_exif(6) if rotated else Image.Exif())
            Image.fromarray(mask).save(root / "photos" / cls / f"img{i}_mask.png")


def _suite(root: Path, checkpoint: Path) -> str:
    return f"""
name: exif
seed: 0
samples: 8
target: label
datasets:
  - {{name: imagefolder, params: {{path: photos, val: 0.25, test: 0.5}}}}
models:
  - {{name: detector, factory: "test_folder_reading:Detector", checkpoint: "{checkpoint}", layer: conv}}
methods: [saliency]
metrics: [relevance-mass, hit-rate]
"""


@pytest.mark.parametrize("rotated", [True, False])
def test_a_lesion_detector_on_rotated_jpegs_scores_as_on_upright_ones(tmp_path: Path, rotated: bool) -> None:
    """Relevance mass and hit rate are 1 on every lesion image: the detector's gradient is the lesion, which the
    mask marks where a viewer shows it (before: 0.000 with EXIF Orientation 6, 1.000 without)."""
    from xaibench import leaderboard
    from xaibench.suites.options import RunOptions
    from xaibench.contract.plugins import load_harness
    from xaibench.running.runner import Runner
    from xaibench.storage.store import Store
    from xaibench.suites.suite import load_suite

    _lesion_folder(tmp_path, rotated)
    checkpoint = tmp_path / "detector.pt"
    torch.save(Detector().state_dict(), checkpoint)
    (tmp_path / "exif.yaml").write_text(_suite(tmp_path, checkpoint))
    store = Store(tmp_path / "r.sqlite")
    runner = Runner(load_harness(), load_suite(tmp_path / "exif.yaml"), store,
                    RunOptions(progress=False, data_root=str(tmp_path)))
    assert not runner.run().failed
    recs = {r.metric: r for r in leaderboard.records(store, "exif")}
    for metric in ("relevance-mass", "hit-rate"):
        scores = np.array(list(store.scores(recs[metric].cell_key).values()))
        lesion = scores[np.isfinite(scores)]  # clear images: empty mask, zero gradient -> NaN
        assert lesion.size >= 3 and np.all(lesion > 0.999), (metric, scores)
    notes = store.header("exif")["datasets"]["imagefolder"]["notes"]
    assert ("turned upright by their EXIF orientation: 32" in notes) == rotated


# -- the mask rule ------------------------------------------------------------------------------------------

REGION = np.zeros((8, 12), dtype=bool)
REGION[2:5, 3:9] = True


@pytest.mark.parametrize("encoding", ["0/1", "0/255", "16-bit", "grey RGB", "red on black", "alpha layer",
                                      "grey alpha layer", "palette transparency", "opaque RGBA", "opaque LA",
                                      "1-bit", "JPEG", "grey RGB JPEG", "half size", "double size"])
def test_every_stated_mask_encoding_marks_the_region_drawn(tmp_path: Path, encoding: str) -> None:
    r = REGION.astype(np.uint8)
    path = tmp_path / ("m.jpg" if "JPEG" in encoding else "m.png")
    if encoding == "0/1":
        Image.fromarray(r).save(path)
    elif encoding == "0/255":
        Image.fromarray(r * 255).save(path)
    elif encoding == "16-bit":
        Image.fromarray(r.astype(np.uint16) * 65535).save(path)
    elif encoding == "grey RGB":
        Image.fromarray(np.stack([r * 200] * 3, axis=2)).save(path)
    elif encoding == "red on black":
        Image.fromarray(np.stack([r * 255, r * 0, r * 0], axis=2)).save(path)
    elif encoding == "alpha layer":  # drawn in green on a transparent layer; the transparent pixels hold noise
        rgba = np.random.default_rng(0).integers(0, 256, (8, 12, 4)).astype(np.uint8)
        rgba[..., 3] = r * 255
        rgba[2, 3, 3], rgba[0, 0, 3] = 128, 127  # the rule's edge: alpha >= 128 is drawn, 127 is not
        Image.fromarray(rgba, mode="RGBA").save(path)
    elif encoding == "grey alpha layer":  # LA: white strokes on a transparent layer, the rest white too
        Image.fromarray(np.stack([np.full_like(r, 255), r * 255], axis=2), mode="LA").save(path)
    elif encoding == "palette transparency":  # palette index 0 transparent, index 1 the drawing colour
        img = Image.fromarray(r, mode="P")
        img.putpalette([255, 255, 255, 200, 30, 30] + [0] * 762)
        img.save(path, transparency=0)
    elif encoding == "opaque RGBA":  # an alpha channel that says nothing: the colours mark the region
        Image.fromarray(np.stack([r * 255] * 3 + [np.full_like(r, 255)], axis=2), mode="RGBA").save(path)
    elif encoding == "opaque LA":
        Image.fromarray(np.stack([r * 255, np.full_like(r, 255)], axis=2), mode="LA").save(path)
    elif encoding == "grey RGB JPEG":
        Image.fromarray(np.stack([r * 255] * 3, axis=2)).save(path, quality=75)
    elif encoding == "1-bit":
        Image.fromarray(REGION).convert("1").save(path)
    elif encoding == "JPEG":
        Image.fromarray(r * 255).save(path, quality=75)
    elif encoding == "double size":  # exported at twice the resolution: a 2x2 block is lesion when >= 2 of 4 are
        big = np.repeat(np.repeat(r, 2, axis=0), 2, axis=1)
        big[0, 0] = 1  # 1 of 4 in a background block: still background
        big[4:6, 6:8] = [[1, 0], [0, 0]]  # 1 of 4 in a lesion block (2, 3): background
        big[0:2, 2:4] = [[1, 1], [0, 0]]  # 2 of 4 in block (0, 1): lesion
        Image.fromarray(big * 255).save(path)
        expected = REGION.copy()
        expected[2, 3], expected[0, 1] = False, True
        np.testing.assert_array_equal(read_mask(path, (8, 12)), expected)
        return
    else:  # exported at half the image's resolution (16 x 24 image)
        Image.fromarray(r * 255).save(path)
        big = np.repeat(np.repeat(REGION, 2, axis=0), 2, axis=1)
        report = Report()
        np.testing.assert_array_equal(read_mask(path, (16, 24), report=report), big)
        assert list(report.files) == ["masks of another size than their image (same aspect ratio): resized to it"]
        return
    np.testing.assert_array_equal(read_mask(path, (8, 12)), REGION)


@pytest.mark.parametrize("kind, message", [
    ("label map", "a mask with 3 grey levels (0, 1, 2)"),
    ("soft brush", "grey levels"),
    ("colour-coded", "a colour-coded mask with 3 colours"),
    ("colour JPEG", "a colour JPEG mask"),
    ("transposed", "its transpose fits"),
    ("other aspect", "mask is 12x8 but its image is 10x10"),
    ("two frames", "holds 2 frames"),
])
def test_a_mask_that_breaks_the_rule_is_refused_naming_the_file_and_the_fix(tmp_path: Path, kind: str,
                                                                            message: str) -> None:
    r = REGION.astype(np.uint8)
    path, shape = tmp_path / f"{kind.replace(' ', '-')}.png", (8, 12)
    if kind == "label map":
        Image.fromarray(r + (np.arange(12)[None] > 9).astype(np.uint8) * 2).save(path)
    elif kind == "soft brush":
        Image.fromarray((r * 255 - (np.roll(r, 1, 0) != r) * 100).astype(np.uint8)).save(path)
    elif kind == "colour-coded":
        Image.fromarray(np.stack([r * 255, (np.arange(12)[None] > 9) * np.ones((8, 1)) * 255, r * 0],
                                 axis=2).astype(np.uint8)).save(path)
    elif kind == "colour JPEG":
        path = path.with_suffix(".jpg")
        Image.fromarray(np.stack([r * 255, r * 0, r * 0], axis=2)).save(path, quality=90)
    elif kind == "transposed":
        Image.fromarray(r.T * 255).save(path)
    elif kind == "other aspect":
        Image.fromarray(r * 255).save(path)
        shape = (10, 10)
    else:
        path = path.with_suffix(".tif")
        Image.fromarray(r * 255).save(path, save_all=True, append_images=[Image.fromarray(r * 255)])
    with pytest.raises(XaibenchError, match=re.escape(message)) as err:
        read_mask(path, shape)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_a_jpeg_mask_is_cut_at_half_its_range_and_several_masks_of_an_image_are_merged(tmp_path: Path) -> None:
    from xaibench_medical.masks import merged_mask, region

    values = Image.fromarray(np.array([[0, 127, 128, 129, 255]], dtype=np.uint8))
    np.testing.assert_array_equal(region(values, tmp_path / "m.jpg", lossy=True), [[False, False, True, True, True]])
    first, second = np.zeros((8, 12), dtype=np.uint8), np.zeros((8, 12), dtype=np.uint8)
    first[1:3, 1:3], second[2:6, 5:9] = 255, 1  # two lesions, two files, 0/255 and 0/1
    Image.fromarray(first).save(tmp_path / "x_mask.png")
    Image.fromarray(second).save(tmp_path / "x_mask_1.png")
    merged = merged_mask([tmp_path / "x_mask.png", tmp_path / "x_mask_1.png"], (8, 12))
    np.testing.assert_array_equal(merged, (first > 0) | (second > 0))


# -- what else a folder holds -------------------------------------------------------------------------------


def _image(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)


def test_what_a_real_folder_holds_besides_images_is_skipped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "data"
    expected = set()
    for cls in ("a", "b"):
        for i in range(4):
            name = f"{cls}/x{i}.{'PNG' if i == 0 else 'png'}"  # upper-case extensions are images too
            _image(root / name, 40 * i)
            expected.add(name)
        (root / cls / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        (root / cls / "._x1.png").write_bytes(b"\0\5\26\7 AppleDouble")  # macOS resource fork: not a PNG
        (root / cls / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
        (root / cls / "notes.txt").write_text("reader's notes")
        _image(root / cls / ".ipynb_checkpoints" / "x0-checkpoint.png")
        _image(root / cls / "rejected" / "x9.png")
    _image(root / ".ipynb_checkpoints" / "y.png")  # torchvision's ImageFolder would make this a class
    _image(root / "__MACOSX" / "a" / "._x0.png")
    _image(root / "preview.png")
    (root / "b" / "linked.png").symlink_to(root / "a" / "x2.png")  # symbolic links are followed
    expected.add("b/linked.png")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(root / "a" / "gone_mask.png")  # a mask without image
    bundle = load_imagefolder(_request(tmp_path, path="data"))
    ids = set(bundle.train.ids) | set(bundle.val.ids) | set(bundle.test.ids)
    assert ids == expected and bundle.class_names == ("a", "b")
    # hidden or system: .ipynb_checkpoints and __MACOSX at the top, .DS_Store, ._x1.png, Thumbs.db and
    # .ipynb_checkpoints in each class folder
    for counted in ("skipped hidden or system entries: 10", "skipped files of other types: 2",
                    "skipped subfolders of class folders: 2", "skipped images outside the class folders: 1",
                    "skipped masks without an image: 1"):
        assert counted in bundle.notes, (counted, bundle.notes)


@pytest.mark.parametrize("kind, message", [
    ("transparent", "has transparent pixels (alpha down to 0)"),
    ("animated", "holds 3 frames"),
    ("broken link", "a symbolic link to a missing file"),
    ("corrupt", "cannot decode the image"),
])
def test_an_image_that_cannot_be_read_as_shown_is_refused_naming_it(tmp_path: Path, kind: str, message: str) -> None:
    root = tmp_path / "data"
    for cls in ("a", "b"):
        for i in range(4):
            _image(root / cls / f"x{i}.png")
    bad = root / "a" / ("bad.gif" if kind == "animated" else "bad.png")
    if kind == "transparent":
        rgba = np.full((8, 8, 4), 200, dtype=np.uint8)
        rgba[0, 0, 3] = 0
        Image.fromarray(rgba, mode="RGBA").save(bad)
    elif kind == "animated":
        bad = bad.with_suffix(".tif")
        frames = [Image.fromarray(np.full((8, 8), v, dtype=np.uint8)) for v in (0, 100, 200)]
        frames[0].save(bad, save_all=True, append_images=frames[1:])
    elif kind == "broken link":
        bad.symlink_to(root / "a" / "missing.png")
    else:
        bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(XaibenchError, match=re.escape(message)) as err:
        load_imagefolder(_request(tmp_path, path="data"))
    assert str(bad) in str(err.value)


def test_an_opaque_alpha_channel_is_dropped_and_counted(tmp_path: Path) -> None:
    rgba = np.full((8, 8, 4), 255, dtype=np.uint8)
    rgba[..., 0] = 10
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "x.png")
    report = Report()
    arr = to_array(read_image(tmp_path / "x.png", report), 3, None)
    np.testing.assert_allclose(arr[0], 10 / 255) and np.testing.assert_allclose(arr[1], 1.0)
    assert list(report.files) == ["opaque alpha channel dropped"]
