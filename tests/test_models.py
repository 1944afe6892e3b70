"""The shipped model files are exactly those of the provenance table in models/README.md, and the wheel ships them."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


def provenance() -> dict[str, dict]:
    """file -> row of the table under "Shipped weights and where they come from"."""
    text = (MODELS / "README.md").read_text()
    section = text.split("## Shipped weights and where they come from", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        row = dict(zip(header, cells, strict=False))
        rows[row["file"].strip("`")] = row
    return rows


def test_table_has_every_column_filled():
    rows = provenance()
    assert {"scrfd_2.5g.onnx", "yunet_s_dynamic.onnx", "emotion.onnx"} <= set(rows)
    for name, row in rows.items():
        assert set(row) == {"file", "source", "commit", "path", "sha256", "licence", "what albumsort changed"}
        assert all(row.values()), name
        assert re.fullmatch(r"[0-9a-f]{64}", row["sha256"]), name


def test_files_on_disk_match_the_table():
    rows = provenance()
    for name, row in rows.items():
        data = (MODELS / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], f"{name} differs from models/README.md"
    assert {p.name for p in MODELS.glob("*.onnx")} <= set(rows), "an ONNX file in models/ has no provenance row"


def test_non_commercial_terms_are_stated():
    rows = provenance()
    assert "non-commercial" in rows["scrfd_2.5g.onnx"]["licence"]
    assert "non-commercial" in rows["mobilefacenet.onnx"]["licence"]
    for doc in (ROOT / "README.md", MODELS / "README.md"):
        text = doc.read_text()
        assert re.search(r"SCRFD[^.]*non-commercial", text, re.S), doc


def test_wheel_ships_the_runtime_model_files():
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = cfg["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    from albumsort.detectors import REGISTRY, names

    names()
    from albumsort.embeddings import MODEL_NAME

    needed = {f"models/{cls.file}" for cls in REGISTRY.values()} | {"models/emotion.onnx", "models/emotion.json",
                                                                    f"models/{MODEL_NAME}"}
    assert needed <= set(shipped)
    assert all(dst == f"albumsort/_models/{Path(src).name}" for src, dst in shipped.items())
    assert set(shipped) <= {f"models/{n}" for n in provenance()}
