"""`ganvas data download` against a local HTTP server (ranges, broken connections), and `ganvas data combine`."""

from __future__ import annotations

import io
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganvas.cli import main
from ganvas.data import download
from ganvas.data.download import MARKER, download_dataset, fetch
from ganvas.data.prepare import combine_folders
from ganvas.errors import DataError


def image_bytes(seed: int, size: tuple[int, int] = (8, 16), fmt: str = "JPEG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


FACADES = tar_gz({f"facades/{split}/{i}.jpg": image_bytes(i) for split in ("train", "test", "val") for i in range(3)})
HORSES = zip_bytes(
    {f"horse2zebra/{side}/{i}.jpg": image_bytes(10 + i) for side in ("trainA", "trainB") for i in range(2)}
)


class Server:
    """Serves `files` by URL path; answers Range requests; can break the first response after `cut` bytes."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.requests, self.cut = dict(files), [], None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if ranged:
                    start = int(ranged.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut is not None:
                    self.wfile.write(body[: server.cut])
                    server.cut = None
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = Server({"/pix2pix/datasets/facades.tar.gz": FACADES, "/cyclegan/datasets/horse2zebra.zip": HORSES})
    yield running
    running.close()


@pytest.fixture(autouse=True)
def unknown_sizes(monkeypatch):
    """The test archives are not the published ones: drop the published sizes."""
    entries = {k: download.Published(v.name, v.url, v.folder, v.expects) for k, v in download.PUBLISHED.items()}
    monkeypatch.setattr(download, "PUBLISHED", entries)


def test_a_paired_and_an_unpaired_set_unpack_into_the_layouts_ganvas_reads(server, tmp_path):
    facades = download_dataset("facades", tmp_path, mirror=server.url, show_progress=False)
    assert sorted(p.name for p in facades.iterdir() if p.is_dir()) == ["test", "train", "val"]
    assert len(list((facades / "train").glob("*.jpg"))) == 3 and (facades / MARKER).is_file()
    horses = download_dataset("horse2zebra", tmp_path, mirror=server.url, show_progress=False)
    assert (horses / "trainA" / "0.jpg").read_bytes() == image_bytes(10)
    assert not list(tmp_path.glob(".unpacking-*")) and not list((tmp_path / ".downloads").iterdir())
    # a finished copy is kept: no request the second time
    before = len(server.requests)
    download_dataset("facades", tmp_path, mirror=server.url, show_progress=False)
    assert len(server.requests) == before


def test_a_broken_download_resumes_with_a_range_request(server, tmp_path):
    server.cut = 1000
    with pytest.raises(DataError, match="run the command again to resume"):
        download_dataset("facades", tmp_path, mirror=server.url, show_progress=False)
    part = tmp_path / ".downloads" / "facades.tar.gz.part"
    assert part.stat().st_size == 1000 and not (tmp_path / "facades").exists()
    download_dataset("facades", tmp_path, mirror=server.url, show_progress=False)
    assert server.requests[-1][1] == "bytes=1000-"
    assert len(list((tmp_path / "facades" / "test").glob("*.jpg"))) == 3


def test_the_mirror_comes_from_the_environment_too(server, tmp_path, monkeypatch):
    monkeypatch.setenv("GANVAS_DATA_MIRROR", server.url + "/")
    download_dataset("horse2zebra", tmp_path, show_progress=False)
    assert server.requests == [("/cyclegan/datasets/horse2zebra.zip", None)]


def test_a_wrong_size_or_checksum_is_refused_and_nothing_is_unpacked(server, tmp_path):
    with pytest.raises(DataError, match="not the published archive"):
        fetch(server.url + "/pix2pix/datasets/facades.tar.gz", tmp_path / "f.tar.gz", sha256="0" * 64)
    with pytest.raises(DataError, match=f"{len(FACADES)} bytes where 5 were expected"):
        fetch(server.url + "/pix2pix/datasets/facades.tar.gz", tmp_path / "f.tar.gz", size=5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "archive, message",
    [
        (tar_gz({"facades/train/0.jpg": b"x", "../evil.txt": b"x"}), "outside"),
        (tar_gz({"facades/test/0.jpg": b"x"}), "holds no facades/train"),
        (b"this is not an archive", "cannot unpack"),
    ],
)
def test_a_bad_archive_leaves_no_half_unpacked_folder(server, tmp_path, archive, message):
    server.files["/pix2pix/datasets/facades.tar.gz"] = archive
    with pytest.raises(DataError, match=message):
        download_dataset("facades", tmp_path / "out", mirror=server.url, show_progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".downloads"]
    assert not (tmp_path / "evil.txt").exists()


def test_a_zip_member_outside_its_folder_is_refused(server, tmp_path):
    server.files["/cyclegan/datasets/horse2zebra.zip"] = zip_bytes({"horse2zebra/trainA/0.jpg": b"x", "../x": b"x"})
    with pytest.raises(DataError, match="points outside its folder"):
        download_dataset("horse2zebra", tmp_path / "out", mirror=server.url, show_progress=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "out" / "horse2zebra").exists()


def test_names_are_checked_and_cityscapes_points_to_its_own_site(tmp_path):
    with pytest.raises(DataError, match="horse2zebra"):
        download_dataset("horses", tmp_path)
    with pytest.raises(DataError, match="cityscapes-dataset.com"):
        download_dataset("cityscapes", tmp_path)
    (tmp_path / "facades").mkdir()
    with pytest.raises(DataError, match="--force"):
        download_dataset("facades", tmp_path)


def test_an_unreachable_host_says_to_pass_a_mirror(tmp_path):
    with pytest.raises(DataError, match="--mirror"):
        download_dataset("facades", tmp_path, mirror="http://127.0.0.1:9", show_progress=False, timeout=5)


def test_the_command_line_downloads_and_prints_the_dataroot(server, tmp_path, capsys):
    assert main(["data", "download", "cyclegan/maps", "--out", str(tmp_path), "--mirror", server.url]) == 2
    server.files["/cyclegan/datasets/maps.zip"] = zip_bytes(
        {f"maps/{s}/0.jpg": image_bytes(1) for s in ("trainA", "trainB")}
    )
    assert main(["data", "download", "cyclegan/maps", "--out", str(tmp_path), "--mirror", server.url]) == 0
    assert f"--dataroot {tmp_path / 'maps'}" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------- combine


def write_image(path: Path, seed: int, size: tuple[int, int] = (8, 12)) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


@pytest.mark.parametrize("workers", [1, 2])
def test_combine_puts_a_beside_b_per_split_and_names_the_unmatched(tmp_path, workers):
    a = {(s, i): write_image(tmp_path / "A" / s / f"{i}.png", i) for s in ("train", "test") for i in range(3)}
    b = {(s, i): write_image(tmp_path / "B" / s / f"{i}.png", 100 + i) for s in ("train", "test") for i in range(2)}
    done = combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "AB", workers=workers)
    assert done.written == {"test": 2, "train": 2} and done.unmatched["train"] == ["2.png"]
    pair = np.asarray(Image.open(tmp_path / "AB" / "train" / "1.png"))
    assert np.array_equal(pair, np.concatenate([a["train", 1], b["train", 1]], axis=1))


def test_combine_with_ab_names_and_mismatched_sizes(tmp_path, capsys):
    write_image(tmp_path / "A" / "train" / "x_A.png", 1)
    write_image(tmp_path / "B" / "train" / "x_B.png", 2)
    argv = ["data", "combine", "--fold_A", str(tmp_path / "A"), "--fold_B", str(tmp_path / "B")]
    assert main([*argv, "--fold_AB", str(tmp_path / "AB"), "--use_AB", "--no_multiprocessing"]) == 0
    assert (tmp_path / "AB" / "train" / "x.png").is_file() and "1 in train" in capsys.readouterr().out
    write_image(tmp_path / "B" / "train" / "x_B.png", 2, size=(9, 12))
    with pytest.raises(DataError, match="a pair needs one size"):
        combine_folders(tmp_path / "A", tmp_path / "B", tmp_path / "AB2", use_ab=True, workers=1)


# ----------------------------------------------------------------------------------------- Cityscapes


def cityscapes_zips(tmp_path: Path, scenes: dict[str, list[str]], no_photo: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Small gtFine and leftImg8bit zips in the official layout: 8-bit labelIds, 16-bit instanceIds, photos."""
    gt, left = {}, {}
    for split, stems in scenes.items():
        for n, stem in enumerate(stems):
            city = stem.split("_")[0]
            labels = np.full((4, 8), 7 + n, np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(labels).save(buffer, format="PNG")
            gt[f"gtFine/{split}/{city}/{stem}_gtFine_labelIds.png"] = buffer.getvalue()
            buffer = io.BytesIO()
            Image.fromarray(np.full((4, 8), 26000 + n, np.uint16)).save(buffer, format="PNG")
            gt[f"gtFine/{split}/{city}/{stem}_gtFine_instanceIds.png"] = buffer.getvalue()
            gt[f"gtFine/{split}/{city}/{stem}_gtFine_color.png"] = b"ignored"
            if stem not in no_photo:
                left[f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"] = image_bytes(n, (4, 8), "PNG")
    (tmp_path / "gt.zip").write_bytes(zip_bytes(gt))
    (tmp_path / "left.zip").write_bytes(zip_bytes(left))
    return tmp_path / "gt.zip", tmp_path / "left.zip"


def test_cityscapes_zips_become_pix2pixhds_layout_that_the_data_set_reads(tmp_path, capsys):
    from ganvas.data.datasets import make_dataset
    from ganvas.data.prepare import prepare_cityscapes
    from ganvas.options import resolve_options

    scenes = {"train": ["aachen_000000_000019", "bochum_000000_000313"], "val": ["lindau_000000_000019"]}
    gt, left = cityscapes_zips(tmp_path, scenes)
    out = tmp_path / "cityscapes"
    assert main(["data", "prepare-cityscapes", "--gtFine", str(gt), "--leftImg8bit", str(left), "--out", str(out)]) == 0
    assert "2 training and 1 test scenes" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        f"{s}_{k}" for s in ("test", "train") for k in ("img", "inst", "label")
    ]
    given = {"model": "pix2pixhd", "dataroot": str(out), "label_nc": 35, "name": "cs", "gpu_ids": "-1"}
    opt = resolve_options({**given, "checkpoints_dir": str(tmp_path), "preprocess": "none"}, "train")
    item = make_dataset(opt, train=True)[1]
    assert int(item["label"].max()) == 8 and int(item["inst"].max()) == 26001  # the second scene, paired by name
    with pytest.raises(DataError, match="--force"):
        prepare_cityscapes(gt, left, out)
    assert prepare_cityscapes(gt, left, out, force=True) == {"train": 2, "test": 1}


def test_cityscapes_labels_without_photos_are_named(tmp_path):
    from ganvas.data.prepare import prepare_cityscapes

    gt, left = cityscapes_zips(
        tmp_path, {"train": ["aachen_000000_000019", "bonn_000000_000001"]}, ("aachen_000000_000019",)
    )
    with pytest.raises(DataError, match="aachen_000000_000019 of train has labelIds but no leftImg8bit photo"):
        prepare_cityscapes(gt, left, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
