"""The PhysioNet downloader against a local HTTP server on 127.0.0.1 (no real host is ever contacted)."""
from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from erts.data import download as dl

FILES = {  # a tiny mitdb-like project
    "RECORDS": b"100\n101\n",
    "100.hea": b"100 2 360 650000\n",
    "100.dat": bytes(range(256)) * 400,  # 100 kB
    "101.hea": b"101 2 360 650000\n",
    "mitdbdir/intro.htm": b"<html>intro</html>",
}


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.folder``; honours ``Range: bytes=N-`` (SimpleHTTPRequestHandler does not)."""

    def do_GET(self) -> None:
        self.server.log.append((unquote(self.path), self.headers.get("Range")))
        path = self.server.folder / unquote(self.path).lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if self.path.lstrip("/") in self.server.drop_once:  # promise everything, send half, hang up
            self.server.drop_once.remove(self.path.lstrip("/"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # keep test output clean
        pass


def _publish(folder: Path, files: dict[str, bytes], corrupt: str | None = None) -> None:
    """Writes the files and a PhysioNet-style SHA256SUMS.txt (with a wrong digest for ``corrupt``)."""
    lines = []
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        digest = hashlib.sha256(data + (b"x" if name == corrupt else b"")).hexdigest()
        lines.append(f"{digest} {name}")
    (folder / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def server(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.folder, httpd.log, httpd.drop_once = folder, [], set()
    monkeypatch.setattr(dl, "RETRY_WAIT_S", 0.0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _gets(httpd, name: str) -> list:
    return [rng for path, rng in httpd.log if path == "/" + name]


def test_fresh_download_and_skip_of_complete_files(server, tmp_path):
    httpd, url = server
    _publish(httpd.folder, FILES)
    root = tmp_path / "mitdb"
    out = dl.download("mitbih", root, base_url=url, quiet=True)
    assert out == root
    for name, data in FILES.items():
        assert (root / name).read_bytes() == data
    assert not list(root.rglob("*.part"))
    assert "100.dat" in (root / "SHA256SUMS.txt").read_text()
    n_requests = len(httpd.log)
    assert n_requests == 1 + len(FILES)  # the list, then every file once
    dl.download("mitbih", root, base_url=url, quiet=True)
    assert len(httpd.log) == n_requests + 1  # only the list again: every file verified and skipped
    (root / "100.dat").write_bytes(b"damaged")
    dl.download("mitbih", root, base_url=url, quiet=True)
    assert (root / "100.dat").read_bytes() == FILES["100.dat"] and _gets(httpd, "100.dat") == [None, None]


def test_resume_partial_file_with_range(server, tmp_path):
    httpd, url = server
    _publish(httpd.folder, FILES)
    root = tmp_path / "mitdb"
    root.mkdir()
    (root / "100.dat.part").write_bytes(FILES["100.dat"][:30000])
    dl.download("mitbih", root, base_url=url, quiet=True)
    assert _gets(httpd, "100.dat") == ["bytes=30000-"]
    assert (root / "100.dat").read_bytes() == FILES["100.dat"] and not (root / "100.dat.part").exists()
    # a .part that is already whole: the server answers 416 and the file is verified and kept
    (root / "101.hea").rename(root / "101.hea.part")
    dl.download("mitbih", root, base_url=url, quiet=True)
    assert _gets(httpd, "101.hea")[-1] == f"bytes={len(FILES['101.hea'])}-"
    assert (root / "101.hea").read_bytes() == FILES["101.hea"]


def test_dropped_connection_is_retried_from_where_it_stopped(server, tmp_path):
    httpd, url = server
    _publish(httpd.folder, FILES)
    httpd.drop_once.add("100.dat")
    root = tmp_path / "mitdb"
    dl.download("mitbih", root, base_url=url, quiet=True)
    half = len(FILES["100.dat"]) // 2
    assert _gets(httpd, "100.dat") == [None, f"bytes={half}-"]
    assert (root / "100.dat").read_bytes() == FILES["100.dat"]


def test_checksum_mismatch_names_the_file_and_keeps_nothing(server, tmp_path):
    httpd, url = server
    _publish(httpd.folder, FILES, corrupt="100.dat")
    root = tmp_path / "mitdb"
    with pytest.raises(dl.DownloadError, match=r"100\.dat: SHA-256 mismatch"):
        dl.download("mitbih", root, base_url=url, quiet=True)
    assert not (root / "100.dat").exists() and not (root / "100.dat.part").exists()
    assert (root / "100.hea").exists()  # files before it were kept


def test_prefix_selection_and_loader_root(server, tmp_path):
    httpd, url = server
    files = {"training/cpsc_2018/g1/A0001.hea": b"h", "training/cpsc_2018/g1/A0001.mat": b"m",
             "training/georgia/g1/E00001.hea": b"g", "training2017.zip": b"PK-not-really"}
    _publish(httpd.folder, files)
    root = dl.download("cpsc2018", tmp_path / "cpsc", base_url=url, quiet=True)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "SHA256SUMS.txt", "g1/A0001.hea", "g1/A0001.mat"]
    got = dl.download("cinc2017", tmp_path / "cinc", base_url=url, quiet=True)
    assert got == tmp_path / "cinc" / "training2017.zip" and got.read_bytes() == b"PK-not-really"


def test_errors(server, tmp_path):
    httpd, url = server
    with pytest.raises(ValueError, match="downloadable: ptbxl"):
        dl.download("synthetic", tmp_path)
    with pytest.raises(dl.DownloadError, match="SHA256SUMS.txt"):
        dl.download("mitbih", tmp_path / "x", base_url=url, quiet=True)  # nothing published: 404
    _publish(httpd.folder, {"../evil": b"x"})
    with pytest.raises(dl.DownloadError, match="unsafe path"):
        dl.download("mitbih", tmp_path / "y", base_url=url, quiet=True)
    assert dl.parse_sha256sums("0" * 64 + "  a/b.dat\n" + "zz notahash\n\n" + "F" * 64 + " *c") == {
        "a/b.dat": "0" * 64, "c": "f" * 64}
