"""Build the demo album from public-domain photos that ship inside scikit-image and matplotlib.

    python examples/make_demo_album.py [DEST]     # default: examples/album

DEST must be new, empty or an album this script built before (it holds ``.albumsort-demo``): the script
never writes over a folder of someone's own photos.

Nothing is downloaded: scikit-image's ``astronaut`` (Eileen Collins, NASA,
public domain), ``camera`` (public domain), ``coffee``, ``chelsea``,
``rocket`` and ``hubble_deep_field`` (public domain / CC0 per scikit-image's
data README), and matplotlib's ``grace_hopper.jpg`` (US Navy, public domain).
The script also makes what a real album holds: a group "photo" (a collage),
a rotated phone shot with an EXIF orientation tag, a PNG, a WebP, a GIF, a
file in a nested and a hidden folder, and a broken file, so that every path
through ``albumsort index`` is exercised.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def sources() -> dict[str, Image.Image]:
    import matplotlib.cbook as cbook
    import skimage.data as data

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = Image.open(f).convert("RGB")
        hopper.load()
    return {
        "astronaut": Image.fromarray(data.astronaut()),
        "cameraman": Image.fromarray(data.camera()).convert("RGB"),
        "grace_hopper": hopper,
        "coffee": Image.fromarray(data.coffee()),
        "chelsea_the_cat": Image.fromarray(data.chelsea()),
        "rocket": Image.fromarray(data.rocket()),
        "hubble": Image.fromarray(data.hubble_deep_field()),
    }


def exif_rotated(im: Image.Image, orientation: int) -> tuple[Image.Image, bytes]:
    """Store the photo as a camera would: pixels turned, upright only via the EXIF tag."""
    turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
    stored = im.transpose(turn[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return stored, exif.tobytes()


def build(dest: Path) -> list[Path]:
    src = sources()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "portraits").mkdir(exist_ok=True)
    (dest / "places").mkdir(exist_ok=True)
    (dest / ".thumbnails").mkdir(exist_ok=True)
    made = []

    def save(im: Image.Image, rel: str, **kw) -> None:
        path = dest / rel
        im.save(path, **kw)
        made.append(path)

    save(src["astronaut"], "portraits/astronaut.jpg", quality=92)
    save(src["grace_hopper"], "portraits/grace_hopper.jpg", quality=92)
    save(src["cameraman"], "portraits/cameraman.png")
    stored, exif = exif_rotated(src["astronaut"].resize((384, 384)), 6)
    save(stored, "portraits/phone_shot_rotated.jpg", quality=90, exif=exif)
    # A "group photo": the three portraits side by side.
    faces = [src["astronaut"].crop((100, 0, 400, 300)), src["grace_hopper"].crop((60, 0, 452, 392)).resize((300, 300)),
             src["cameraman"].crop((150, 20, 400, 270)).resize((300, 300))]
    group = Image.new("RGB", (900, 300))
    for i, f in enumerate(faces):
        group.paste(f, (300 * i, 0))
    save(group, "group_collage.jpg", quality=90)
    save(src["coffee"], "places/coffee.webp", quality=85)
    save(src["chelsea_the_cat"], "places/chelsea_the_cat.jpg", quality=90)
    save(src["rocket"], "places/rocket.gif")
    save(src["hubble"], "places/hubble.jpg", quality=85)
    save(src["coffee"], ".thumbnails/skipped_hidden.jpg")  # hidden folders are not indexed
    broken = dest / "broken_download.jpg"
    broken.write_bytes((dest / "places/chelsea_the_cat.jpg").read_bytes()[:2000])  # truncated JPEG
    made.append(broken)
    return made


MARKER = ".albumsort-demo"
"""Written into every album this script builds: only such a folder (or an empty or new one) is written into."""

FILES = ("portraits/astronaut.jpg", "portraits/grace_hopper.jpg", "portraits/cameraman.png",
         "portraits/phone_shot_rotated.jpg", "group_collage.jpg", "places/coffee.webp", "places/chelsea_the_cat.jpg",
         "places/rocket.gif", "places/hubble.jpg", ".thumbnails/skipped_hidden.jpg", "broken_download.jpg")
"""What ``build`` writes, relative to the album: a folder holding exactly these (an album built before the marker
existed) is one this script made, too."""


def made_here(dest: Path) -> bool:
    """Whether ``dest`` is empty or an album this script built (so rebuilding it overwrites nothing else)."""
    if (dest / MARKER).is_file():
        return True
    files = set()
    for p in dest.rglob("*"):
        if p.is_dir():
            continue
        rel = p.relative_to(dest).as_posix()
        if rel not in FILES:  # a file of someone else's: stop walking (DEST may be a whole photo library)
            return False
        files.add(rel)
    return not files or files == set(FILES)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", nargs="?", type=Path, default=Path(__file__).resolve().parent / "album",
                    help="folder to build the album in (default: examples/album)")
    dest = ap.parse_args(argv).dest
    if dest.exists() and not dest.is_dir():
        print(f"make_demo_album: {dest} is a file, not a folder", file=sys.stderr)
        return 2
    if dest.is_dir() and not made_here(dest):
        print(f"make_demo_album: {dest} already holds files this script did not make; "
              "choose a new or empty folder", file=sys.stderr)
        return 2
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MARKER).write_text("built by examples/make_demo_album.py; it may rebuild this folder\n")
    made = build(dest)
    print(f"demo album: {len(made)} files in {dest}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
