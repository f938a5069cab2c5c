"""Safe extraction of tar archives (the MVTec AD ``.tar.xz``): ``safe_extract`` and ``list_top_dirs``.

``safe_extract`` unpacks into a temporary sibling directory, refusing absolute paths, ``..``
components, links that leave the target and device files; the target appears only when complete.
A truncated or corrupt archive is reported as such (the xz/gzip checksums are read to the end).

Every user-fixable failure raises :class:`~frad.errors.DownloadError` with one line:
what is wrong, which file/member, what to do.
"""

from __future__ import annotations

import copy
import lzma
import os
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from frad.errors import DownloadError
from frad.io import atomic_path

# What a truncated/corrupt archive raises while being read (tarfile, xz, gzip, bz2 decoders).
_CORRUPT_ERRORS = (tarfile.ReadError, tarfile.CompressionError, EOFError, lzma.LZMAError, zlib.error)


def _corrupt(archive: Path, err: BaseException) -> DownloadError:
    reason = str(err) or type(err).__name__
    return DownloadError(f"archive is truncated or corrupt: {archive}: {reason}; delete it and download again")


def _open_archive(archive: Path) -> tarfile.TarFile:
    if not archive.is_file():
        raise DownloadError(f"archive not found: {archive}; download it first")
    try:
        return tarfile.open(archive, "r:*")
    except _CORRUPT_ERRORS as err:
        raise _corrupt(archive, err) from None


def _relative_name(name: str) -> str:
    """Member name without a leading ``./`` (tar's spelling of the archive root)."""
    while name.startswith("./"):
        name = name[2:]
    return name


def _refuse(archive: Path, member: tarfile.TarInfo, reason: str) -> DownloadError:
    return DownloadError(
        f"unsafe member {member.name!r} in {archive}: {reason}; refusing to extract — "
        "the archive is not a genuine dataset archive, delete it and download again"
    )


@dataclass
class _Seen:
    """What the extraction filter saw: members kept, and top-level names (for error messages)."""

    kept: int = 0
    tops: set[str] = field(default_factory=set)


_Filter = Callable[[tarfile.TarInfo, str], "tarfile.TarInfo | None"]


_HAS_FILTERS = hasattr(tarfile, "data_filter")  # extraction filters: Python >= 3.11.4


def _fallback_filter(
    archive: Path, member: tarfile.TarInfo, changes: dict[str, str], dest_path: str
) -> tarfile.TarInfo:
    """What tarfile.data_filter refuses, for Pythons without it: special files, links leaving the target."""
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise _refuse(archive, member, "device file or fifo")
    out = copy.copy(member)
    for key, value in changes.items():
        setattr(out, key, value)
    dest = os.path.realpath(dest_path)
    if out.issym():
        if os.path.isabs(out.linkname):
            raise _refuse(archive, member, f"link to absolute path {member.linkname!r}")
        where = os.path.realpath(os.path.join(dest, os.path.dirname(out.name), out.linkname))
        if os.path.commonpath([dest, where]) != dest:
            raise _refuse(archive, member, f"symlink to {member.linkname!r} leaves the target directory")
    elif out.islnk():
        where = os.path.realpath(os.path.join(dest, out.linkname))
        if os.path.commonpath([dest, where]) != dest:
            raise _refuse(archive, member, f"hardlink to {member.linkname!r} leaves the target directory")
    if os.path.commonpath([dest, os.path.realpath(os.path.join(dest, out.name))]) != dest:
        raise _refuse(archive, member, "path leaves the target directory")
    out.mode &= 0o755 if out.isdir() or out.mode & 0o100 else 0o644
    return out


def _member_filter(archive: Path, strip_prefix: str | None, seen: _Seen) -> _Filter:
    """tarfile extraction filter: our checks, then the stdlib ``data`` filter (links, special files)."""
    prefix = strip_prefix.strip("/") if strip_prefix else None

    def strip(name: str) -> str | None:
        if prefix is None:
            return name
        if name == prefix or not name.startswith(prefix + "/"):
            return None
        return name[len(prefix) + 1 :]

    def check(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
        raw = member.name
        if raw.startswith("/") or os.path.isabs(raw):
            raise _refuse(archive, member, "absolute path")
        if ".." in PurePosixPath(raw).parts:
            raise _refuse(archive, member, "'..' path component")
        seen.tops.add(PurePosixPath(_relative_name(raw)).parts[0] if _relative_name(raw) else raw)
        name = strip(_relative_name(raw))
        if not name:
            return None  # outside strip_prefix, or the prefix directory itself
        changes: dict[str, str] = {"name": name}
        if member.islnk():  # hardlink targets are archive paths: strip them too
            if os.path.isabs(member.linkname) or ".." in PurePosixPath(member.linkname).parts:
                raise _refuse(archive, member, f"hardlink to {member.linkname!r} leaves the target directory")
            linkname = strip(_relative_name(member.linkname))
            if not linkname:
                raise _refuse(archive, member, f"hardlink to {member.linkname!r} outside {strip_prefix!r}")
            changes["linkname"] = linkname
        if not _HAS_FILTERS:  # Python < 3.11.4: the same checks by hand
            seen.kept += 1
            return _fallback_filter(archive, member, changes, dest_path)
        try:
            filtered = tarfile.data_filter(member.replace(**changes, deep=False), dest_path)
        except tarfile.SpecialFileError:
            raise _refuse(archive, member, "device file or fifo") from None
        except tarfile.AbsoluteLinkError:
            raise _refuse(archive, member, f"link to absolute path {member.linkname!r}") from None
        except tarfile.LinkOutsideDestinationError:
            kind = "symlink" if member.issym() else "hardlink"
            raise _refuse(archive, member, f"{kind} to {member.linkname!r} leaves the target directory") from None
        except tarfile.FilterError as err:  # OutsideDestination (e.g. through an extracted symlink), ...
            raise _refuse(archive, member, str(err)) from None
        seen.kept += 1
        return filtered

    return check


def safe_extract(
    archive: str | os.PathLike[str], target: str | os.PathLike[str], *, strip_prefix: str | None = None
) -> Path:
    """Extract ``archive`` (any tarfile compression, e.g. ``.tar.xz``) to ``target``; returns ``target``.

    Members are written into a temporary sibling of ``target`` that is renamed into place only once
    the whole archive was read, so any failure leaves no (partial) ``target``. ``strip_prefix``
    extracts only the members under that directory, without it. ``target`` must not exist or be
    empty. Unsafe members (absolute, ``..``, links leaving the target, devices/fifos) are refused.
    """
    archive, target = Path(archive), Path(target)
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise DownloadError(f"extraction target already exists: {target}; delete it to extract {archive} again")
    seen = _Seen()
    with atomic_path(target, is_dir=True) as tmp:  # replaces the (empty) target only when complete
        with _open_archive(archive) as tar:
            try:
                check = _member_filter(archive, strip_prefix, seen)
                if _HAS_FILTERS:
                    tar.extractall(tmp, filter=check)
                else:
                    members = [m for m in (check(m, str(tmp)) for m in tar) if m is not None]
                    tar.extractall(tmp, members=members)
                while tar.fileobj.read(1 << 20):  # read to the end: lets xz/gzip verify their checksums
                    pass
            except _CORRUPT_ERRORS as err:
                raise _corrupt(archive, err) from None
            except OSError as err:
                if err.errno is None:  # decoder errors (gzip/bz2) carry no errno
                    raise _corrupt(archive, err) from None
                raise DownloadError(
                    f"cannot extract {archive} into {target.parent}: {err}; check free space and permissions"
                ) from None
        if strip_prefix and not seen.kept:
            raise DownloadError(
                f"no member under {strip_prefix!r} in {archive} (top-level: {', '.join(sorted(seen.tops))}); "
                "fix strip_prefix"
            )
    return target


def list_top_dirs(archive: str | os.PathLike[str]) -> list[str]:
    """Sorted top-level directory names of a tar archive (one pass; a full decompression for .xz)."""
    archive = Path(archive)
    tops: set[str] = set()
    with _open_archive(archive) as tar:
        try:
            for member in tar:
                parts = PurePosixPath(_relative_name(member.name)).parts
                if len(parts) > 1 or (parts and member.isdir()):
                    tops.add(parts[0])
        except _CORRUPT_ERRORS as err:
            raise _corrupt(archive, err) from None
    return sorted(tops)
