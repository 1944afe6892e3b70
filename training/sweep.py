"""The input-size / colour / class-handling sweep behind the shipped recipe, and its table.

    python -m training sweep --out /tmp/sweep            # runs every config not yet run, then prints the table
    python -m training sweep --out /tmp/sweep --table    # only the table

Each run is a short training (``SWEEP_COMMON``: 3 epochs, a quarter of FER+'s
training faces, all of RAF-DB's and ExpW's training shares) so that the
configs can be compared on one machine in an hour; the shipped model is then
trained in full with the winner.  Chosen by the real-photo sets (RAF-DB
validation share, ExpW held out), not by FER alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SWEEP_COMMON = ["--epochs", "3", "--fer-fraction", "0.25", "--warmup-epochs", "0"]

CONFIGS = {
    "48-grey": ["--input-size", "48", "--channels", "1"],
    "96-colour-s2": ["--input-size", "96", "--channels", "3", "--stem-stride", "2"],
    "96-grey-s2": ["--input-size", "96", "--channels", "1", "--stem-stride", "2"],
    "48-colour": ["--input-size", "48", "--channels", "3"],
    "64-colour": ["--input-size", "64", "--channels", "3"],
    "64-grey": ["--input-size", "64", "--channels", "1"],
    "96-colour-s2-aux": ["--input-size", "96", "--channels", "3", "--stem-stride", "2", "--rafdb-other", "aux"],
}
"""Name -> the flags that differ from the recipe's defaults, in the order they run."""

SETS = (("test_rafdb", "RAF-DB val"), ("test_expw", "ExpW test"), ("test_ferplus", "FER+ PublicTest"))


def run(out: Path, names: list[str]) -> None:
    for name in names:
        target = out / name
        if (target / "emotion_metrics.json").is_file():
            continue
        cmd = [sys.executable, "-m", "training", "train", "--out", str(target), *SWEEP_COMMON, *CONFIGS[name]]
        print("$", " ".join(cmd), flush=True)
        with open(out / f"{name}.log", "w") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)


def confusion_asn(m: dict) -> str:
    """Angry/sad/neutral confusion as 'a>s a>n s>a s>n n>a n>s' shares of each true class."""
    cm, labels = m["confusion"], m["labels"]
    i = {k: labels.index(k) for k in ("angry", "sad", "neutral")}
    parts = []
    for t in ("angry", "sad", "neutral"):
        row = sum(cm[i[t]])
        parts += [f"{t[0]}>{p[0]} {cm[i[t]][i[p]] / max(row, 1):.0%}" for p in ("angry", "sad", "neutral") if p != t]
    return " ".join(parts)


def table(out: Path) -> str:
    rows = ["| config | " + " | ".join(f"{label}: acc (angry/happy/sad/neutral recall)" for _, label in SETS)
            + " | RAF-DB val angry/sad/neutral confusion | fit s |",
            "|---|" + "---|" * (len(SETS) + 2)]
    for name in CONFIGS:
        path = out / name / "emotion_metrics.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        cells = []
        for key, _ in SETS:
            m = r.get(key)
            if not m:
                cells.append("-")
                continue
            rec = "/".join(f"{m['per_class'][e]['recall']:.0%}" for e in ("angry", "happy", "sad", "neutral"))
            cells.append(f"{m['accuracy']:.1%} ({rec})")
        cells.append(confusion_asn(r["test_rafdb"]) if "test_rafdb" in r else "-")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {r['train_seconds']:.0f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the runs (one subfolder each)")
    ap.add_argument("--only", nargs="*", default=None, help=f"configs to run (default all): {', '.join(CONFIGS)}")
    ap.add_argument("--table", action="store_true", help="print the table of finished runs only")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.table:
        run(out, args.only or list(CONFIGS))
    print(table(out))
    return 0
