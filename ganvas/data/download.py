"""The data sets the original repositories publish, fetched into the layout ganvas reads.

`download_dataset("facades", Path("datasets"))` fetches the archive from its official location (or a
mirror: `mirror=` or GANVAS_DATA_MIRROR, which replaces the host and keeps the path), resuming a partial
download with an HTTP range request, checks its size and, where known, its SHA-256, and unpacks it
into a hidden folder beside the target that is renamed into place only when complete: a failed or
interrupted download never leaves a half-unpacked data set. Archives are unpacked with Python's
`data` filter (no absolute paths, no `..`, no links out of the folder, no device files).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ganvas.errors import DataError
from ganvas.files import atomic_write_text

log = logging.getLogger("ganvas")

OFFICIAL_HOST = "http://efrosgans.eecs.berkeley.edu"
MIRROR_VARIABLE = "GANVAS_DATA_MIRROR"
MARKER = ".ganvas_download.json"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Published:
    """One published data set: where its archive is, the folder it unpacks to and what that holds."""

    name: str  # the key ("facades", "cyclegan/maps")
    url: str
    folder: str  # the folder the archive holds (and ganvas writes under --out)
    expects: tuple[str, ...]  # subfolders a complete copy has
    size: int = 0  # bytes of the archive, where known
    sha256: str = ""  # where known

    @property
    def layout(self) -> str:
        return "paired A|B images (--dataset_mode aligned)" if "train" in self.expects else "unpaired trainA/trainB"


def _pix2pix(name: str, size: int = 0) -> Published:
    return Published(name, f"{OFFICIAL_HOST}/pix2pix/datasets/{name}.tar.gz", name, ("train",), size)


def _cyclegan(name: str, key: str | None = None) -> Published:
    url = f"{OFFICIAL_HOST}/cyclegan/datasets/{name}.zip"
    return Published(key or name, url, name, ("trainA", "trainB"))


PUBLISHED: dict[str, Published] = {
    p.name: p
    for p in (
        _pix2pix("facades", 30168306),
        _pix2pix("maps"),
        _pix2pix("edges2shoes"),
        _pix2pix("edges2handbags"),
        _pix2pix("night2day"),
        _cyclegan("horse2zebra"),
        _cyclegan("apple2orange"),
        _cyclegan("summer2winter_yosemite"),
        _cyclegan("monet2photo"),
        _cyclegan("cezanne2photo"),
        _cyclegan("ukiyoe2photo"),
        _cyclegan("vangogh2photo"),
        _cyclegan("iphone2dslr_flower"),
        _cyclegan("maps", "cyclegan/maps"),
    )
}
ALIASES = {"pix2pix/maps": "maps", "pix2pix/facades": "facades"}
CITYSCAPES = (
    "Cityscapes is not redistributed (its licence needs a login at https://www.cityscapes-dataset.com): download "
    "gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip there, then run `ganvas data prepare-cityscapes "
    "--gtFine gtFine_trainvaltest.zip --leftImg8bit leftImg8bit_trainvaltest.zip`"
)


def published(name: str) -> Published:
    """The entry of a published data set; DataError naming the choices for an unknown name."""
    key = ALIASES.get(name, name)
    if key in PUBLISHED:
        return PUBLISHED[key]
    if name.split("/")[-1] == "cityscapes":
        raise DataError(CITYSCAPES)
    raise DataError(f"no published data set {name!r}; choose one of {', '.join(PUBLISHED)}")


def official_or_mirror(url: str, mirror: str | None) -> str:
    """The URL to fetch: the official one, or the mirror's base with the official path."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_VARIABLE) or None
    if not mirror:
        return url
    return mirror.rstrip("/") + urlsplit(url).path


def download_dataset(
    name: str,
    out: Path,
    mirror: str | None = None,
    force: bool = False,
    keep_archive: bool = False,
    show_progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch and unpack a published data set into out/<folder>; returns that folder.

    A copy unpacked before (its marker file says which archive it came from) is kept as it is unless
    `force`. The archive waits in out/.downloads/ while it is incomplete (the next call resumes it) and is
    removed after unpacking unless `keep_archive`.
    """
    entry = published(name)
    out = Path(out)
    target = out / entry.folder
    if (target / MARKER).is_file() and not force:
        log.info("%s is already in %s; pass --force to fetch it again", entry.name, target)
        return target
    if target.exists() and not force:
        raise DataError(
            f"{target} exists but was not unpacked by ganvas data download (no {MARKER}); move it away, or pass "
            f"--force to replace it"
        )
    url = official_or_mirror(entry.url, mirror)
    archive = out / ".downloads" / Path(urlsplit(entry.url).path).name
    fetch(url, archive, size=entry.size, sha256=entry.sha256, show_progress=show_progress, timeout=timeout)
    unpack_into(archive, out, entry, force)
    atomic_write_text(
        target / MARKER,
        json.dumps({"name": entry.name, "url": url, "sha256": file_sha256(archive), "at": time.time()}, indent=1),
    )
    if not keep_archive:
        archive.unlink()
    return target


def fetch(
    url: str, dest: Path, size: int = 0, sha256: str = "", show_progress: bool = True, timeout: float = 60.0
) -> Path:
    """Download url to dest, resuming dest.part with a range request; check the size and the SHA-256 if given.

    `sha256` may be a prefix of the hash, as torch.hub names weight files (`...-6726825d.pth`).
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and _matches(dest, size, sha256):
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(
        url, headers={"User-Agent": "ganvas", **({"Range": f"bytes={have}-"} if have else {})}
    )
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) and file URLs by design)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have and (not size or have == size):  # the part is whole already
            return _finish(part, dest, size, sha256, url)
        raise DataError(f"{url} answered {err.code} {err.reason}; check the name, or pass --mirror") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(
            f"cannot reach {url} ({reason}); check the network or pass --mirror URL (or {MIRROR_VARIABLE}) with a "
            f"copy; a partial download is resumed next time"
        ) from None
    with response:
        resumed = getattr(response, "status", 200) == 206
        if have and not resumed:
            have = 0  # the server sent the whole file: start again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else (size or None)
        with (
            open(part, "ab" if resumed else "wb") as fh,
            tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, disable=not show_progress
            ) as bar,
        ):
            try:
                while chunk := response.read(CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
            except (OSError, urllib.error.URLError) as err:
                raise DataError(
                    f"the download of {url} broke off after {fh.tell()} bytes ({err}); run the command again to "
                    f"resume it"
                ) from None
    if total is not None and part.stat().st_size < total:
        raise DataError(
            f"the download of {url} stopped at {part.stat().st_size} of {total} bytes; run the command again to "
            f"resume it"
        )
    return _finish(part, dest, size, sha256, url)


def _finish(part: Path, dest: Path, size: int, sha256: str, url: str) -> Path:
    if not _matches(part, size, sha256):
        got = part.stat().st_size
        part.unlink()
        what = f"{got} bytes where {size} were expected" if size and got != size else "a different SHA-256"
        raise DataError(
            f"the file from {url} has {what}, so it is not the published archive; it was deleted (a mirror with "
            f"another copy, or a proxy's error page?)"
        )
    os.replace(part, dest)
    return dest


def _matches(path: Path, size: int, sha256: str) -> bool:
    return (not size or path.stat().st_size == size) and (not sha256 or file_sha256(path).startswith(sha256))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def unpack_into(archive: Path, out: Path, entry: Published, force: bool = False) -> Path:
    """Unpack an archive holding entry.folder/ into out/entry.folder, through a hidden folder renamed into place."""
    staging = out / f".unpacking-{entry.folder}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _extract(archive, staging)
        unpacked = staging / entry.folder
        missing = [sub for sub in entry.expects if not (unpacked / sub).is_dir()]
        if missing:
            raise DataError(
                f"{archive} holds no {entry.folder}/{missing[0]}/ (a {entry.layout} set); it is not the published "
                f"archive of {entry.name}: delete it and download again"
            )
        target = out / entry.folder
        if target.exists() and force:
            shutil.rmtree(target)
        os.replace(unpacked, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract(archive: Path, into: Path) -> None:
    """Extract a .tar.gz or .zip whose members all stay inside `into` (DataError otherwise)."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for member in zipped.namelist():
                    _check_member(member, archive)
                zipped.extractall(into)
        else:
            with tarfile.open(archive) as tarred:
                tarred.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise DataError(
            f"cannot unpack {archive} ({type(err).__name__}: {err}); it is damaged or not the published archive: "
            f"delete it and download again"
        ) from None


def _check_member(name: str, archive: Path) -> None:
    path = Path(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")):
        raise DataError(f"{archive} holds the member {name!r}, which points outside its folder; it was not unpacked")
