"""What the lists would hold from sport photos: faces of the WIDER sample's sport events by top expression.

    python benchmarks/sport_faces.py [MODEL.onnx ...]   (default: the shipped model)

Why (issue 24, point 3): straining, shouting and cheering faces in sport
photos were listed under ``top angry``.  The WIDER sample has no expression
labels, so this counts, for each model, the kept faces (confidence >= 0.20,
found as ``albumsort index`` finds them at 1000 px) of the eight sport events
by top expression, and writes a contact sheet of those read angry to
``benchmarks/out/sport_angry_<model>.png`` to be judged by eye.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WIDER = ROOT.parent / "shared" / "data" / "wider-face-val-sample" / "images"
EVENTS = ("28--Sports_Fan", "34--Baseball", "36--Football", "38--Tennis", "40--Gymnastics", "44--Aerobics",
          "46--Jockey", "58--Hockey")


def main(argv=None) -> int:
    from PIL import Image

    from albumsort.emotions import EmotionModel
    from albumsort.faces import DETECT_SIDE, make_detector
    from albumsort.images import load_rgb
    from albumsort.labels import EXPRESSIONS
    from albumsort.pipeline import find_faces
    from albumsort.scores import DEFAULT_MIN_CONFIDENCE, face_confidence

    paths = [Path(a) for a in (argv if argv is not None else sys.argv[1:])] or [ROOT / "models" / "emotion.onnx"]
    if not WIDER.is_dir():
        print(f"no WIDER sample at {WIDER}", file=sys.stderr)
        return 2
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    detector = make_detector()
    photos = [f for ev in EVENTS for f in sorted((WIDER / ev).glob("*.jpg"))]
    for path in paths:
        model = EmotionModel(path)
        tops, sheet = [], []
        for f in photos:
            rgb, _ = load_rgb(f, max_side=DETECT_SIDE)
            found = find_faces(rgb, detector, model)
            for face, p, r in zip(found.faces, found.probabilities, found.readability, strict=True):
                if face_confidence(face.det_score, p, r) < DEFAULT_MIN_CONFIDENCE:
                    continue
                tops.append(EXPRESSIONS[int(np.argmax(p))])
                if tops[-1] == "angry":
                    x, y, w, h = (int(v) for v in face.box)
                    s = int(max(w, h) * 0.8)
                    box = (x + w // 2 - s, y + h // 2 - s, x + w // 2 + s, y + h // 2 + s)
                    sheet.append(np.asarray(Image.fromarray(rgb).crop(box).resize((128, 128))))
                    print(f"  {model.version}: angry {float(np.max(p)):.2f}  {f.parent.name}/{f.name} "
                          f"box {x},{y},{w},{h}")
        counts = {e: tops.count(e) for e in EXPRESSIONS if e in tops}
        print(f"{model.version}: {len(photos)} sport photos, {len(tops)} kept faces, by top expression {counts}; "
              f"read angry {tops.count('angry') / max(1, len(tops)):.1%}")
        if sheet:
            png = out / f"sport_angry_{model.version}.png"
            Image.fromarray(np.concatenate(sheet, axis=1)).save(png)
            print(f"  contact sheet: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
