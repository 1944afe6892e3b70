"""Decoding photos: every format albumsort reads, EXIF orientation first, reduced-size JPEG decode.

All failures become :class:`ImageError` with a one-line reason that the
index stores and ``albumsort errors`` shows.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from albumsort import stages

EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif",
                        ".heic", ".heif"})
"""File name endings albumsort opens (compared lower-case)."""

MAX_PIXELS = 150_000_000
"""Larger images are refused as possible decompression bombs (a 150 MP photo
needs ~450 MB of RAM per worker decoded); ``--max-pixels`` changes it."""

MAX_DECODE_BYTES = 1 << 30
"""Images whose decode would need more memory than this are refused before decoding.

JPEGs are decoded at a reduced DCT scale and need a fraction of their full
size; other formats are decoded whole, at Pillow's bytes per pixel (4 for RGB),
and peak at about 2.5 times that."""

_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "LA": 4, "PA": 4, "RGB": 4,
                    "RGBA": 4, "RGBX": 4, "CMYK": 4, "YCbCr": 4, "I": 4, "F": 4}

_heif_registered = False

_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
"""EXIF orientation tag -> the transform that makes the stored pixels upright."""


class ImageError(Exception):
    """A photo that cannot be read; ``str()`` is the one-line reason."""


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        try:
            from pillow_heif import register_heif_opener
        except ImportError as e:  # pragma: no cover - pillow-heif is a dependency
            raise ImageError("HEIC/HEIF support is not installed (pip install pillow-heif)") from e
        register_heif_opener()
        _heif_registered = True


def local_seconds(epoch: float) -> float:
    """Seconds since 1970 of the local wall-clock time at ``epoch``: the scale EXIF times are on."""
    import calendar
    import datetime

    try:
        return float(calendar.timegm(datetime.datetime.fromtimestamp(epoch).timetuple()))
    except (OSError, OverflowError, ValueError):  # Windows rejects some mtimes (before 1970, say)
        return float(epoch)


def exif_time(im: Image.Image) -> float | None:
    """EXIF DateTimeOriginal (else DateTime) as local wall-clock seconds, or None."""
    import calendar
    import datetime

    try:
        exif = im.getexif()
        value = exif.get_ifd(0x8769).get(36867) or exif.get(306)
        if not value:
            return None
        dt = datetime.datetime.strptime(str(value).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
        return float(calendar.timegm(dt.timetuple()))
    except Exception:  # absent, malformed or out-of-range dates are common in the wild
        return None


def difference_hash(rgb: np.ndarray) -> int:
    """A 64-bit perceptual hash (dHash): near-identical shots differ in a few bits. Signed, for SQLite."""
    small = Image.fromarray(rgb).convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    a = np.asarray(small, dtype=np.int16)
    bits = (a[:, 1:] > a[:, :-1]).ravel()
    value = int("".join("1" if b else "0" for b in bits), 2)
    return value - (1 << 64) if value >= 1 << 63 else value


def _open_checks(im: Image.Image, max_pixels: int, max_side: int | None) -> None:
    """Refuse ``im`` by its header alone: too many pixels, or a decode that needs too much memory."""
    w, h = im.size
    if w * h > max_pixels:
        raise ImageError(f"image too large: {w}x{h} pixels is over the {max_pixels:,} limit (--max-pixels)")
    # Peak memory measured at about 2.5x the pixels Pillow holds (decoder buffers, copies): a
    # 100 MP RGB PNG peaks at 1.07 GB (tests/test_safety.py).
    need = w * h * _BYTES_PER_PIXEL.get(im.mode, 4) * 5 // 2
    if im.format in ("JPEG", "MPO") and max_side:
        scale = 1
        while scale < 8 and max(w, h) / (scale * 2) >= max_side:
            scale *= 2  # libjpeg decodes at 1/2, 1/4 or 1/8 directly
        need //= scale * scale
    if need > MAX_DECODE_BYTES:
        raise ImageError(f"image too large to decode safely: {w}x{h} {im.format} needs about "
                         f"{need / 2**20:,.0f} MiB (limit {MAX_DECODE_BYTES / 2**20:,.0f} MiB)")


def check_header(path: str | Path | IO[bytes], max_pixels: int = MAX_PIXELS,
                 max_side: int | None = 1024, name: str | None = None) -> tuple[str, int, int, float | None]:
    """(format, width, height, EXIF capture time) from the header alone of a path or a binary file object (``name``).

    Raises ImageError before anything large is read or decoded.
    """
    name = str(name or path)
    if Path(name).suffix.lower() in {".heic", ".heif"}:
        _register_heif()
    try:
        if isinstance(path, (str, Path)):
            size = Path(path).stat().st_size
        else:
            size = len(path.getbuffer()) if hasattr(path, "getbuffer") else 1
        if size == 0:
            raise ImageError("empty file (0 bytes)")
        Image.MAX_IMAGE_PIXELS = max(max_pixels, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _open_checks(im, max_pixels, max_side)
                return im.format or "?", im.size[0], im.size[1], exif_time(im)
    except Exception as e:
        raise _as_image_error(e) from e


def _as_image_error(e: BaseException) -> BaseException:
    """Every way Pillow fails, as an ImageError with a one-line reason (ImageError itself passes through)."""
    if isinstance(e, ImageError):
        return e
    if isinstance(e, UnidentifiedImageError):
        return ImageError("not an image, or a format albumsort cannot read")
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageError(f"image too large (decompression bomb guard): {e}")
    if isinstance(e, PermissionError):
        return ImageError("permission denied")
    if isinstance(e, MemoryError):
        return ImageError("not enough memory to decode")
    if isinstance(e, (OSError, SyntaxError, ValueError, EOFError)):
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return ImageError(f"{CUT_SHORT}: {msg}" if "truncated" in msg.lower() else f"corrupt image: {msg}")
    return e


CUT_SHORT = "cannot be decoded: the file is cut short"
"""The reason of a file that ends before any of its picture (a JPEG that ends a little early is read)."""
OLD_TRUNCATED = "truncated file"
"""How failures of files that end early began before they were read as far as they go: such a known failure
is read again (``store.ADDED_COLUMNS``' migration)."""


def _is_truncation(e: BaseException) -> bool:
    return isinstance(e, OSError) and "truncated" in str(e).lower()


def _decoded_share(im: Image.Image, full_height: int) -> float:
    """The share of rows the file held, for a JPEG that ends early: libjpeg fills a baseline JPEG's missing
    rows with mid grey (128 in every channel), so the rows of pure 128 at the bottom are the part the file
    did not hold.  Less than two rows of 16 px blocks is no picture (a file cut right after its headers
    decodes its first blocks from nothing): 0.  A progressive JPEG shows its whole picture at a lower
    quality, and other formats do not say: 1.0."""
    if im.format not in ("JPEG", "MPO") or im.mode not in ("L", "RGB"):
        return 1.0
    a = np.asarray(im)
    a = a.reshape(a.shape[0], -1)
    grey = (a == 128).all(axis=1)
    missing = int(np.argmin(grey[::-1])) if not grey.all() else len(grey)  # the grey rows at the bottom
    held = len(grey) - missing
    return 0.0 if held * full_height < 32 * len(grey) else held / len(grey)


def load_rgb(source: str | Path | IO[bytes], max_side: int | None = None, max_pixels: int = MAX_PIXELS,
             name: str | None = None, info: dict | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``source`` (a path or a binary file object named ``name``) upright (EXIF orientation applied), RGB uint8.

    With ``max_side`` the result is shrunk so its long side is at most that,
    and JPEGs are decoded directly at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
    scaling through Pillow's ``draft``), which is most of the speed of an
    index run.  Returns (pixels, (width, height) of the full upright photo).

    A file that ends early (an interrupted copy) is read as far as it goes,
    as viewers show it: the rest of the picture is grey.  ``info``, when
    given, then gets ``truncated``: the share of the picture's rows the file
    held (1.0 when the decoder cannot tell, as for progressive JPEGs).  Only
    a file with none of its picture fails (``CUT_SHORT``).
    """
    try:
        return _load_rgb(source, max_side, max_pixels, name)
    except ImageError as e:
        if e.__cause__ is None or not _is_truncation(e.__cause__):
            raise
    if hasattr(source, "seek"):
        source.seek(0)
    from PIL import ImageFile

    measured: dict = {}
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        out = _load_rgb(source, max_side, max_pixels, name, measured)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before
    if measured.get("share", 1.0) <= 0.0:
        raise ImageError(f"{CUT_SHORT} before any of the picture")
    if info is not None:
        info["truncated"] = measured.get("share", 1.0)
    return out


def _load_rgb(source, max_side, max_pixels, name, measured: dict | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """``load_rgb`` on one try; ``measured`` (a read of a file that ends early) gets the decoded ``share``."""
    name = str(name or source)
    if Path(name).suffix.lower() in {".heic", ".heif"}:
        _register_heif()
    if isinstance(source, (str, Path)):
        try:
            size = Path(source).stat().st_size
        except OSError as e:
            raise ImageError(f"cannot read: {e.strerror or e}") from e
    else:
        size = len(source.getbuffer()) if hasattr(source, "getbuffer") else 1
    if size == 0:
        raise ImageError("empty file (0 bytes)")
    # Pillow's own guard (89.5 MP) would fire inside open(); ours is max_pixels.
    Image.MAX_IMAGE_PIXELS = max(max_pixels, 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                im: Image.Image = opened
                w, h = im.size
                _open_checks(im, max_pixels, max_side)
                orientation = im.getexif().get(0x0112, 1) if hasattr(im, "getexif") else 1
                swap = orientation in (5, 6, 7, 8)
                full = (h, w) if swap else (w, h)
                if max_side and im.format in ("JPEG", "MPO"):
                    # draft() picks the largest DCT scale that still gives at
                    # least the requested size.
                    s = max_side / max(w, h)
                    if s < 1:
                        im.draft("RGB", (max(1, round(w * s)), max(1, round(h * s))))
                im.seek(0)  # first frame of GIFs and multi-page TIFFs
                im.load()
                if measured is not None:
                    measured["share"] = _decoded_share(im, h)
                reducible = im.mode in ("L", "LA", "RGB", "RGBA", "RGBX", "I", "F")
                if max_side and max(im.size) >= 2 * max_side and reducible:
                    # Shrink by a whole factor in the stored mode before any conversion,
                    # so a large PNG or TIFF is held in memory once, not three times.
                    im = im.reduce(max(im.size) // max_side)
                # The orientation read before draft(): draft() can drop the EXIF block.
                if orientation in _TRANSPOSE:
                    with stages.stage("exif_orientation"):
                        im = im.transpose(_TRANSPOSE[orientation])
                if im.mode != "RGB":
                    im = _to_rgb(im)
                if max_side and max(im.size) > max_side:
                    s = max_side / max(im.size)
                    im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))),
                                   Image.Resampling.BILINEAR, reducing_gap=2.0)
                return np.asarray(im), full
    except Exception as e:
        err = _as_image_error(e)
        if err is e and not isinstance(e, ImageError):
            raise
        raise err from e


def _to_rgb(im: Image.Image) -> Image.Image:
    """Flatten alpha onto white and bring palette, 16-bit and CMYK images to RGB."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        arr = (arr / max(arr.max(), 1.0) * 255.0).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")
