"""Downloads PhysioNet datasets with plain urllib: resumable and checksum-verified.

Why not wget or a new dependency: PhysioNet publishes ``SHA256SUMS.txt`` at the
root of every project's files (``https://physionet.org/files/<slug>/<version>/``),
which is both the file list and the checksums. So a download is: fetch that
list, then fetch each file into ``<name>.part`` (continuing a partial one with
an HTTP Range request), check its SHA-256 and only then rename it into place.
A file that is already complete and matches its checksum is skipped, so an
interrupted download is finished by running the same command again.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import Request, urlopen

from erts.progress import progress


PHYSIONET_FILES = "https://physionet.org/files"
USER_AGENT = "erts-downloader/0.1 (+python-urllib)"  # PhysioNet refuses some default agents
CHUNK = 1 << 20
RETRIES = 3
RETRY_WAIT_S = 2.0  # doubled after each failed attempt


@dataclass(frozen=True)
class Remote:
    """One dataset on PhysioNet: which project, and which of its files."""

    slug: str
    version: str
    prefix: str = ""  # only files under this folder (it is stripped from the local paths)
    files: tuple[str, ...] = ()  # only these files (default: every file under prefix)
    loader_root: str = ""  # what to pass as root= to the loader, relative to the download root

    @property
    def url(self) -> str:
        return f"{PHYSIONET_FILES}/{self.slug}/{self.version}/"


REMOTES: dict[str, Remote] = {
    "ptbxl": Remote("ptb-xl", "1.0.3"),
    "cinc2017": Remote("challenge-2017", "1.0.0", files=("training2017.zip",), loader_root="training2017.zip"),
    "mitbih": Remote("mitdb", "1.0.0"),
    "cpsc2018": Remote("challenge-2021", "1.0.3", prefix="training/cpsc_2018/"),
    "georgia": Remote("challenge-2021", "1.0.3", prefix="training/georgia/"),
}


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its checksum; the message names it."""


def parse_sha256sums(text: str) -> dict[str, str]:
    """``SHA256SUMS.txt`` lines ``<hex digest> <path>`` -> {path: digest}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) != 2:
            continue
        digest, path = parts[0].lower(), parts[1].strip().lstrip("*")
        if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            out[path] = digest
    return out


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _safe_relpath(path: str) -> PurePosixPath:
    """Refuses absolute paths and '..' so a listing can never write outside root."""
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise DownloadError(f"refusing unsafe path {path!r} in the file list")
    return p


def _get(url: str, start: int = 0):
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urlopen(Request(url, headers=headers), timeout=60)


def plan(remote: Remote, sums: dict[str, str]) -> list[tuple[str, str | None]]:
    """(remote path, expected digest or None) of every file to fetch."""
    if remote.files:
        return [(remote.prefix + f, sums.get(remote.prefix + f)) for f in remote.files]
    todo = [(p, d) for p, d in sorted(sums.items()) if p.startswith(remote.prefix)]
    if not todo:
        raise DownloadError(f"SHA256SUMS.txt lists no file under {remote.prefix!r}")
    return todo


def fetch(url: str, dest: Path, digest: str | None, name: str) -> int:
    """Downloads ``url`` to ``dest`` via ``dest.part`` (resumed if present); returns bytes received.

    The file reaches its final name only once complete and, when ``digest`` is
    given, verified. A checksum mismatch deletes the ``.part`` and raises.
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    received = 0
    for attempt in range(1, RETRIES + 1):
        start = part.stat().st_size if part.exists() else 0
        try:
            received += _transfer(url, part, start)
            break
        except (OSError, http.client.HTTPException, DownloadError) as e:
            if isinstance(e, HTTPError) and e.code not in (408, 429, 500, 502, 503, 504):
                raise DownloadError(f"{name}: HTTP {e.code} {e.reason} for {url}") from None
            if attempt == RETRIES:
                raise DownloadError(f"{name}: download failed after {RETRIES} attempts: {e}") from None
            time.sleep(RETRY_WAIT_S * 2 ** (attempt - 1))
    if digest is not None:
        got = sha256_of(part)
        if got != digest:
            part.unlink()
            raise DownloadError(f"{name}: SHA-256 mismatch (expected {digest}, got {got}); the bad download "
                                "was deleted, run the command again to retry")
    os.replace(part, dest)
    return received


def _transfer(url: str, part: Path, start: int) -> int:
    """One request: appends to ``part`` from ``start`` (206) or rewrites it (200)."""
    try:
        resp = _get(url, start)
    except HTTPError as e:
        if e.code == 416 and start:  # nothing left to send: the .part is already whole
            return 0
        raise
    with resp:
        resumed = start > 0 and resp.status == 206
        if resumed and not (resp.headers.get("Content-Range") or "").startswith(f"bytes {start}-"):
            part.unlink()  # cannot trust where the bytes belong: start over on the next attempt
            raise DownloadError(f"server answered a Range request for {url} with {resp.headers.get('Content-Range')!r}")
        expected = resp.headers.get("Content-Length")
        n = 0
        with open(part, "ab" if resumed else "wb") as out:
            while block := resp.read(CHUNK):
                out.write(block)
                n += len(block)
    if expected is not None and n < int(expected):
        raise DownloadError(f"connection closed after {n} of {expected} bytes of {url}")
    return n


def download(dataset: str, root: Path, *, base_url: str | None = None, quiet: bool = False) -> Path:
    """Downloads ``dataset`` from PhysioNet into ``root``; returns the path to give the loader as root=.

    ``base_url`` replaces the project's files URL (``https://physionet.org/files/<slug>/<version>/``),
    e.g. for a mirror. Files already complete (checksum verified) are skipped; partial
    ``.part`` files are continued. Also writes the dataset's checksums to
    ``root/SHA256SUMS.txt`` so ``sha256sum -c`` can check the folder later.
    """
    if dataset not in REMOTES:
        raise ValueError(f"cannot download {dataset!r}; downloadable: {', '.join(REMOTES)}")
    remote = REMOTES[dataset]
    root = Path(root).expanduser()
    base = (base_url or remote.url).rstrip("/") + "/"
    sums_url = base + "SHA256SUMS.txt"
    try:
        with _get(sums_url) as resp:
            sums = parse_sha256sums(resp.read().decode("utf-8", errors="replace"))
    except (URLError, OSError) as e:
        raise DownloadError(f"cannot fetch the file list {sums_url}: {e}") from None
    todo = plan(remote, sums)
    root.mkdir(parents=True, exist_ok=True)
    listing = [f"{d}  {_safe_relpath(p[len(remote.prefix):])}" for p, d in todo if d]
    (root / "SHA256SUMS.txt.tmp").write_text("\n".join(listing) + "\n")
    os.replace(root / "SHA256SUMS.txt.tmp", root / "SHA256SUMS.txt")
    skipped = fetched = nbytes = 0
    failed: list[str] = []
    bar = progress(todo, dataset, unit="file", disable=quiet, every=100)
    for path, digest in bar:
        rel = _safe_relpath(path[len(remote.prefix):])
        dest = root / rel
        if dest.exists() and (digest is None or sha256_of(dest) == digest):
            skipped += 1
            continue
        if digest is None and not quiet:
            bar.write(f"{dataset}: no published checksum for {path}; downloading it unverified")
        try:
            nbytes += fetch(base + quote(path), dest, digest, str(rel))
            fetched += 1
        except DownloadError as e:  # one bad file must not stop a 40,000-file download
            failed.append(str(e))
        bar.set_postfix_str(f"{nbytes / 1e6:.1f} MB")
    if not quiet:
        print(f"{dataset}: {fetched} file(s) downloaded ({nbytes / 1e6:.1f} MB), {skipped} already complete, "
              f"{len(failed)} failed, in {root}")
    if failed:
        more = f"\n  ... and {len(failed) - 10} more" if len(failed) > 10 else ""
        raise DownloadError(f"{len(failed)} file(s) of {dataset} failed:\n  " + "\n  ".join(failed[:10]) + more)
    return root / remote.loader_root if remote.loader_root else root
