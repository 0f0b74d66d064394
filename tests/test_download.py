"""``--download``: releases served from ``file://`` URLs in tmp_path (never the internet), checksums verified."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from xaibench_medical import busi, kather, medmnist
from xaibench_medical.busi import load_busi
from xaibench_medical.kather import load_kather
from xaibench_medical.medmnist import load_medmnist

from xaibench.api import cli
from xaibench.data.download import Release, extract, fetch, parse_checksum, release_url
from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DatasetRequest


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _request(root: Path, download: bool = False, mirror: str | None = None, **params: object) -> DatasetRequest:
    return DatasetRequest(params=params, seed=0, image_size=None, data_root=str(root), download=download,
                          mirror=mirror)


def _npz(path: Path, n: int = 6) -> Path:
    """A MedMNIST-style release file: 28 px grayscale, three classes, official splits."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).reshape(n, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def _kather_zip(path: Path) -> Path:
    """A Kather-style release archive: ``Kather_texture_2016_image_tiles_5000/<NN_CLASS>/*.tif``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for d in ("01_TUMOR", "02_STROMA"):
            for n in range(5):
                buf = io.BytesIO()
                Image.fromarray(np.full((8, 8, 3), 30 * n, np.uint8)).save(buf, format="TIFF")
                z.writestr(f"{kather.FOLDER}/{d}/t{n}.tif", buf.getvalue())
    return path


@pytest.fixture
def served_npz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """breastmnist.npz served from a file:// folder, its release pinned to the fixture's checksum."""
    served = _npz(tmp_path / "served" / "breastmnist.npz")
    release = Release(url=served.as_uri(), filename="medmnist/breastmnist.npz", checksum=_sha256(served))
    monkeypatch.setattr(medmnist, "SOURCE", dataclasses.replace(medmnist.SOURCE, downloads=(release,)))
    return served


def test_nothing_is_downloaded_without_the_flag(tmp_path: Path, served_npz: Path) -> None:
    with pytest.raises(XaibenchError, match=r"MedMNIST not found.*Expected layout: medmnist/<flag>\.npz.*zenodo.*"
                                            r"pass --download to fetch medmnist/breastmnist\.npz \(sha256-verified\)"):
        load_medmnist(_request(tmp_path / "data", flag="breastmnist"))
    assert not (tmp_path / "data" / "medmnist").exists()


def test_download_fetches_verifies_loads_and_is_not_repeated(tmp_path: Path, served_npz: Path) -> None:
    root = tmp_path / "data"
    bundle = load_medmnist(_request(root, download=True, flag="breastmnist"))
    saved = root / "medmnist" / "breastmnist.npz"
    assert saved.read_bytes() == served_npz.read_bytes()
    assert len(bundle.train) == 6 and bundle.num_classes == 3 and bundle.test.ids[0] == "breastmnist/test/000000"
    assert sorted(p.name for p in saved.parent.iterdir()) == ["breastmnist.npz"]  # no temporary file left
    served_npz.unlink()  # a second load must not need the release any more
    assert len(load_medmnist(_request(root, download=True, flag="breastmnist")).train) == 6


def test_checksum_mismatch_names_both_digests_and_leaves_nothing(tmp_path: Path) -> None:
    served = _npz(tmp_path / "mirror" / "breastmnist.npz")
    pinned = next(r for r in medmnist.SOURCE.downloads if r.filename == "medmnist/breastmnist.npz")
    actual = hashlib.md5(served.read_bytes()).hexdigest()
    with pytest.raises(XaibenchError) as err:  # the real pinned MD5 against a fixture served by the mirror
        load_medmnist(_request(tmp_path / "data", download=True, mirror=(tmp_path / "mirror").as_uri(),
                               flag="breastmnist"))
    message = str(err.value)
    assert "breastmnist.npz: md5 mismatch" in message and pinned.checksum[4:] in message and actual in message
    assert list((tmp_path / "data" / "medmnist").iterdir()) == []


def test_kather_archive_is_extracted_into_the_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _kather_zip(tmp_path / "served" / f"{kather.FOLDER}.zip")
    pinned = kather.SOURCE.downloads[0]
    release = dataclasses.replace(pinned, url="https://example.invalid/never-fetched", checksum=_sha256(archive))
    monkeypatch.setattr(kather, "SOURCE", dataclasses.replace(kather.SOURCE, downloads=(release,)))
    root = tmp_path / "data"
    bundle = load_kather(_request(root, download=True, mirror=(tmp_path / "served").as_uri(), val=0.2, test=0.2))
    assert bundle.class_names == ("tumor", "stroma") and bundle.spatial == (8, 8)
    assert sorted(p.name for p in root.iterdir()) == [kather.FOLDER]  # archive and staging folder removed


def test_sources_without_a_pinned_checksum_are_never_fetched(tmp_path: Path) -> None:
    assert busi.SOURCE.downloads == ()
    with pytest.raises(XaibenchError, match=r"BUSI not found.*--download cannot fetch it.*pinned checksum.*"
                                            r"never fetches unverified data.*scholar\.cu\.edu\.eg"):
        load_busi(_request(tmp_path, download=True))
    with pytest.raises(XaibenchError) as err:
        load_busi(_request(tmp_path))
    assert "--download" not in str(err.value)


def test_network_errors_say_what_failed_and_how_to_place_the_file(tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere" / "x.npz").as_uri()
    with pytest.raises(XaibenchError, match=r"could not download file://.*x\.npz.*place it as .*x\.npz"):
        fetch(missing, tmp_path / "dest", "x.npz", "md5:" + "0" * 32)
    assert list((tmp_path / "dest").iterdir()) == []


def test_fetch_keeps_a_verified_file_and_refuses_to_overwrite_another(tmp_path: Path) -> None:
    served = _npz(tmp_path / "served" / "a.npz")
    checksum = _sha256(served)
    first = fetch(served.as_uri(), tmp_path / "dest", "a.npz", checksum)
    served.unlink()
    assert fetch(served.as_uri(), tmp_path / "dest", "a.npz", checksum) == first  # no second download
    first.write_bytes(b"someone else's file")
    with pytest.raises(XaibenchError, match="exists but its sha256 is .*remove it"):
        fetch(served.as_uri(), tmp_path / "dest", "a.npz", checksum)
    assert first.read_bytes() == b"someone else's file"


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_archives_escaping_the_destination_are_refused(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ok/fine.txt", "fine")
        z.writestr(member, "evil")
    with pytest.raises(XaibenchError, match="refusing member"):
        extract(archive, tmp_path / "dest")
    assert not (tmp_path / "evil.txt").exists() and list((tmp_path / "dest").glob("*")) == []


def test_tar_links_are_refused_and_plain_tars_extract(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        link = tarfile.TarInfo("data/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    with pytest.raises(XaibenchError, match="refusing member 'data/passwd'"):
        extract(evil, tmp_path / "dest")
    good = tmp_path / "good.tar.gz"
    (tmp_path / "src" / "set").mkdir(parents=True)
    (tmp_path / "src" / "set" / "a.txt").write_text("a")
    with tarfile.open(good, "w:gz") as t:
        t.add(tmp_path / "src" / "set", arcname="set")
    assert extract(good, tmp_path / "dest") == [tmp_path / "dest" / "set"]
    assert (tmp_path / "dest" / "set" / "a.txt").read_text() == "a"
    with pytest.raises(XaibenchError, match="already exist"):  # never replaces what is there
        extract(good, tmp_path / "dest")


def test_checksums_and_mirror_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(XaibenchError, match="expected one of sha256:<hex>, md5:<hex>"):
        parse_checksum("sha1:" + "0" * 40)
    with pytest.raises(XaibenchError, match="full-length"):
        parse_checksum("sha256:abc")
    with pytest.raises(XaibenchError, match="not hexadecimal"):
        parse_checksum("md5:" + "z" * 32)
    release = Release(url="https://zenodo.org/records/1/files/a.npz?download=1", filename="medmnist/a.npz",
                      checksum="md5:" + "0" * 32)
    monkeypatch.delenv("XAIBENCH_MIRROR", raising=False)
    assert release_url(release) == release.url and release.provides == "medmnist/a.npz"
    monkeypatch.setenv("XAIBENCH_MIRROR", "http://proxy.local/xai/")
    assert release_url(release) == "http://proxy.local/xai/a.npz"
    assert release_url(release, "file:///srv/releases") == "file:///srv/releases/a.npz"


def test_pinned_release_tables() -> None:
    names = {r.filename for r in medmnist.SOURCE.downloads}
    assert len(names) == 44 and "medmnist/pathmnist_224.npz" in names and "medmnist/chestmnist.npz" not in names
    assert all(parse_checksum(r.checksum)[0] == "md5" for r in medmnist.SOURCE.downloads)
    (k,) = kather.SOURCE.downloads
    assert k.extract and k.provides == kather.FOLDER and parse_checksum(k.checksum)[0] == "sha256"


def test_cli_run_with_download_and_mirror(tmp_path: Path, served_npz: Path, isolated_home: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (release,) = medmnist.SOURCE.downloads  # pinned to the fixture; its URL is not reachable: only the mirror is
    monkeypatch.setattr(medmnist, "SOURCE", dataclasses.replace(
        medmnist.SOURCE, downloads=(dataclasses.replace(release, url="https://example.invalid/breastmnist.npz"),)))
    monkeypatch.delenv("XAIBENCH_DATA", raising=False)
    monkeypatch.setenv("XAIBENCH_MIRROR", (tmp_path / "elsewhere").as_uri())  # --mirror wins over the variable
    suite = tmp_path / "mm.yaml"
    suite.write_text("name: mm\nimage_size: 16\nsamples: 3\n"
                     "datasets: [{name: medmnist, params: {flag: breastmnist}}]\n"
                     "models: [{name: small-cnn, train: {epochs: 1}}]\nmethods: [random]\nmetrics: [dic]\n")
    args = ["run", "--suite", str(suite), "--store", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "lb"),
            "--no-progress", "--no-figures", "--limit", "3"]
    assert cli.main([*args, "--data-root", str(tmp_path / "data")]) == 2
    assert "pass --download to fetch medmnist/breastmnist.npz" in capsys.readouterr().err
    assert not (tmp_path / "data" / "medmnist").exists()

    assert cli.main([*args, "--download", "--mirror", served_npz.parent.as_uri()]) == 0
    out = capsys.readouterr()
    saved = isolated_home / "data" / "medmnist" / "breastmnist.npz"  # no data root: the cache home's data/
    assert f"fetched into {saved.parents[1]}" in out.err and saved.read_bytes() == served_npz.read_bytes()
    assert "computed 1 cells" in out.out and (tmp_path / "lb" / "mm.md").exists()
