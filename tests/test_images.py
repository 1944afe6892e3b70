"""Decoding: formats, EXIF orientation, reduced-size JPEG decode, and every kind of bad file."""

import io

import numpy as np
import pytest
from PIL import Image

from albumsort.images import ImageError, load_rgb
from tests.conftest import shared


def marked(w=120, h=80) -> Image.Image:
    """An image whose top-left quarter is red, so orientation can be checked."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    return Image.fromarray(a)


@pytest.mark.parametrize("ext,kw", [(".jpg", {"quality": 95}), (".png", {}), (".tif", {}),
                                    (".webp", {"lossless": True}), (".bmp", {}), (".gif", {})])
def test_formats(tmp_path, ext, kw):
    p = tmp_path / f"x{ext}"
    marked().save(p, **kw)
    rgb, size = load_rgb(p)
    assert size == (120, 80) and rgb.shape == (80, 120, 3)
    assert rgb[10, 10, 0] > 200 and rgb[70, 110, 0] < 60


def test_heic(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    p = tmp_path / "x.heic"
    marked().save(p, quality=95)
    rgb, size = load_rgb(p)
    assert size == (120, 80) and rgb[10, 10, 0] > 180


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    rgb, _ = load_rgb(p)
    assert rgb[20, 20, 0] > 200 and rgb[20, 20, 2] < 50


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_first(tmp_path, orientation):
    """The stored pixels are transformed so that the upright photo is `marked()`."""
    upright = marked()
    inverse = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
    stored = upright if inverse[orientation] is None else upright.transpose(inverse[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{orientation}.jpg"
    stored.save(p, exif=exif.tobytes(), quality=95)
    for side in (None, 60):
        rgb, size = load_rgb(p, max_side=side)
        assert size == (120, 80)
        h, w = rgb.shape[:2]
        assert w > h
        assert rgb[h // 4, w // 4, 0] > 180 and rgb[3 * h // 4, 3 * w // 4, 0] < 80


def test_reduced_jpeg_decode(tmp_path):
    p = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (10, 200, 30)).save(p, quality=90)
    rgb, size = load_rgb(p, max_side=1024)
    assert size == (4000, 3000) and max(rgb.shape[:2]) == 1024


@pytest.mark.parametrize("orientation", (1, 6, 8))
def test_12mp_jpeg_decodes_at_quarter_scale_upright(tmp_path, monkeypatch, orientation):
    """At the detector's 1000 px, libjpeg decodes a 4000x3000 photo at 1/4 scale: no resize after, orientation exact."""
    from albumsort.indexing import DECODE_SIDE

    upright = Image.new("RGB", (4000, 3000), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 2000, 1500))  # red top-left quarter
    stored = {1: upright, 6: upright.transpose(Image.Transpose.ROTATE_90),
              8: upright.transpose(Image.Transpose.ROTATE_270)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "IMG.jpg"
    stored.save(p, exif=exif.tobytes(), quality=90)
    resized = []
    real_resize = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda im, *a, **k: resized.append(im.size) or real_resize(im, *a, **k))
    rgb, size = load_rgb(p, max_side=DECODE_SIDE)
    assert size == (4000, 3000) and rgb.shape == (750, 1000, 3) and resized == []
    assert rgb[100, 100, 0] > 200 and rgb[100, 100, 2] < 50  # red where the upright photo has it
    assert rgb[600, 900, 2] > 200 and rgb[600, 900, 0] < 50


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_rgb(p)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        load_rgb(p)


def test_truncated_jpeg_is_read_as_far_as_it_goes(tmp_path):
    """Cut short (an interrupted copy): read as viewers read it, grey below what the file holds (issue 23)."""
    buf = io.BytesIO()
    marked(800, 600).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[:-2])  # only the end-of-image marker is missing: Pillow alone refuses this
    info = {}
    rgb, size = load_rgb(p, info=info)
    assert size == (800, 600) and rgb[10, 10, 0] > 200 and info == {"truncated": 1.0}
    p.write_bytes(data[: len(data) // 2])
    info = {}
    rgb, _ = load_rgb(p, max_side=400, info=info)  # at a reduced DCT scale too
    assert 0.3 < info["truncated"] < 0.8 and rgb[5, 5, 0] > 200 and (rgb[-1] == 128).all()
    whole = {}
    load_rgb(io.BytesIO(data), info=whole)
    assert whole == {}
    sos = data.index(b"\xff\xda")
    p.write_bytes(data[: sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")])  # headers, no picture at all
    with pytest.raises(ImageError, match="^cannot be decoded: the file is cut short before any of the picture$"):
        load_rgb(p)
    p.write_bytes(data[:300])  # cut inside its headers
    with pytest.raises(ImageError, match="^cannot be decoded: the file is cut short"):
        load_rgb(p)


def test_decompression_bomb(tmp_path):
    p = tmp_path / "bomb.png"
    Image.new("L", (5000, 5000)).save(p)  # compresses to a few KB
    with pytest.raises(ImageError, match="too large"):
        load_rgb(p, max_pixels=10_000_000)


def test_error_is_one_line(tmp_path):
    p = tmp_path / "bad.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(ImageError) as e:
        load_rgb(p)
    assert "\n" not in str(e.value)


def test_shared_exif_orientation_samples():
    folder = shared("exif-samples", "jpg", "orientation")
    files = sorted(folder.glob("*.jpg"))
    assert files
    sizes = {f.name: load_rgb(f, max_side=256)[0].shape[:2] for f in files}
    # Every landscape sample comes out in one shape, whatever its tag.
    land = {s for n, s in sizes.items() if "landscape" in n.lower()}
    port = {s for n, s in sizes.items() if "portrait" in n.lower()}
    assert len(land) <= 1 and len(port) <= 1
    if land and port:
        (lh, lw), (ph, pw) = land.pop(), port.pop()
        assert lw > lh and ph > pw
    # ...and the same picture: every orientation matches the untransformed _1.
    for kind in ("landscape", "portrait"):
        ref = load_rgb(folder / f"{kind}_1.jpg", max_side=64)[0].astype(float)
        for f in sorted(folder.glob(f"{kind}_*.jpg")):
            assert np.abs(load_rgb(f, max_side=64)[0].astype(float) - ref).mean() < 20, f.name


def test_shared_corrupt_and_heic():
    # Its damage is in metadata that libjpeg tolerates: the photo must decode,
    # upright and whole, rather than be refused.
    rgb, size = load_rgb(shared("exif-samples", "jpg", "corrupted.jpg"), max_side=256)
    assert max(rgb.shape[:2]) == 256 and size == (3648, 2736)
    heic = sorted(shared("exif-samples", "heic").rglob("*.[hH][eE][iI][cCfF]"))
    assert heic
    rgb, size = load_rgb(heic[0], max_side=512)
    assert rgb.ndim == 3 and min(size) > 0


def test_shared_invalid_exif_still_decodes():
    for f in sorted(shared("exif-samples", "jpg", "invalid").glob("*.jpg")):
        rgb, _ = load_rgb(f, max_side=256)
        assert rgb.ndim == 3
