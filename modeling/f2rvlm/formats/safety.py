"""Limits and safe handling of uploaded files: size checks, zip archives, image checks.

Every reader and the Space open uploads through this module. A zip archive is inspected
before anything is read from it:

- members whose name escapes the archive (`../x`, `/etc/x`, `C:\\x`, `C:x`) are refused;
- symbolic links (unix mode bits in the external attributes) are refused;
- too many members, too large a declared total, or a member whose declared ratio of
  uncompressed to compressed size is extreme (a decompression bomb) are refused;
- while a member is read, the bytes are counted, so a member that lies about its size
  cannot get past the limits either;
- archives inside the archive are never opened (nested archives are not followed).

Files are only ever written below a folder the caller gives (`SafeZip.extract`).

Defaults of `ImportLimits` (documented choices, the Space may lower them):

| limit | default | why |
|---|---|---|
| max_upload_bytes | 50 MB | a year of a busy chat with a few hundred photos |
| max_members | 5,000 | members of one zip |
| max_total_uncompressed | 500 MB | sum of all members as declared and as read |
| max_ratio | 200 | per member over 1 MiB; chat text compresses ~10x, zeros ~1000x |
| max_turns | 5,000 | turns of one imported dialogue (long chats are windowed, PROTOCOL §8) |
| max_image_pixels | 40 M | width x height of one image (Pillow warns at ~89 M) |
| max_extract_bytes | 500 MB | bytes one import may write to `extract_to` (the Space's per-session disk cap) |
| max_extract_ratio | 10 | ... and at most this many times the zip's size, but always 10 MB (photos hardly compress) |

A member that cannot be used (damaged, or over `max_extract_bytes`) raises `MediaSkipped`: an image
is then left out and reported under `MediaSkipped.kind`; the chat file itself ends the import.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MB = 1_000_000
#: Members smaller than this are not held to `max_ratio` (tiny files compress extremely well).
RATIO_CHECK_MIN_BYTES = 1 << 20
#: Suffixes of archives that are never opened when found inside an upload.
NESTED_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
_CHUNK = 1 << 16
#: What `zipfile` raises on a damaged archive besides `BadZipFile`: a corrupt deflate/bzip2/lzma
#: stream (`zlib.error`, `OSError`, `EOFError`, `lzma.LZMAError` is an `Exception`), a truncated
#: header (`struct.error`), an unsupported method (`NotImplementedError`), a mangled name or
#: encryption flag (`ValueError`, `RuntimeError`, `UnicodeDecodeError`).
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, OSError, EOFError, ValueError,
              RuntimeError, NotImplementedError, IndexError, KeyError, OverflowError)


class ChatImportError(ValueError):
    """An uploaded chat cannot be imported; the message names the file and the problem.

    `unexpected` is True only for the `import_chat` safety net (a bug in a reader, logged with
    its traceback); readers raise it with False."""

    unexpected = False


class MediaSkipped(ChatImportError):
    """One media file cannot be used; readers leave the image out and report it as `kind`."""

    kind = "unreadable image"


class DamagedMemberError(MediaSkipped):
    """One zip member cannot be decompressed (corrupt stream, lying header); a damaged image is
    reported and left out, a damaged chat file ends the import."""


class DiskCapError(MediaSkipped):
    """Extracting one more member would pass `ImportLimits.max_extract_bytes`."""

    kind = "image over the disk cap"


@dataclass(frozen=True)
class ImportLimits:
    """Upper bounds on what one import may read (see the module docstring for the defaults).

    >>> ImportLimits(max_turns=2000).max_turns
    2000
    """

    max_upload_bytes: int = 50 * MB
    max_members: int = 5_000
    max_total_uncompressed: int = 500 * MB
    max_ratio: float = 200.0
    max_turns: int = 5_000
    max_image_pixels: int = 40_000_000
    max_extract_bytes: int = 500 * MB
    max_extract_ratio: float = 10.0


#: An import may always extract this much (a small zip with a few photos), whatever its size.
EXTRACT_FLOOR_BYTES = 10 * MB


DEFAULT_LIMITS = ImportLimits()


def check_upload(path: str | os.PathLike, limits: ImportLimits) -> Path:
    """The upload as a `Path` after checking it exists, is a file, is not empty and not too big."""
    path = Path(path)
    if not path.exists():
        raise ChatImportError(f"{path}: file not found")
    if path.is_dir():
        return path
    size = path.stat().st_size
    if size == 0:
        raise ChatImportError(f"{path.name}: file is empty")
    if size > limits.max_upload_bytes:
        raise ChatImportError(
            f"{path.name}: file is {size / MB:.1f} MB; the limit is {limits.max_upload_bytes / MB:.1f} MB"
        )
    return path


def read_limited(path: Path, limits: ImportLimits) -> bytes:
    """The bytes of a plain file already passed through `check_upload`."""
    with open(path, "rb") as f:
        data = f.read(limits.max_upload_bytes + 1)
    if len(data) > limits.max_upload_bytes:
        raise ChatImportError(f"{path.name}: file grew past the upload limit while being read")
    return data


# ----------------------------------------------------------------------------------------------
# Zip archives
# ----------------------------------------------------------------------------------------------
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_member_name(name: str) -> str:
    """The member name as a clean relative POSIX path, or `ChatImportError` if it escapes."""
    cleaned = name.replace("\\", "/")
    if "\x00" in cleaned or cleaned.startswith("/") or _DRIVE.match(cleaned):
        raise ChatImportError(f"zip member {_short(name)} escapes the archive (absolute path)")
    parts = [p for p in PurePosixPath(cleaned).parts if p not in ("", ".")]
    if ".." in parts:
        raise ChatImportError(f"zip member {_short(name)} escapes the archive")
    return "/".join(parts)


def is_nested_archive(name: str) -> bool:
    return name.lower().endswith(NESTED_ARCHIVE_SUFFIXES)


class SafeZip:
    """A zip archive whose every member was checked against `ImportLimits` on opening.

    `names` are the clean relative paths of the file members (directories left out). Members
    are read with `read` (bytes, counted) or written below a caller-given folder with `extract`.
    """

    def __init__(self, path: str | os.PathLike, limits: ImportLimits = DEFAULT_LIMITS):
        self.path = Path(path)
        self.limits = limits
        self._bytes_read = 0
        self._bytes_extracted = 0
        try:
            archive_bytes = self.path.stat().st_size
        except OSError:
            archive_bytes = 0
        #: bytes `extract` may write: a small zip of very compressible files cannot fill a disk
        self.extract_cap = min(limits.max_extract_bytes,
                               max(EXTRACT_FLOOR_BYTES, int(limits.max_extract_ratio * archive_bytes)))
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
        except ZIP_ERRORS as err:
            raise ChatImportError(f"{self.path.name}: not a readable zip archive ({_reason(err)})") from None
        if len(infos) > limits.max_members:
            raise ChatImportError(
                f"{self.path.name}: archive has {len(infos)} members; the limit is {limits.max_members}"
            )
        self._members: dict[str, zipfile.ZipInfo] = {}
        declared_total = 0
        for info in infos:
            name = safe_member_name(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ChatImportError(
                    f"zip member {_short(info.filename)} is a symbolic link; links are not allowed"
                )
            if info.is_dir() or not name:
                continue
            if info.flag_bits & 0x1:
                raise ChatImportError(f"zip member {_short(info.filename)} is encrypted")
            declared_total += info.file_size
            self._check_ratio(info)
            self._members[name] = info
        self._index = {name: i for i, name in enumerate(self._members)}
        if declared_total > limits.max_total_uncompressed:
            raise ChatImportError(
                f"{self.path.name}: archive unpacks to {declared_total / MB:.1f} MB; "
                f"the limit is {limits.max_total_uncompressed / MB:.1f} MB"
            )

    def _check_ratio(self, info: zipfile.ZipInfo) -> None:
        if info.file_size < RATIO_CHECK_MIN_BYTES:
            return
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > self.limits.max_ratio:
            raise ChatImportError(
                f"zip member {_short(info.filename)} expands {ratio:.0f}x (a decompression bomb?); "
                f"the limit is {self.limits.max_ratio:.0f}x"
            )

    @property
    def names(self) -> list[str]:
        return list(self._members)

    def __contains__(self, name: str) -> bool:
        return name in self._members

    def size(self, name: str) -> int:
        return self._members[name].file_size

    def _chunks(self, name: str):
        info = self._members[name]
        if is_nested_archive(name):
            raise ChatImportError(
                f"zip member {_short(name)} is an archive; nested archives are not opened"
            )
        read = 0
        try:
            with self._zip.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    read += len(chunk)
                    self._bytes_read += len(chunk)
                    if read > info.file_size:
                        raise DamagedMemberError(f"zip member {_short(name)} is larger than its header says")
                    if self._bytes_read > self.limits.max_total_uncompressed:
                        raise ChatImportError(
                            f"{self.path.name}: more than {self.limits.max_total_uncompressed / MB:.1f} MB "
                            "unpacked; the limit is reached"
                        )
                    yield chunk
        except ChatImportError:
            raise
        except ZIP_ERRORS as err:  # e.g. a corrupt deflate stream (zlib.error)
            raise DamagedMemberError(f"zip member {_short(name)} cannot be read: damaged archive ({_reason(err)})") from None
        except Exception as err:  # lzma.LZMAError, bz2 errors: not importable everywhere
            if type(err).__module__ in ("_lzma", "lzma", "_bz2", "bz2", "_compression"):
                raise DamagedMemberError(f"zip member {_short(name)} cannot be read: damaged archive ({_reason(err)})") from None
            raise

    def read(self, name: str) -> bytes:
        """The member's bytes, counted against the limits as they are decompressed."""
        return b"".join(self._chunks(name))

    def extract(self, name: str, dest: str | os.PathLike) -> Path:
        """Write one member below `dest` (which must exist) and return its path.

        The file is named by the member's position, keeping only a short plain suffix
        (`dest/m00012.jpg`): member names may be longer than the file system allows, collide
        with a folder of the same name (`a` and `a/b.png`) or differ only in case; none of that
        can break extraction. The same member always maps to the same file."""
        root = Path(dest).resolve()
        index = self._index.get(name)
        if index is None:
            raise ChatImportError(f"zip member {_short(name)} is not in the archive")
        suffix = PurePosixPath(name).suffix.lower()
        target = root / f"m{index:05d}{suffix if _PLAIN_SUFFIX.fullmatch(suffix) else ''}"
        if target.exists():
            return target
        size = self._members[name].file_size
        if self._bytes_extracted + size > self.extract_cap:
            raise DiskCapError(f"zip member {_short(name)} not extracted: the import would write more than "
                               f"{self.extract_cap / MB:.0f} MB to disk")
        self._bytes_extracted += size
        try:
            with open(target, "wb") as out:
                out.writelines(self._chunks(name))
        except ChatImportError:
            target.unlink(missing_ok=True)
            raise
        except OSError as err:  # disk full, folder gone
            target.unlink(missing_ok=True)
            raise ChatImportError(f"zip member {_short(name)} cannot be extracted ({_reason(err)})") from None
        return target

    def close(self) -> None:
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_PLAIN_SUFFIX = re.compile(r"\.[a-z0-9]{1,5}")


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(err: BaseException) -> str:
    """A short, one-line reason for an error from a library."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 160 else text[:159] + "…"


def is_zip(path: Path) -> bool:
    """Content sniffing: local-file or empty-archive signature at the start of the file."""
    with open(path, "rb") as f:
        return f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


def looks_like_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def image_problem(source: bytes | Path, name: str, limits: ImportLimits) -> str | None:
    """Why `source` is not a usable picture, or None when it is (header checked, not decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(
            io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        ) as image:
            width, height = image.size
            if width * height > limits.max_image_pixels:
                return (
                    f"{name} has {width}x{height} pixels; the limit is {limits.max_image_pixels:,}"
                )
            image.verify()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as err:
        return f"{name} is not a valid image ({type(err).__name__})"
    return None
