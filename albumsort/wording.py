"""Counts as words: "1 photo", "2 photos", "1,200 photos" — one helper for every message."""

from __future__ import annotations

IRREGULAR = {"copy": "copies", "face(s)": "face(s)", "was": "were", "shot": "shots"}


def plural(n: int, one: str, many: str | None = None) -> str:
    """``n`` with thousands separators, then ``one`` for exactly 1, else ``many`` (default: ``one`` + "s").

    A noun phrase is pluralised on its last word: ``plural(2, "known failure")`` is "2 known failures",
    ``plural(1, "no-face photo")`` "1 no-face photo".
    """
    if n == 1:
        return f"{n:,} {one}"
    if many is None:
        head, _, last = one.rpartition(" ")
        many = (head + " " if head else "") + IRREGULAR.get(last, last + "s")
    return f"{n:,} {many}"
