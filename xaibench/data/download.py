"""Fetching a dataset's public release, only when the user asks (``--download``), never unverified.

Every release is pinned by a checksum (``sha256:<hex>`` or ``md5:<hex>``), checked while
the file streams to a temporary name beside its destination; only a verified file is
renamed into place, so an interrupted or corrupt download leaves nothing a dataset
loader would accept. Archives are unpacked into a temporary folder next to the data and
moved in once complete, refusing members that would land outside it. ``urllib`` reads
``file://`` URLs too: that is how the tests (and an offline mirror) serve releases.

A mirror (``--mirror URL`` or ``$XAIBENCH_MIRROR``) replaces a release's URL by
``<mirror>/<file name>``, checked against the same checksum: for sites behind a proxy
or without internet access, with the releases copied to a local or intranet folder.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from xaibench.storage.cache import file_digest
from xaibench.base.errors import XaibenchError

MIRROR_ENV = "XAIBENCH_MIRROR"
ALGORITHMS = ("sha256", "md5")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Release:
    """One public file of a dataset, pinned by its checksum.

    ``filename`` is where it is saved, relative to the data root (``medmnist/pathmnist.npz``);
    ``provides`` is the path under the data root that exists once it is in place (the
    archive's top folder when ``extract``; the file itself otherwise).
    """

    url: str
    filename: str
    checksum: str
    extract: bool = False
    provides: str = ""

    def __post_init__(self) -> None:
        parse_checksum(self.checksum)
        if not self.provides:
            object.__setattr__(self, "provides", self.filename)


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``("sha256", "<hex>")`` from ``"sha256:<hex>"``; anything else is refused."""
    algorithm, _, digest = checksum.partition(":")
    if algorithm not in ALGORITHMS or len(digest) != hashlib.new(algorithm, usedforsecurity=False).digest_size * 2:
        raise XaibenchError(f"checksum {checksum!r}: expected one of {', '.join(a + ':<hex>' for a in ALGORITHMS)} "
                            f"with a full-length digest")
    try:
        int(digest, 16)
    except ValueError:
        raise XaibenchError(f"checksum {checksum!r}: the digest is not hexadecimal") from None
    return algorithm, digest.lower()


def release_url(release: Release, mirror: str | None = None) -> str:
    """The release's URL, or ``<mirror>/<file name>`` (``mirror`` else ``$XAIBENCH_MIRROR``)."""
    return mirrored(release.url, PurePosixPath(release.filename).name, mirror)


def mirrored(url: str, name: str, mirror: str | None = None) -> str:
    """``url``, or ``<mirror>/<name>`` when a mirror is given (``mirror`` else ``$XAIBENCH_MIRROR``)."""
    base = mirror or os.environ.get(MIRROR_ENV)
    return f"{base.rstrip('/')}/{name}" if base else url


def fetch(url: str, dest_dir: Path, filename: str, checksum: str) -> Path:
    """``dest_dir / filename`` downloaded from ``url`` and verified against ``checksum``.

    A file already there with the right digest is kept (no second download); one with
    another digest is refused rather than overwritten, since it may be the user's own.
    """
    algorithm, expected = parse_checksum(checksum)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / filename
    if target.exists():
        actual = file_digest(target, algorithm)
        if actual == expected:
            return target
        raise XaibenchError(f"{target} exists but its {algorithm} is {actual}, not the release's {expected}: "
                            f"remove it to download it again")
    h = hashlib.new(algorithm, usedforsecurity=False)
    fd, part_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.", suffix=".part")
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    size = response.headers.get("Content-Length")
                    with tqdm(total=int(size) if size else None, unit="B", unit_scale=True, desc=filename,
                              disable=None, leave=False) as bar:
                        while chunk := response.read(_CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            bar.update(len(chunk))
            except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError is an OSError
                raise XaibenchError(f"could not download {url}: {exc}. Without network access, fetch the file "
                                    f"elsewhere and place it as {target} (or pass --mirror)") from None
        actual = h.hexdigest()
        if actual != expected:
            raise XaibenchError(f"{url}: {algorithm} mismatch: expected {expected}, got {actual}; the download is "
                                f"corrupt or the release changed, and was deleted")
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return target


def _member_names(archive: Path) -> list[tuple[str, bool]]:
    """``(name, is_link)`` of every member of a .zip or .tar(.gz) archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            return [(i.filename, (i.external_attr >> 16) & 0o170000 == 0o120000) for i in z.infolist()]
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            return [(m.name, m.issym() or m.islnk() or not (m.isfile() or m.isdir())) for m in t.getmembers()]
    raise XaibenchError(f"{archive}: not a .zip or .tar archive")


def extract(archive: Path, dest_dir: Path) -> list[Path]:
    """Unpack ``archive`` into ``dest_dir``; the top-level entries it added.

    Members with absolute paths, ``..`` or links are refused before anything is written.
    The archive is unpacked into a temporary folder inside ``dest_dir`` and its top-level
    entries are renamed into place only when complete; an existing entry is never replaced.
    """
    for name, is_link in _member_names(archive):
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]) or is_link:
            raise XaibenchError(f"{archive}: refusing member {name!r}: it is a link or would land outside {dest_dir}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".extract-"))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(staging)
        else:
            with tarfile.open(archive) as t:
                # members were checked above; the "data" filter (Python >= 3.11.4) checks again
                t.extractall(staging, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        entries = sorted(staging.iterdir())
        clash = [dest_dir / e.name for e in entries if (dest_dir / e.name).exists()]
        if clash:
            raise XaibenchError(f"{archive}: not unpacked, {', '.join(map(str, clash))} already exist(s); "
                                f"move it away to unpack the release")
        for e in entries:
            os.replace(e, dest_dir / e.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [dest_dir / e.name for e in entries]


def install(release: Release, root: Path, mirror: str | None = None) -> Path:
    """Fetch ``release`` into the data root (unpacking and then deleting an archive); ``root / provides``."""
    saved = root / release.filename
    path = fetch(release_url(release, mirror), saved.parent, saved.name, release.checksum)
    if release.extract:
        extract(path, saved.parent)
        path.unlink()
    return root / release.provides
