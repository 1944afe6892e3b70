"""The options every list shares, declared once, and the ``ListQuery`` they build; dates and checks
that turn a bad value into one usage line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import typer

from albumsort.cli.base import (
    UsageLine,
)
from albumsort.cli.output import Format
from albumsort.labels import BEYOND, EMOTIONS, EXPRESSIONS
from albumsort.scores import DEFAULT_MIN_CONFIDENCE

MIN_CONF_HELP = ("Ignore faces whose confidence (detector score x readability x top emotion probability) is "
                 "below X, 0..1. Confidence tops out near 0.9, so a threshold above that leaves every photo "
                 "\"No face\".")




def parse_date(text: str, end: bool = False, option: str = "--since") -> float:
    """YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] as local wall-clock seconds.

    With ``end`` the whole period named is included: ``--until 2024-06`` ends
    at the start of July.
    """
    import calendar
    import datetime

    text = text.strip()
    for fmt, step in (("%Y", "year"), ("%Y-%m", "month"), ("%Y-%m-%d", "day"), ("%Y-%m-%dT%H:%M", "minute"),
                      ("%Y-%m-%d %H:%M", "minute"), ("%Y-%m-%dT%H:%M:%S", "second"),
                      ("%Y-%m-%d %H:%M:%S", "second")):
        try:
            dt = datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
        if end:
            if step == "year":
                dt = dt.replace(year=dt.year + 1)
            elif step == "month":
                dt = dt.replace(year=dt.year + dt.month // 12, month=dt.month % 12 + 1)
            else:
                dt += {"day": datetime.timedelta(days=1), "minute": datetime.timedelta(minutes=1),
                       "second": datetime.timedelta(seconds=1)}[step]
        return float(calendar.timegm(dt.timetuple()))
    raise UsageLine(f"{option} {text!r} is not a date: use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]")


def _date_text(seconds: float) -> str:
    import datetime

    dt = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%d" if (dt.hour, dt.minute, dt.second) == (0, 0, 0) else "%Y-%m-%d %H:%M:%S")


# -- parameter checks: each a one-line usage error (exit 2) ---------------------------------------
def emotion_name(value: str) -> str:
    """An expression (the four emotions, or surprise, fear, disgust) in any case, or a usage error that
    suggests the nearest one."""
    import difflib

    e = value.strip().lower()
    if e in EXPRESSIONS:
        return e
    near = difflib.get_close_matches(e, EXPRESSIONS, n=1, cutoff=0.6)
    hint = (f"did you mean {near[0]}?" if near else
            f"choose {', '.join(EMOTIONS[:-1])} or {EMOTIONS[-1]}, or beyond the four {', '.join(BEYOND)}")
    raise UsageLine(f"unknown emotion {value!r} ({hint})")


def _emotion(value: str) -> str:
    return emotion_name(value)


def positive(param: typer.CallbackParam, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageLine(f"{param.opts[0]} must be a positive number, not {value}")
    return value


def _faces_count(param: typer.CallbackParam, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise UsageLine(f"{param.opts[0]} must be 0 or more, not {value}")
    return value


def _confidence(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise UsageLine(f"--min-confidence must be between 0 and 1 (confidence tops out near 0.9), not {value:g}")
    return value


def _since(value: str | None) -> str | None:
    if value is not None:
        parse_date(value, option="--since")
    return value


def _until(value: str | None) -> str | None:
    if value is not None:
        parse_date(value, end=True, option="--until")
    return value


def pick_format(as_json: bool, fmt: Format | None) -> Format:
    if as_json and fmt not in (None, Format.json):
        raise UsageLine(f"--json and --format {fmt.value} ask for two formats: give one of them")
    return Format.json if as_json else fmt or Format.table


IN_HELP = "Only photos under FOLDER (repeatable: any of them)."
SINCE_HELP = ("Only photos taken on or after DATE (EXIF capture time, else file time): "
              "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM.")
UNTIL_HELP = "Only photos taken up to the end of DATE (same forms as --since)."
ANY_HELP = "List every photo with a face, ranked by the emotion, not only those that show it."
EVERYONE_HELP = "Is everyone showing it? Photos with 2+ faces, every face showing the emotion, ranked by the least."
ALL_SHOTS_HELP = "List every shot of a burst and every copy, not one per moment."

# The options every list takes (top, nofaces, export, report): defined once, shared.
ANY_OPT = typer.Option(False, "--any", metavar="", help=ANY_HELP)
EVERYONE_OPT = typer.Option(False, "--everyone", metavar="", help=EVERYONE_HELP)
ALL_SHOTS_OPT = typer.Option(False, "--all-shots", metavar="", help=ALL_SHOTS_HELP)
IN_OPT = typer.Option(None, "--in", metavar="FOLDER", help=IN_HELP, show_default="any folder")
SINCE_OPT = typer.Option(None, "--since", metavar="DATE", help=SINCE_HELP, callback=_since,
                         show_default="no limit")
UNTIL_OPT = typer.Option(None, "--until", metavar="DATE", help=UNTIL_HELP, callback=_until,
                         show_default="no limit")
MIN_FACES_OPT = typer.Option(None, "--min-faces", metavar="N", callback=_faces_count,
                             help="Only photos with at least N kept faces.", show_default="no limit")
MAX_FACES_OPT = typer.Option(None, "--max-faces", metavar="N", callback=_faces_count,
                             help="Only photos with at most N kept faces.", show_default="no limit")
MIN_CONF_OPT = typer.Option(DEFAULT_MIN_CONFIDENCE, "--min-confidence", metavar="X", callback=_confidence,
                            help=MIN_CONF_HELP)
JSON_OPT = typer.Option(False, "--json", metavar="", help="Same as --format json.")
PERSON_OPT = typer.Option(None, "--person", metavar="NAME_OR_ID", show_default="anyone",
                          help="Only photos of this person (repeat for photos of all of them together), ranked by "
                               "their own faces; see `albumsort people`.")
FORMAT_OPT = typer.Option(None, "--format", "-f", metavar="FORMAT", help="table, json, ndjson or csv.",
                          show_default="table")
EMOTION_ARG = typer.Argument(..., metavar="EMOTION", callback=_emotion,
                             help="angry, happy, sad or neutral (any case).", show_default=False)


def n_opt(help: str, default: int | None = 20, shown: str | None = None):
    return typer.Option(default, "-n", "--number", metavar="N", callback=positive, help=help,
                        show_default=shown if shown else True)


@dataclass
class ListQuery:
    """What a list asks for, built once from the shared list options."""

    n: int | None = 20
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    any_: bool = False
    everyone: bool = False
    all_shots: bool = False
    folders: list = field(default_factory=list)  # as the user wrote them
    since: str | None = None
    until: str | None = None
    min_faces: int | None = None
    max_faces: int | None = None
    persons: list = field(default_factory=list)  # as the user wrote them (names or ids)
    person_ids: list = field(default_factory=list)  # resolved by ``check``

    @property
    def filters(self):
        from albumsort.files import path_key
        from albumsort.ranking import Filters

        return Filters(folders=[path_key(os.path.abspath(f)) for f in self.folders],
                       since=parse_date(self.since) if self.since else None,
                       until=parse_date(self.until, end=True, option="--until") if self.until else None,
                       min_faces=self.min_faces, max_faces=self.max_faces, persons=list(self.person_ids))

    def ranked(self, idx, emotion: str, n: int | None = None, **kw) -> list[dict]:
        from albumsort.ranking import top as rank

        kw.setdefault("with_faces", False)
        return rank(idx, emotion, n or self.n or 20, self.min_confidence, any_=kw.pop("any_", self.any_),
                    everyone=kw.pop("everyone", self.everyone), all_shots=self.all_shots, filters=self.filters, **kw)

    def where(self) -> str:
        """" of Ann under X taken since D": the persons, folders and dates asked for, as words."""
        f = self.filters
        words = (" of " + " and ".join(self.persons)) if self.persons else ""
        if self.folders:
            words += " under " + " or ".join(str(x) for x in self.folders)
        if f.since is not None and f.until is not None:
            words += f" taken from {_date_text(f.since)} to before {_date_text(f.until)}"
        elif f.since is not None:
            words += f" taken since {_date_text(f.since)}"
        elif f.until is not None:
            words += f" taken before {_date_text(f.until)}"
        return words

    def faces(self) -> str:
        if self.min_faces is not None and self.max_faces is not None:
            return f" with {self.min_faces} to {self.max_faces} kept faces"
        if self.min_faces is not None:
            return f" with at least {self.min_faces} kept faces"
        if self.max_faces is not None:
            return f" with at most {self.max_faces} kept faces"
        return ""

    def check(self, idx) -> None:
        """A usage error for an ``--in`` FOLDER that does not exist and holds no indexed photo (a typo), or
        a ``--person`` the index does not know; resolves the persons' ids.

        A folder that is gone but still has indexed photos (an unplugged drive) is a valid filter.
        """
        from albumsort.files import path_key
        from albumsort.people import PersonError, resolve
        from albumsort.ranking import Filters, count_photos

        try:
            self.person_ids = [resolve(idx, given) for given in self.persons]
        except PersonError as e:
            raise UsageLine(str(e)) from None
        for f in self.folders:
            if not os.path.exists(f) and not count_photos(idx, Filters(folders=[path_key(os.path.abspath(f))])):
                raise UsageLine(f"--in {f}: no such folder, and no indexed photo under it")

    def nothing_indexed(self, idx) -> str | None:
        """The line to print when no indexed photo lies in the folders and dates asked for, else None."""
        from albumsort.ranking import count_photos

        if count_photos(idx, self.filters):
            return None
        if not (self.folders or self.since or self.until):
            return f"the index {idx.path} holds no photo: run `albumsort index PHOTOS` first"
        if self.since or self.until:
            return f"no photo{self.where()} is indexed"
        return f"no indexed photo{self.where()}"


def list_query(n=20, min_confidence=DEFAULT_MIN_CONFIDENCE, any_=False, everyone=False, all_shots=False,
                folders=None, since=None, until=None, min_faces=None, max_faces=None, persons=None) -> ListQuery:
    return ListQuery(n, min_confidence, any_, everyone, all_shots, list(folders or []), since, until,
                     min_faces, max_faces, list(persons or []))
