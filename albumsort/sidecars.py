"""XMP sidecars: the emotions as keywords that digiKam, darktable, Immich and Lightroom read.

A sidecar is the photo's name plus ``.xmp`` (``IMG_1.jpg.xmp``), the form
digiKam, darktable and Immich look for first and exiftool's ``%f.%e.xmp``.
It holds the keywords in the three places those tools read them:

* ``dc:subject`` (flat keywords, Lightroom's convention: the parent too):
  ``albumsort``, ``happy``;
* ``lr:hierarchicalSubject`` (Lightroom, darktable, Immich): ``albumsort|happy``;
* ``digiKam:TagsList`` (digiKam, Immich): ``albumsort/happy``.

The packet is serialised by Exiv2 (the ``exiv2`` package: the library
digiKam and darktable read sidecars with), never by hand.

Safety: a sidecar is created through an exclusively created temporary file
and a hard link, so it never replaces a file that appeared meanwhile.
Beside a photo that already has a sidecar (``IMG_1.jpg.xmp`` or
Lightroom's ``IMG_1.xmp``, in any case) nothing is written: another tool
keeps that photo's metadata, and a second sidecar could hide it.  A sidecar
is albumsort's own only if its bytes are exactly what albumsort writes for
the keywords it holds; only such a file is ever replaced or removed, and
only beside exported copies (beside originals, only created).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from albumsort.files import TMP_PREFIX, create_new, tmp_beside

ROOT_TAG = "albumsort"
NO_FACE_TAG = "no face"
SUFFIX = ".xmp"


def _exiv2():
    import exiv2

    exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)  # a foreign sidecar it cannot parse is our answer, not a log
    return exiv2


def tags_for(kinds: list[str]) -> list[str]:
    """Keyword leaves for what a photo shows: emotions, or ``no-face``."""
    return [NO_FACE_TAG if k == "no-face" else k for k in kinds]


def packet(leaves: list[str]) -> bytes:
    """The sidecar's bytes for keywords ``albumsort|<leaf>``: an XML file holding one XMP packet."""
    exiv2 = _exiv2()
    data = exiv2.XmpData()
    data["Xmp.dc.subject"] = exiv2.XmpArrayValue([ROOT_TAG, *leaves], exiv2.TypeId.xmpBag)
    data["Xmp.lr.hierarchicalSubject"] = exiv2.XmpArrayValue([f"{ROOT_TAG}|{t}" for t in leaves],
                                                              exiv2.TypeId.xmpBag)
    data["Xmp.digiKam.TagsList"] = exiv2.XmpArrayValue([f"{ROOT_TAG}/{t}" for t in leaves], exiv2.TypeId.xmpSeq)
    flags = exiv2.XmpParser.XmpFormatFlags
    rc, text = exiv2.XmpParser.encode(data, flags.omitPacketWrapper | flags.useCompactFormat)
    if rc != 0:
        raise RuntimeError(f"Exiv2 could not serialise the XMP packet (code {rc})")
    # As Exiv2 writes a sidecar file itself (XmpSidecar::writeMetadata).
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode("utf-8")


def read_keywords(data: bytes) -> dict[str, list[str]] | None:
    """The keyword properties of a sidecar's bytes, as Exiv2 reads them ({"Xmp.dc.subject": [...], ...}),
    or None when Exiv2 cannot read them as XMP."""
    exiv2 = _exiv2()
    try:
        image = exiv2.ImageFactory.open(data)
        image.readMetadata()
        return {d.key(): [d.toString(i) for i in range(d.count())] for d in image.xmpData()}
    except Exception:  # exiv2.Exiv2Error and whatever a damaged file raises: not albumsort's, not read
        return None


def leaves_of(data: bytes) -> list[str] | None:
    """The ``albumsort|...`` leaves a sidecar holds if its bytes are exactly albumsort's for them, else None."""
    keys = read_keywords(data)
    if not keys:
        return None
    leaves = [t.split("|", 1)[1] for t in keys.get("Xmp.lr.hierarchicalSubject", []) if t.startswith(ROOT_TAG + "|")]
    try:
        return leaves if leaves and packet(leaves) == data else None
    except Exception:
        return None


def sidecar_of(photo: str | bytes) -> bytes:
    """The sidecar path of a photo path (raw bytes): ``IMG_1.jpg`` -> ``IMG_1.jpg.xmp``."""
    return os.fsencode(photo) + SUFFIX.encode()


def existing_sidecars(photo: str | bytes) -> list[bytes]:
    """Sidecars another tool may have written for ``photo``: ``IMG_1.jpg.xmp`` and ``IMG_1.xmp``, any case."""
    raw = os.fsencode(photo)
    folder, name = os.path.split(raw)
    stem = os.path.splitext(name)[0]
    wanted = {(name + b".xmp").lower(), (stem + b".xmp").lower()}
    try:
        names = os.listdir(folder or b".")
    except OSError:
        return []
    return [os.path.join(folder, n) for n in names if n.lower() in wanted]


def _read(path: bytes, limit: int = 1 << 20) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


@dataclass
class SidecarResult:
    written: int = 0
    kept: int = 0  # already there, as albumsort would write it
    removed: int = 0
    skipped: list[str] = field(default_factory=list)  # a sidecar of another tool's is there: left alone
    failed: list[str] = field(default_factory=list)


def _why_not_writable(e: OSError) -> str:
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the folder is not writable ({e.strerror})"
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    return e.strerror or str(e)


def write_beside(photo: str | bytes, leaves: list[str], result: SidecarResult, replace_own: bool = False) -> None:
    """Give ``photo`` a sidecar with ``leaves`` unless one is there.

    A sidecar that is albumsort's own with the same keywords counts as kept.
    With ``replace_own`` (exported copies only) albumsort's own sidecar with
    other keywords is replaced, checked again right before; anything else
    there is left alone and reported in ``result.skipped``.
    """
    target = sidecar_of(photo)
    data = packet(leaves)
    shown = os.fsdecode(photo)
    there = existing_sidecars(photo)
    if there:
        own = _read(target) if target in there else None
        if own == data:
            result.kept += 1
            return
        if replace_own and own is not None and there == [target] and leaves_of(own) is not None:
            tmp = tmp_beside(target)
            try:
                with open(tmp, "xb") as f:
                    f.write(data)
                if _read(target) != own:  # changed meanwhile: not ours any more
                    raise FileExistsError(errno.EEXIST, "changed while writing", os.fsdecode(target))
                os.replace(tmp, target)
                result.written += 1
            except FileExistsError:
                result.skipped.append(f"{shown}: its sidecar changed while albumsort wrote it; left alone")
            except OSError as e:
                result.failed.append(f"{os.fsdecode(target)}: {_why_not_writable(e)}")
            finally:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
            return
        names = ", ".join(os.fsdecode(os.path.basename(t)) for t in there)
        result.skipped.append(f"{shown}: has a sidecar already ({names}); left alone")
        return
    try:
        create_new(target, data)
        result.written += 1
    except FileExistsError:
        result.skipped.append(f"{shown}: a sidecar appeared while albumsort wrote one; left alone")
    except OSError as e:
        result.failed.append(f"{os.fsdecode(target)}: {_why_not_writable(e)}")


def sync_export(dest: str | Path, kind: str, write: bool) -> SidecarResult:
    """Keep the sidecars of an export folder in step with the photos albumsort exported there.

    With ``write``, every photo of the manifest that is still albumsort's
    (ranked or set aside) gets a sidecar tagged ``kind``.  Always, a sidecar
    albumsort wrote whose photo is no longer there (a rerun renamed or
    removed it) is removed; any other ``.xmp`` file is left alone.
    """
    from albumsort.export import _read_manifest, is_ours

    dest = Path(dest)
    result = SidecarResult()
    rows = _read_manifest(dest)
    if write:
        for name, row in rows.items():
            if is_ours(dest, row):
                write_beside(os.fsencode(dest / name), tags_for([kind]), result, replace_own=True)
    try:
        names = os.listdir(dest)
    except OSError:
        return result
    for name in names:
        if not name.lower().endswith(SUFFIX) or name.startswith(TMP_PREFIX):
            continue
        photo = dest / name[: -len(SUFFIX)]
        path = dest / name
        if os.path.lexists(photo) or not path.is_file() or path.is_symlink():
            continue
        data = _read(os.fsencode(path))
        if data is None or leaves_of(data) is None:
            continue
        try:
            if _read(os.fsencode(path)) == data:  # checked again right before removing
                os.unlink(path)
                result.removed += 1
        except OSError as e:
            result.failed.append(f"{path}: could not remove an old sidecar ({e.strerror})")
    return result
