"""The ``albumsort`` command: a thin Typer layer over the library modules.

Read-only commands (top, nofaces, show, status, errors, export) touch only
the SQLite index; none of them imports TensorFlow or loads a model.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from albumsort.index import DEFAULT_MIN_CONFIDENCE
from albumsort.labels import BEYOND, EMOTIONS, EXPRESSIONS
from albumsort.wording import plural

try:  # Typer 0.29 and later carry their own copy of Click: its errors are the ones raised
    from typer._click import core as _click_core
    from typer._click import exceptions as click
except ImportError:  # older Typer uses Click itself
    from click import core as _click_core
    from click import exceptions as click


class ExitStatus(IntEnum):
    """Every exit status of every command (README, "Exit status")."""

    OK = 0
    FAILED = 1  # something could not be done on this run: a file failed to index, a photo failed to export
    USAGE = 2  # a usage error, or no usable index at --db: nothing was done
    LOCKED = 3  # another `albumsort index` holds the index
    STOPPED = 4  # `index` stopped on an unexpected error (a full disk...); what was done is saved
    INTERRUPTED = 130  # Ctrl-C; what was done is saved


class UsageLine(click.UsageError):
    """A usage error whose message is the whole line to print (after "error: ")."""

    exit_code = ExitStatus.USAGE


def _one_line(e: click.ClickException) -> str:
    """A click error as one line that says what to do, never click's framed box."""
    if isinstance(e, UsageLine):
        return e.format_message()
    ctx = getattr(e, "ctx", None)
    sub = ctx.info_name if ctx is not None and ctx.parent is not None else None
    if ctx is None:  # an error from Click's parser (an option missing its value) carries no context
        sub = _state.get("command")
    hint = f"see `albumsort{' ' + sub if sub else ''} --help`"
    if isinstance(e, click.NoSuchOption):
        msg = f"no such option: {e.option_name}"
        if e.possibilities:
            msg += f" (did you mean {', '.join(sorted(e.possibilities))}?)"
    elif isinstance(e, click.BadParameter):  # MissingParameter too
        msg = e.message.rstrip(".").removeprefix("Value error, ")
        for raw, words in (("Input should be a valid integer", "must be a whole number"),
                           ("Input should be a valid number", "must be a number")):
            if msg.startswith(raw):
                msg = words
        name = e.param_hint or "a value"
        if e.param is not None:
            longs = [o for o in e.param.opts if o.startswith("--")]
            name = e.param.metavar or e.param.name.upper() if e.param.param_type_name == "argument" else \
                (longs or e.param.opts)[0]
        if isinstance(e, click.MissingParameter):
            kind = "argument" if e.param is not None and e.param.param_type_name == "argument" else "option"
            msg = f"missing {kind} {name}"
        else:
            msg = f"{name}: {msg}"
    else:
        msg = e.format_message().rstrip(".")
        msg = msg[:1].lower() + msg[1:]
    return f"{msg}; {hint}"


def _db_first(args: list[str]) -> list[str]:
    """Move ``--db FILE`` from after the command to before it, where Click expects it."""
    out, moved, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a == "--":
            out += args[i:]
            break
        if a == "--db":
            if i + 1 >= len(args):
                raise UsageLine("--db needs a file name: albumsort --db FILE COMMAND ...")
            moved += args[i:i + 2]
            i += 2
            continue
        if a.startswith("--db="):
            moved.append(a)
        else:
            out.append(a)
        i += 1
    return moved + out


def _ray_address_optional(argv: list[str]) -> list[str]:
    """``--ray`` without an address (last, or before another option) means ``--ray auto``."""
    out = list(argv)
    for i, a in enumerate(out):
        if a == "--":
            break
        if a == "--ray" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out.insert(i + 1, "auto")
            break
    return out


def _quiet_help(cmd, ctx):
    opt = _click_core.Command.get_help_option(cmd, ctx)
    if opt is not None:
        opt.metavar = ""  # a flag: no type name in the help
        opt.help = "Show this help and exit."
    return opt


class AlbumCommand(TyperCommand):
    """A command whose help names arguments by their metavar alone (``PHOTO...``), with no type names."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for p in self.params:
            if p.param_type_name == "argument" and p.metavar:
                # export's EMOTION is optional to Click only so that its absence gets export's own message.
                label = p.metavar if p.required or p.metavar == "EMOTION" else f"[{p.metavar}]"
                p.display_type_rich = lambda ctx: None  # no "<list[Path]>" beside PHOTO...
                p._usage_display_name = lambda label=label: label  # "PHOTO...", not "{PHOTO...}"

    def get_help_option(self, ctx):
        return _quiet_help(self, ctx)


class AlbumGroup(TyperGroup):
    """Usage errors as one line with exit status 2; ``--db`` accepted after the command too."""

    def get_help_option(self, ctx):
        return _quiet_help(self, ctx)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            args = _ray_address_optional(_db_first(list(sys.argv[1:] if args is None else args)))
            _state["command"] = next((a for i, a in enumerate(args) if a in self.commands
                                      and (i == 0 or args[i - 1] != "--db")), None)
            rv = super().main(args, prog_name or "albumsort", complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else ExitStatus.OK
        except click.NoArgsIsHelpError:
            code = ExitStatus.USAGE  # the help was printed
        except click.ClickException as e:
            if not standalone_mode:
                raise
            from rich.markup import escape

            err.print(f"[red]error:[/red] {escape(_one_line(e))}", highlight=False)
            code = ExitStatus.USAGE if isinstance(e, click.UsageError) else e.exit_code
        except typer.Abort:
            err.print("aborted")
            code = ExitStatus.FAILED
        if not standalone_mode:
            return code
        sys.exit(int(code))


app = typer.Typer(
    cls=AlbumGroup,
    help="Sort a photo album by the emotions on people's faces (angry, happy, sad, neutral).",
    epilog="Exit status: 0 done; 1 something failed on this run; 2 a usage error or no usable index; "
           "3 another index run holds the index; 4 index stopped on an unexpected error; 130 interrupted.",
    rich_markup_mode="rich", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]})
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_state: dict = {"db": None}  # the --db given, for the last-resort handler in run()


def command(*args, **kwargs):
    return app.command(*args, cls=AlbumCommand, **kwargs)


class Format(str, Enum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"


def _detector_names() -> list[str]:
    from albumsort.detectors import names

    return names()


Detector = Enum("Detector", {n.replace("-", "_"): n for n in _detector_names()}, type=str)


class Mode(str, Enum):
    copy = "copy"
    hardlink = "hardlink"
    symlink = "symlink"


MIN_CONF_HELP = ("Ignore faces whose confidence (detector score x readability x top emotion probability) is "
                 "below X, 0..1. Confidence tops out near 0.9, so a threshold above that leaves every photo "
                 "\"No face\".")


def cannot_write(dest: Path, e: OSError) -> str:
    """The one line ``export`` and ``report`` give for a destination they cannot write."""
    from albumsort.export import write_advice

    return f"cannot write to {dest}: {write_advice(e)}"


def fail(message: str, code: int = ExitStatus.USAGE) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(int(code))


def note(message: str) -> None:
    """A message about the result (on stderr: stdout holds only data)."""
    err.print(message, highlight=False, markup=False)


def _version(value: bool) -> None:
    if value:
        from albumsort import __version__

        print(f"albumsort {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", envvar="ALBUMSORT_DB", metavar="FILE", show_default=False,
                                      help="The index file (default: $ALBUMSORT_DB, else index.db in the per-user "
                                           "data folder). May also follow the command."),
    version: bool = typer.Option(False, "--version", metavar="", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Index photos once, then rank them instantly by emotion."""
    _state["db"] = db
    from_env = ctx.get_parameter_source("db") is _click_core.ParameterSource.ENVIRONMENT
    ctx.obj = {"db": db, "db_name": "ALBUMSORT_DB" if from_env else "--db"}


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


def _positive(param: typer.CallbackParam, value: int | None) -> int | None:
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


def _format(as_json: bool, fmt: Format | None) -> Format:
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


def _n_opt(help: str, default: int | None = 20, shown: str | None = None):
    return typer.Option(default, "-n", "--number", metavar="N", callback=_positive, help=help,
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
        from albumsort.index import path_key
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
        from albumsort.index import path_key
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


def _list_query(n=20, min_confidence=DEFAULT_MIN_CONFIDENCE, any_=False, everyone=False, all_shots=False,
                folders=None, since=None, until=None, min_faces=None, max_faces=None, persons=None) -> ListQuery:
    return ListQuery(n, min_confidence, any_, everyone, all_shots, list(folders or []), since, until,
                     min_faces, max_faces, list(persons or []))


def open_index(ctx: typer.Context, create: bool = False):
    """The index: read-only unless ``create`` (only ``index`` writes to it)."""
    import sqlite3

    from albumsort.index import DamagedIndex, Index, IndexChanged, NotAnIndex, damaged_message, default_db_path

    given = ctx.obj["db"]
    path = Path(given).expanduser() if given else default_db_path()
    if path.is_dir():
        fail(f"{ctx.obj.get('db_name', '--db')} must name a file (the index), not a folder: {path} is a folder")
    if create:
        _check_writable(path, ctx.obj.get("db_name", "--db"))
    try:
        idx = Index(path, create=create)
    except IndexChanged as e:
        fail(str(e), code=ExitStatus.FAILED)
    except (FileNotFoundError, NotAnIndex, DamagedIndex) as e:
        fail(str(e))
    except sqlite3.DatabaseError as e:
        fail(damaged_message(path, e))
    except OSError as e:  # an unreadable file or folder
        fail(f"cannot open the index {path}: {e.strerror or e}")
    _state["index"] = idx
    return idx


def _check_writable(path: Path, option: str) -> None:
    """A usage error, before anything is opened, when the index at ``path`` could not be written.

    ``index`` writes the file, its ``-wal`` journal and a ``.lock`` beside it, so the folder must be
    writable too; a read-only folder (a backup drive) still serves every read command.
    """
    folder = path.absolute().parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent  # the first folder that exists: the index's folder is made inside it
    if not os.access(folder, os.W_OK):
        fail(f"cannot write the index {path}: the folder {folder} is not writable; choose another {option} "
             "(read commands still work on it)")
    if path.exists() and not os.access(path, os.W_OK):
        fail(f"cannot write the index {path}: the file is read-only; choose another {option} "
             "(read commands still work on it)")


# -- output: one emit() for every listing -------------------------------------------------------------
@dataclass
class Column:
    name: str
    value: Callable  # (row, rank) -> str | int | float | None
    digits: int = 3  # floats: decimals in a table (csv gets one more)
    justify: str = "right"


def _cell(v, digits: int) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def emit(rows: list[dict], fmt: Format, columns: list[Column], title: str | None = None,
         header: bool = False) -> None:
    """Print ``rows`` in ``fmt``: the JSON objects as they are, or ``columns`` of them.

    A table on a terminal is drawn by rich; piped, it is one tab-separated
    line per row, whole values, never cut or wrapped (after a line of
    column names with ``header``).
    """
    if fmt is Format.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif fmt is Format.ndjson:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    elif fmt is Format.csv:
        w = csv.writer(sys.stdout)
        w.writerow([c.name for c in columns])
        for i, r in enumerate(rows, 1):
            w.writerow(["" if (v := c.value(r, i)) is None else _cell(v, c.digits + 1) for c in columns])
    elif not console.is_terminal:
        if header:
            print("\t".join(c.name for c in columns))
        for i, r in enumerate(rows, 1):
            print("\t".join(_cell(c.value(r, i), c.digits) for c in columns))
    elif rows:
        from rich.text import Text

        t = Table(title=title)
        for c in columns:
            t.add_column(c.name, justify=c.justify, overflow="fold")
        for i, r in enumerate(rows, 1):
            t.add_row(*[Text(_cell(c.value(r, i), c.digits)) for c in columns])
        console.print(t)


def _pairs(rows: list[tuple[str, str]]) -> None:
    """Label and value lines (status): a borderless table on a terminal, tab-separated when piped."""
    if not console.is_terminal:
        for k, v in rows:
            print(f"{k}\t{v}")
        return
    from rich.text import Text

    t = Table(show_header=False, box=None)
    for k, v in rows:
        t.add_row(k, Text(v))
    console.print(t, highlight=False)


@command()
def index(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., metavar="PATH...", show_default=False,
                                       help="Photo folders (searched recursively) or files."),
    workers: int | None = typer.Option(None, "--workers", "-j", metavar="N", callback=_positive,
                                          show_default="one per core, fewer when memory is short",
                                          help="Worker processes."),
    detector: Detector | None = typer.Option(
        None, metavar="NAME", show_default="scrfd-int8",
        help="Face detector: " + ", ".join(_detector_names()) + " (scrfd's weights, float or int8, are for "
             "non-commercial use only; yunet is licence-clean)."),
    max_pixels: int | None = typer.Option(None, metavar="N", show_default="150,000,000",
                                             help="Refuse images larger than N pixels."),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", metavar="GLOB", show_default="none",
        help="Skip paths matching this gitignore-style pattern, relative to each PATH (repeatable); "
             "an .albumsortignore file in any folder does the same."),
    ray: str | None = typer.Option(
        None, "--ray", metavar="[ADDRESS]",
        help="Analyse the photos on a Ray cluster, one worker per CPU it offers: 'auto' (the default: the "
             "cluster this machine belongs to) or HOST:PORT of its head. Every node must see the photos at the "
             "same path, unless --ray-ship-bytes. Needs pip install 'albumsort\\[ray]'."),
    ray_ship_bytes: bool = typer.Option(
        False, "--ray-ship-bytes", metavar="",
        help="With --ray: read each photo here and send its bytes to the workers, for nodes without the photos."),
    people: bool = typer.Option(
        False, "--people", metavar="",
        help="Recognise people again after `albumsort people forget` turned it off (on by default)."),
) -> None:
    """Find and score every face under PATHS, and group faces into people; reruns only look at what changed.

    Exit status: 0 when every file was read (files and folders that failed on
    an earlier run and have not changed are only counted), 1 when one failed
    on this run, 2 on a usage error, 3 when another `index` holds the index,
    4 when it stopped on an unexpected error, 130 on Ctrl-C.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from albumsort.faces import DetectorUnavailable
    from albumsort.indexer import IndexLocked, run_index

    if max_pixels is not None and max_pixels < 1:
        raise UsageLine(f"--max-pixels must be a positive number, not {max_pixels}")
    for p in paths:
        if not os.path.lexists(p):
            fail(f"no such file or folder: {p}{_gone_hint(ctx, p)}")
    executor = None
    if ray_ship_bytes and not ray:
        fail("--ray-ship-bytes goes with --ray")
    if ray:
        if ":" not in ray and ray not in ("auto", "local") and os.path.lexists(ray):
            fail(f"--ray takes a cluster's address, not {ray}: put it after the photo folders, or write --ray auto")
        # Before the index is opened: a cluster that cannot be reached leaves nothing written.
        from albumsort.executors import ClusterUnreachable, RayPool, RayUnavailable

        try:
            executor = RayPool(ray, ship_bytes=ray_ship_bytes, workers=workers)
        except (RayUnavailable, ClusterUnreachable) as e:
            fail(str(e))
    try:
        idx = open_index(ctx, create=True)
    except BaseException:
        if executor is not None:
            executor.close()  # the cluster's actors and the Ray session made above end with the command
        raise
    columns = [TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} photos/s"), TextColumn("ETA"), TimeRemainingColumn(),
               TextColumn("{task.fields[workers]} workers")]
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as bar:
        task = bar.add_task("index", total=None, rate="-", workers="-")
        start = {}

        def on_total(n: int) -> None:
            import time

            start["t"] = time.time()
            bar.update(task, total=n)

        def progress(done: int, total: int) -> None:
            import time

            rate = done / max(time.time() - start.get("t", time.time()), 1e-6)
            bar.update(task, completed=done, total=total, rate=f"{rate:.1f}")

        try:
            summary = run_index([str(p) for p in paths], idx, workers=workers,
                                detector_name=detector.value if detector else None,
                                max_pixels=max_pixels, progress=progress, on_total=on_total, exclude=exclude,
                                executor=executor, on_workers=lambda k: bar.update(task, workers=k),
                                people=people or None)
            empty = [p for p in paths if not summary.interrupted and os.path.isdir(p) and not _held_under(idx, p)]
        except IndexLocked as e:
            fail(str(e), code=ExitStatus.LOCKED)
        except DetectorUnavailable as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted; whatever was indexed is saved: run the same command again to continue",
                 code=ExitStatus.INTERRUPTED)
        except Exception as e:  # a missing detector wheel, a full disk, a foreign database...
            fail(f"index stopped: {type(e).__name__}: {e}", code=ExitStatus.STOPPED)
        finally:
            idx.close()  # back to a rollback journal: readers then need no immutable open (Index.close)
    from rich.markup import escape

    for path, reason in summary.failures[:20]:
        err.print(f"[yellow]failed:[/yellow] {escape(path)}: {escape(reason)}", highlight=False)
    if len(summary.failures) > 20:
        err.print(f"... and {len(summary.failures) - 20} more: see `albumsort errors`")
    for p in empty:
        note(f"no photos found in {p}: albumsort reads {_extensions()} files (hidden folders, "
             ".albumsortignore and --exclude paths skipped)")
    note(summary.line())  # a message, not data: on stderr, as the README says
    if summary.interrupted:
        err.print("interrupted: the work done so far is saved; run the same command again to continue")
        raise typer.Exit(ExitStatus.INTERRUPTED)
    if summary.failed:
        raise typer.Exit(ExitStatus.FAILED)


def _held_under(idx, path: Path) -> int:
    """How many photos and failures the index holds at ``path`` or under it (what a run there found)."""
    from albumsort.index import path_key

    return sum(idx.held_under(path_key(os.path.abspath(path))))


def _gone_hint(ctx: typer.Context, path: Path) -> str:
    """For a PATH that does not exist: how many indexed photos are under it and how to drop them, if any."""
    from albumsort.index import Index, default_db_path, path_key

    given = ctx.obj["db"]
    try:
        idx = Index(Path(given).expanduser() if given else default_db_path(), create=False)
        photos = idx.held_under(path_key(os.path.abspath(path)))[0]
        idx.close()
    except Exception:  # no index yet, or not one: nothing to add
        return ""
    return (f"; the index holds {plural(photos, 'photo')} under it: `albumsort forget {path}` drops them"
            if photos else "")


def _extensions() -> str:
    from albumsort.images import EXTENSIONS

    names = sorted(e.lstrip(".").upper() for e in EXTENSIONS)
    return ", ".join(names[:-1]) + " and " + names[-1]


TOP_COLUMNS = [Column("rank", lambda r, i: i), Column("score", lambda r, i: float(r["score"])),
               Column("faces", lambda r, i: r.get("n_faces")), Column("shots", lambda r, i: r.get("shots", 1)),
               Column("path", lambda r, i: r["path"], justify="left")]
NOFACE_COLUMNS = [Column("reason", lambda r, i: r["reason"], justify="left"),
                  Column("faces", lambda r, i: r["n_faces"]),
                  Column("confidence", lambda r, i: r["confidence"], digits=2),
                  Column("path", lambda r, i: r["path"], justify="left")]


def _say_why_short(idx, q: ListQuery, emotion: str, items: list[dict]) -> None:
    """On stderr: why a list is empty, or that it is shorter than asked (stdout holds the list alone)."""
    if items and len(items) >= (q.n or 0):
        return
    gone = q.nothing_indexed(idx)
    if gone:
        note(gone)
        return
    if not items:
        hint = ""
        if not q.ranked(idx, emotion, 1, any_=True, everyone=False):  # no kept face at all
            if abs(q.min_confidence - DEFAULT_MIN_CONFIDENCE) > 1e-12 and (q.everyone or not q.any_):
                hint = f": no face reaches confidence {q.min_confidence:g}"
            if q.min_confidence > 0.9:
                hint += " (confidence tops out near 0.9)"
        elif not q.any_:
            hint = " (--any also lists groups where not everyone does)" if q.everyone else \
                " (--any lists every photo with a face, ranked by it)"
        note(f"no {_list_words(q, emotion, 0)}{hint}")
    else:
        note(f"only {len(items)} {_list_words(q, emotion, len(items))} (-n {q.n})")


def _list_words(q: ListQuery, emotion: str, count: int) -> str:
    """What a list holds, for ``count`` photos: the words of both the empty-list and the short-list note."""
    many = count > 1
    photos = "photos" if many else "photo"
    scope = f"{q.where()}{q.faces()}"
    reach = f"confidence {q.min_confidence:g}"
    if q.everyone and q.any_:
        return f"group {photos}{scope} with 2 or more faces that reach {reach}"
    if q.everyone:
        return f"group {photos}{scope} where everyone shows {emotion}"
    if q.any_:
        return f"{photos}{scope} {'have' if many else 'has'} a face that reaches {reach}"
    return f"{photos}{scope} {'show' if many else 'shows'} {emotion}"


@command()
def top(
    ctx: typer.Context,
    emotion: str = EMOTION_ARG,
    n: int = _n_opt("How many photos."),
    as_json: bool = JSON_OPT,
    fmt: Format | None = FORMAT_OPT,
    min_confidence: float = MIN_CONF_OPT,
    any_: bool = ANY_OPT,
    everyone: bool = EVERYONE_OPT,
    all_shots: bool = ALL_SHOTS_OPT,
    folders: list[Path] | None = IN_OPT,
    since: str | None = SINCE_OPT,
    until: str | None = UNTIL_OPT,
    min_faces: int | None = MIN_FACES_OPT,
    max_faces: int | None = MAX_FACES_OPT,
    persons: list[str] | None = PERSON_OPT,
) -> None:
    """The N photos that best show EMOTION, best first (answers from the index alone).

    A photo shows EMOTION when it is the strongest expression of at least
    one kept face, and of at least a quarter of them in a group; each burst
    of near-identical shots (and each set of copies) appears once.
    """
    fmt = _format(as_json, fmt)
    q = _list_query(n, min_confidence, any_, everyone, all_shots, folders, since, until, min_faces, max_faces,
                    persons)
    idx = open_index(ctx)
    q.check(idx)
    items = q.ranked(idx, emotion, with_faces=fmt in (Format.json, Format.ndjson))
    emit(items, fmt, TOP_COLUMNS, f"top {len(items)} {emotion}")
    _say_why_short(idx, q, emotion, items)  # on stderr in every format: stdout holds the data alone


@command()
def nofaces(
    ctx: typer.Context,
    n: int | None = _n_opt("How many photos.", default=None, shown="all"),
    as_json: bool = JSON_OPT,
    fmt: Format | None = FORMAT_OPT,
    min_confidence: float = MIN_CONF_OPT,
    folders: list[Path] | None = IN_OPT,
    since: str | None = SINCE_OPT,
    until: str | None = UNTIL_OPT,
) -> None:
    """Photos with no face at or above the confidence threshold, and why.

    Why: no face found; faces too small to read; faces not readable (masked,
    turned away); faces below the confidence threshold.  Surest first: no
    face found, then by the best face's confidence, lowest first.
    """
    from albumsort.ranking import no_faces

    fmt = _format(as_json, fmt)
    q = _list_query(n, min_confidence, folders=folders, since=since, until=until)
    idx = open_index(ctx)
    q.check(idx)
    items = no_faces(idx, min_confidence, filters=q.filters)[:n]
    emit(items, fmt, NOFACE_COLUMNS, "no face")
    if not items:
        note(q.nothing_indexed(idx) or f"every photo{q.where()} has a face at confidence >= {min_confidence:g}")


def _person_ids(idx, persons: list[str] | None) -> list[int]:
    """``--person`` values as person ids; a usage error for one the index does not know."""
    from albumsort.people import PersonError, resolve

    try:
        return [resolve(idx, given) for given in persons or []]
    except PersonError as e:
        raise UsageLine(str(e)) from None


def _photo_rows(idx, paths: list[Path], persons: list[int] | None = None) -> tuple[list[dict], list[dict]]:
    """Index rows for photos and folders given on the command line, and the failures among them.

    A folder stands for every indexed photo under it, and every file under
    it that failed to index; with ``persons``, only photos with a face of each of them (and no failures).
    The index alone answers: no file is opened.
    """
    from albumsort.index import path_key, path_text

    rows, failed = [], []
    for p in paths:
        raw = path_key(os.path.abspath(p))
        row = idx.photo(raw)
        if row is not None:
            rows.append(row)
            continue
        prefix = raw.rstrip(os.sep.encode()) + os.sep.encode()
        under = idx.query("SELECT * FROM photos WHERE substr(raw, 1, ?) = ? ORDER BY path, raw", [len(prefix), prefix])
        bad = idx.query("SELECT path, reason FROM errors WHERE substr(raw, 1, ?) = ? ORDER BY path, raw",
                        [len(prefix), prefix])
        if under or bad:
            rows += under
            failed += bad
            continue
        e = idx.error(raw)
        fail(f"{path_text(raw)} failed to index: {e['reason']}" if e else
             f"{path_text(raw)} is not in the index {idx.path}")
    if persons:
        from albumsort.people import photos_of

        theirs = photos_of(idx, persons)
        rows, failed = [r for r in rows if r["hash"] in theirs], []
    return rows, failed


def _report_failed(failed: list[dict], to_stdout: bool) -> None:
    for f in failed:
        line = f"{f['path']}: failed to index: {f['reason']}"
        if to_stdout:
            console.print(line, highlight=False, markup=False)
        else:
            note(line)


def _photo_json(idx, row: dict, min_confidence: float, known: dict | None = None) -> dict:
    from albumsort.people import names
    from albumsort.ranking import face_json, no_face_reason

    known = names(idx) if known is None else known

    res = idx.result(row["hash"]) or {}
    faces = idx.faces(row["hash"])
    read = idx.corrected_faces(row["hash"], faces)  # as ranking reads them: the user's corrections applied
    hidden = any(c["face"] == 0 and c["hidden"] for c in idx.corrections(row["hash"]))
    return {"path": row["path"], "width": res.get("width"), "height": res.get("height"),
            "model": res.get("model_version"), "detector": res.get("detector_version"),
            "taken": _when(row.get("taken")), "taken_from": row.get("taken_from"),
            "no_face": no_face_reason(read, min_confidence, res.get("n_small")), "n_small": res.get("n_small"),
            "truncated": res.get("truncated") is not None,
            "hidden": hidden,
            "faces": [face_json(f) | {"kept": r["confidence"] >= min_confidence}
                      | ({"corrected": r["corrected"]} if r.get("corrected") else {})
                      | ({"person_name": known.get(f["person"])} if f.get("person") is not None else {})
                      for f, r in zip(faces, read, strict=True)]}



def truncated_line(share: float) -> str:
    """What ``show`` and ``explain`` say of a file that ends early and was read as far as it goes."""
    held = f": the file holds about {share:.0%} of the picture" if share < 0.995 else ""
    return (f"truncated{held}; the rest is grey, as a viewer shows it (an interrupted copy? copy the photo "
            "again and rerun `albumsort index`)")


def _when(seconds: float | None) -> str | None:
    import datetime

    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _top_of(f: dict) -> str:
    """The model's top expression, or the user's (``albumsort set``) marked as theirs."""
    if f.get("corrected"):
        return f"{f['corrected']} (set by you)"
    return max(f["probabilities"], key=f["probabilities"].get)


FACE_COLUMNS = [Column("#", lambda f, i: i), Column("box x,y,w,h", lambda f, i: ",".join(f"{v:.0f}" for v in f["box"])),
                *[Column(e, lambda f, i, e=e: f["probabilities"][e], digits=2) for e in EXPRESSIONS],
                Column("top", lambda f, i: _top_of(f), justify="left"),
                Column("readable", lambda f, i: f.get("readability"), digits=2),
                Column("confidence", lambda f, i: f["confidence"], digits=2),
                Column("kept", lambda f, i: "kept" if f["kept"] else "ignored", justify="left"),
                Column("person", lambda f, i: f.get("person_name") or (f"#{f['person']}" if f.get("person") else ""),
                       justify="left")]


@command()
def show(
    ctx: typer.Context,
    photos: list[Path] = typer.Argument(..., metavar="PHOTO...", show_default=False,
                                        help="Indexed photos, or folders (every photo under them)."),
    as_json: bool = typer.Option(False, "--json", metavar="",
                                 help="JSON: one photo's object, or an array for several photos or a folder."),
    min_confidence: float = MIN_CONF_OPT,
    persons: list[str] | None = PERSON_OPT,
) -> None:
    """Each face of each PHOTO with its box, probabilities, readability and person, or "No face" and why.

    A folder lists every indexed photo under it (with --person, those of that
    person), then every file under it that failed to index, with the reason.
    """
    from rich.markup import escape

    from albumsort.people import names

    idx = open_index(ctx)
    rows, failed = _photo_rows(idx, photos, _person_ids(idx, persons))
    known = names(idx)
    objs = [_photo_json(idx, r, min_confidence, known) for r in rows]
    if as_json:
        from albumsort.index import path_key

        one = len(photos) == 1 and idx.photo(path_key(os.path.abspath(photos[0]))) is not None  # a photo, not a folder
        print(json.dumps(objs[0] if one else objs, indent=2, ensure_ascii=False))
        _report_failed(failed, to_stdout=False)
        return
    for row, obj in zip(rows, objs, strict=True):
        console.print(f"[bold]{escape(obj['path'])}[/bold]  {obj['width']}x{obj['height']}  "
                      f"taken {obj['taken']} ({'EXIF' if obj['taken_from'] == 'exif' else 'file time'})",
                      highlight=False)
        if obj["truncated"]:
            console.print(truncated_line(idx.result(row["hash"])["truncated"]), highlight=False, markup=False)
        faces = obj["faces"]
        if obj["hidden"]:
            console.print("hidden: kept out of every list (albumsort unhide to undo)", highlight=False, markup=False)
        if obj["no_face"]:
            ignored = f"; {len(faces)} ignored below confidence {min_confidence:g}" if faces else ""
            small = f" ({obj['n_small']} found)" if obj["n_small"] else ""
            console.print(f"No face: {obj['no_face']}{small}{ignored}", highlight=False, markup=False)
        if faces:
            emit(faces, Format.table, FACE_COLUMNS, header=True)
    _report_failed(failed, to_stdout=True)


def _explain_lines(idx, row: dict, min_confidence: float, ranked: dict, persons: list[int] | None = None) -> list[str]:
    from albumsort.people import label, names
    from albumsort.ranking import (
        PRIOR,
        PRIOR_WEIGHT,
        Filters,
        Ranks,
        burst_members,
        no_face_reason,
        p,
        shows_emotion,
        top_emotion,
    )

    known = names(idx)
    res = idx.result(row["hash"]) or {}
    model_faces = idx.faces(row["hash"])
    faces = idx.corrected_faces(row["hash"], model_faces)
    out = [f"{row['path']}  {res.get('width')}x{res.get('height')}  taken {_when(row.get('taken'))} "
           f"({'EXIF' if row.get('taken_from') == 'exif' else 'file time'})",
           f"scored by {res.get('model_version')} + {res.get('detector_version')}"]
    if any(c["face"] == 0 and c["hidden"] for c in idx.corrections(row["hash"])):
        out.append("hidden by you: kept out of every list (albumsort unhide to undo)")
    if res.get("truncated") is not None:
        out.append(truncated_line(res["truncated"]))
    out.append("")

    kept = []
    for i, (m, f) in enumerate(zip(model_faces, faces, strict=True), 1):
        probs = ", ".join(f"{e} {p(m, e):.2f}" for e in EXPRESSIONS)
        read = f.get("readability") if f.get("readability") is not None else 1.0
        top_p = max(p(f, e) for e in EXPRESSIONS)
        terms = f"detector {f['det_score']:.2f} x readability {read:.2f} x top expression {top_p:.2f}"
        if f.get("corrected"):
            terms = f"detector {f['det_score']:.2f}: you set this face to {f['corrected']} (albumsort set)"
        ok = f["confidence"] >= min_confidence
        verdict = "kept" if ok else f"ignored: confidence {f['confidence']:.2f} < {min_confidence:.2f}"
        if not ok and read < 0.5:
            verdict += " (the face cannot be read: turned, covered or not a face)"
        shows = f"shows {top_emotion(f)}" + (f" (set by you; the model read {top_emotion(m)})"
                                             if f.get("corrected") else "")
        who = f"; person {label(m['person'], known)}" if m.get("person") is not None else ""
        out.append(f"face {i}: box {', '.join(f'{v:.0f}' for v in (f['x'], f['y'], f['w'], f['h']))}; {probs}; "
                   f"{shows}{who}")
        out.append(f"        confidence {f['confidence']:.2f} = {terms} -> {verdict}")
        if ok:
            kept.append(f)
    if res.get("n_small"):
        out.append(f"{plural(res['n_small'], 'more face')} too small to read: found, not scored")
    reason = no_face_reason(faces, min_confidence, res.get("n_small"))
    if reason:
        out.append(f"No face: {reason}")
    out.append("")
    total = sum(f["confidence"] for f in kept)
    for e in EXPRESSIONS:
        if not kept:
            out.append(f"{e}: not ranked (no kept face)")
            continue
        num = sum(f["confidence"] * p(f, e) for f in kept)
        score = (num + PRIOR_WEIGHT * PRIOR) / (total + PRIOR_WEIGHT)
        shows = sum(top_emotion(f) == e for f in kept)
        if e not in ranked:
            ranked[e] = Ranks(idx, e, min_confidence, Filters(persons=list(persons or [])))
        pos = ranked[e].of(row["hash"])
        theirs = " of " + " and ".join(label(x, known) for x in persons) if persons else ""
        if pos:
            where = f"rank {pos}" + (f" in the list{theirs}" if persons else "")
        elif persons:
            where = f"not in the list{theirs}: not every one of their kept faces shows it (see --any)"
        elif not shows:
            where = "not in the list: no kept face shows it (see --any)"
        elif not shows_emotion(shows, len(kept)):
            where = f"not in the list: {shows} of {len(kept)} kept faces show it, fewer than a quarter (see --any)"
        else:
            where = "not in the list (its burst is shown by a better shot)"
        out.append(f"{e}: score {score:.3f} = (sum c*p {num:.3f} + {PRIOR_WEIGHT} x {PRIOR:.4g}) / "
                   f"(sum c {total:.3f} + {PRIOR_WEIGHT}); {plural(shows, 'face shows', 'faces show')} it; {where}")

    members = burst_members(idx, {"hash": row["hash"], "taken": row.get("taken"), "taken_from": row.get("taken_from"),
                                  "dhash": res.get("dhash")})
    out.append("")
    out.append(f"moment: {plural(len(members), 'shot')}" + "".join(f"\n  {m['path']}" for m in members))
    return out


@command()
def explain(
    ctx: typer.Context,
    photos: list[Path] = typer.Argument(..., metavar="PHOTO...", show_default=False,
                                        help="Indexed photos, or folders (each photo under them)."),
    min_confidence: float = MIN_CONF_OPT,
    persons: list[str] | None = PERSON_OPT,
) -> None:
    """Why each PHOTO ranks where it does: every face, whether it was kept, the score's terms, its burst, its ranks.

    A folder explains each indexed photo under it, then lists the files
    under it that failed to index.  With --person: only photos of that
    person, and the ranks are those of `top E --person`.
    """
    idx = open_index(ctx)
    ids = _person_ids(idx, persons)
    rows, failed = _photo_rows(idx, photos, ids)
    ranked: dict = {}  # emotion: ranking.Ranks, shared by the photos explained
    try:
        for i, row in enumerate(rows):
            if i:
                console.print("")
            for line in _explain_lines(idx, row, min_confidence, ranked, ids):
                console.print(line, highlight=False, markup=False)
    finally:
        for r in ranked.values():
            r.close()
    if rows and failed:
        console.print("")
    _report_failed(failed, to_stdout=True)


def status_rows(idx) -> list[tuple[str, str]]:
    """What ``status`` prints: the counts of ``Index.stats`` (the report's summary counts the same way)."""
    s = idx.stats()
    rows = [("index", str(idx.path)), ("photos", f"{s.photos:,}"),
            ("faces", f"{s.faces:,} found, {s.kept_faces:,} kept (confidence >= {s.min_confidence:g})"),
            ("no-face photos", f"{s.no_face:,}")]
    rows += [(f"mostly {e}", f"{s.by_emotion[e]:,}") for e in EXPRESSIONS]
    rows.append(("failed files", f"{s.failed:,}"))
    return rows


def version_name(version: str | None) -> str:
    """The name in a recorded model or detector version: ``emotion-1a2b3c4d5e6f`` -> ``emotion``,
    ``scrfd-int8-<12 hex>-s640-...`` -> ``scrfd-int8``; a version without a file hash is its own name."""
    import re

    m = re.match(r"(.+?)-[0-9a-f]{12}(?:-|$)", version or "")
    return m.group(1) if m else (version or "unknown")


def _day(seconds: float | None) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d") if seconds else "an unknown date"


@command()
def status(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", metavar="",
                                 help="Also show the version hashes of the model and the detector."),
) -> None:
    """What the index holds: photos, faces, failures, photos missing on disk, models, last run.

    Each photo with a kept face counts once, under the emotion of its
    highest score ("mostly happy"); the others are no-face photos, so the
    two add up to the photos.
    """
    idx = open_index(ctx)
    rows = status_rows(idx)
    gone = idx.missing()
    rows.append(("missing on disk", plural(len(gone), "photo") + (
        " (a deleted or unplugged folder: `albumsort forget PATH` drops them from the index, "
        "`albumsort index` on a parent folder notices deletions)" if gone else "")))
    if idx.has_column("results", "truncated"):
        cut = idx.conn.execute("SELECT count(*) FROM photos p JOIN results r ON r.hash = p.hash "
                               "WHERE r.truncated IS NOT NULL").fetchone()[0]
        if cut:
            rows.append(("truncated files", plural(cut, "photo") + " read as far as the file goes "
                         "(see `albumsort show`)"))
    for r in idx.query("SELECT r.model_version, r.detector_version, count(*) AS n, min(r.scored_at) AS first, "
                       "max(r.scored_at) AS last FROM photos p JOIN results r ON r.hash = p.hash "
                       "GROUP BY 1, 2 ORDER BY n DESC"):
        first, last = _day(r["first"]), _day(r["last"])
        when = f"scored {first}" if first == last else f"scored {first} to {last}"
        what = f"{version_name(r['model_version'])} model + {version_name(r['detector_version'])} detector"
        if verbose:
            what += f" ({r['model_version']} + {r['detector_version']})"
        rows.append(("scored by", f"{what}, {when} ({plural(r['n'], 'photo')})"))
    last = list(idx.query("SELECT * FROM runs ORDER BY id DESC LIMIT 1"))
    if last:
        import datetime

        when = datetime.datetime.fromtimestamp(last[0]["started"]).strftime("%Y-%m-%d %H:%M")
        from albumsort.index import run_in_progress

        if last[0]["summary"]:
            what = last[0]["summary"]
        elif run_in_progress(idx.path):
            what = "running now"
        else:
            what = "did not finish (interrupted); run `albumsort index` again to continue"
        rows.append(("last run", f"{when}: {what}"))
    _pairs(rows)


def _writable_index(ctx: typer.Context):
    """The index, opened for a small write (a correction); it must exist already."""
    from albumsort.index import default_db_path

    given = ctx.obj["db"]
    path = Path(given).expanduser() if given else default_db_path()
    if not path.exists():
        fail(f"no index at {path}: run `albumsort index PHOTOS` first")
    return open_index(ctx, create=True)


def _target(idx, given: str):
    from albumsort.corrections import CorrectionError, parse_target

    try:
        return parse_target(idx, given)
    except CorrectionError as e:
        fail(str(e))


@command(name="set")
def set_(
    ctx: typer.Context,
    photo: str = typer.Argument(..., metavar="PHOTO[#N]", show_default=False,
                                help="An indexed photo, or its Nth face as `show` numbers them: IMG.jpg#2."),
    emotion: str = typer.Argument(..., metavar="EMOTION", show_default=False,
                                  help="What it shows: angry, happy, sad, neutral, surprise, fear or disgust."),
) -> None:
    """Record what a photo (every face of it) or one face shows; lists read it before the model's reading.

    Kept in the index by content: it survives reruns, model upgrades and moves.
    `albumsort unset` removes it, `albumsort corrections` lists them.
    """
    from albumsort.corrections import CorrectionError, set_expression

    e = emotion_name(emotion)
    idx = _writable_index(ctx)
    t = _target(idx, photo)
    try:
        set_expression(idx, t, e)
    except CorrectionError as err:
        fail(str(err))
    which = f"face {t.face} of " if t.face else ""
    console.print(f"{which}{t.row['path']}: {e} (set by you)", highlight=False, markup=False)


@command()
def unset(
    ctx: typer.Context,
    photo: str = typer.Argument(..., metavar="PHOTO[#N]", show_default=False,
                                help="An indexed photo, or its Nth face: IMG.jpg#2."),
) -> None:
    """Remove what `albumsort set` recorded for a photo or a face: the model's reading counts again."""
    from albumsort.corrections import set_expression

    idx = _writable_index(ctx)
    t = _target(idx, photo)
    had = any(c["face"] == t.face and c["expression"] for c in idx.corrections(t.row["hash"]))
    set_expression(idx, t, None)
    which = f"face {t.face} of " if t.face else ""
    console.print(f"{which}{t.row['path']}: " + ("the model's reading counts again" if had else "had no correction"),
                  highlight=False, markup=False)


def _hide(ctx: typer.Context, photos: list[str], hidden: bool) -> None:
    """``hide`` and ``unhide``: one line per photo."""
    from albumsort.corrections import set_hidden

    idx = _writable_index(ctx)
    for given in photos:
        t = _target(idx, given)
        set_hidden(idx, t, hidden)
        console.print(f"{t.row['path']}: " + ("hidden from every list" if hidden else "back in the lists"),
                      highlight=False, markup=False)


@command()
def hide(
    ctx: typer.Context,
    photos: list[str] = typer.Argument(..., metavar="PHOTO...", show_default=False, help="Indexed photos."),
) -> None:
    """Keep photos out of every list (top, export, report, nofaces); `albumsort unhide` lets them back."""
    _hide(ctx, photos, True)


@command()
def unhide(
    ctx: typer.Context,
    photos: list[str] = typer.Argument(..., metavar="PHOTO...", show_default=False, help="Indexed photos."),
) -> None:
    """Let photos hidden by `albumsort hide` back into the lists."""
    _hide(ctx, photos, False)


@command()
def corrections(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", metavar="",
                                 help="A JSON array of {paths, face, expression, hidden, at}."),
) -> None:
    """Every correction you made (set, hide), oldest first, with the photos that hold it."""
    from albumsort.corrections import listing

    rows = listing(open_index(ctx))
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        what = ", ".join(x for x in (f"shows {r['expression']}" if r["expression"] else "",
                                     "hidden" if r["hidden"] else "") if x)
        where = " | ".join(r["paths"]) or "(no indexed photo holds this content now)"
        face = f"#{r['face']}" if r["face"] else ""
        wait = f" (waiting: {r['waiting']})" if r.get("waiting") else ""
        console.print(f"{where}{face}: {what}{wait}", highlight=False, markup=False)
    if not rows:
        note("no corrections (albumsort set PHOTO EMOTION, albumsort hide PHOTO)")


@command()
def forget(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., metavar="PATH...", show_default=False,
                                       help="Photos or folders, which need not exist any more."),
) -> None:
    """Drop from the index the photos and failures at or under each PATH: a deleted, renamed or unplugged folder.

    Only the index changes: no file is touched.  A PATH that still exists is
    indexed again by the next `albumsort index` of a folder above it (use
    --exclude or an .albumsortignore to keep it out).  Exit status 2, with
    nothing dropped, when a PATH holds nothing indexed; 3 when an `index`
    run holds the index.
    """

    from albumsort.index import path_key

    raws = [(p, path_key(os.path.abspath(p))) for p in paths]
    idx = open_index(ctx)  # read-only first: nothing is created or changed when there is nothing to forget
    for p, raw in raws:
        if not any(idx.held_under(raw)):
            fail(f"nothing indexed at or under {p}: nothing was forgotten (see `albumsort status`)")
    idx.close()
    done = _locked_change(ctx, lambda idx: [(p, *idx.forget(raw)) for p, raw in raws])
    for p, photos, failures in done:
        there = "on disk" if os.path.lexists(p) else "gone from disk"
        note(f"forgot {plural(photos, 'photo')} and {plural(failures, 'failure')} under {p} ({there}; "
             "no file was touched)")


people_app = typer.Typer(
    cls=TyperGroup, invoke_without_command=True, no_args_is_help=False, rich_markup_mode="rich",
    help="Who is in your photos: faces grouped into people, offline, kept in the index alone.")
app.add_typer(people_app, name="people")
PEOPLE_COLUMNS = [Column("person", lambda r, i: r["person"]), Column("name", lambda r, i: r["name"] or "",
                                                                     justify="left"),
                  Column("faces", lambda r, i: r["faces"]), Column("photos", lambda r, i: len(r["photos"])),
                  Column("sample", lambda r, i: r["sample"], justify="left")]


def _locked_change(ctx: typer.Context, change) -> object:
    """Run ``change(idx)`` in one transaction on the writable index (``forget``, ``people ...``), refused
    while an `index` run holds it."""
    from filelock import FileLock, Timeout

    from albumsort.people import PersonError

    idx = _writable_index(ctx)
    lock = FileLock(str(idx.path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        idx.close()
        fail(f"another `albumsort index` is updating {idx.path}; wait for it to finish, then run again",
             code=ExitStatus.LOCKED)
    try:
        with idx.transaction():
            return change(idx)
    except PersonError as e:
        fail(str(e))
    finally:
        idx.close()
        lock.release()


@people_app.callback()
def people(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", metavar="",
                                 help='A JSON array of {"person", "name", "faces", "photos": [paths], "sample"}.'),
    fmt: Format | None = FORMAT_OPT,
    all_: bool = typer.Option(False, "--all", metavar="", help="Also people seen in one photo only."),
    persons: list[str] | None = typer.Option(None, "--person", metavar="NAME_OR_ID", show_default="everyone",
                                                help="Only this person (repeatable)."),
) -> None:
    """The people in the index, most photographed first: `albumsort people name ID NAME` names one.

    Faces are grouped by a face-recognition network when `albumsort index`
    runs; a face too small, blurred or turned away to identify is in no
    group.  What is stored is a list of 128 numbers per face, in the index
    file only: `albumsort people forget` deletes them all.
    """
    if ctx.invoked_subcommand is not None:
        return
    from albumsort.people import MIN_PHOTOS, PersonError, has_people, listing, resolve

    fmt = _format(as_json, fmt)
    idx = open_index(ctx)
    try:
        ids = [resolve(idx, given) for given in persons or []]
    except PersonError as e:
        fail(str(e))
    rows = listing(idx, 1 if all_ else MIN_PHOTOS, ids or None)
    emit(rows, fmt, PEOPLE_COLUMNS, f"{plural(len(rows), 'person')}")
    if not rows and fmt == Format.table:
        if not has_people(idx) or idx.meta("people") == "off":
            note("no people: run `albumsort index PHOTOS`" + (" --people" if idx.meta("people") == "off" else ""))
        elif not all_:
            note(f"nobody is in {MIN_PHOTOS} photos or more yet (--all lists everyone)")


@people_app.command("name", cls=AlbumCommand)
def people_name(
    ctx: typer.Context,
    person: str = typer.Argument(..., metavar="ID", show_default=False, help="A person's id or current name."),
    name: str = typer.Argument(..., metavar="NAME", show_default=False, help="The name to give."),
) -> None:
    """Name a person (or rename one); lists take --person NAME from then on."""
    from albumsort.people import name as set_name
    from albumsort.people import resolve

    def change(idx):
        pid = resolve(idx, person)
        set_name(idx, pid, name)
        return pid

    pid = _locked_change(ctx, change)
    console.print(f"person {pid}: {name.strip()}", highlight=False, markup=False)


@people_app.command("merge", cls=AlbumCommand)
def people_merge(
    ctx: typer.Context,
    keep: str = typer.Argument(..., metavar="A", show_default=False, help="The person to keep (id or name)."),
    other: str = typer.Argument(..., metavar="B", show_default=False, help="The same person, grouped apart."),
) -> None:
    """Make B's faces A's: one person that was grouped as two.  Later runs keep them together."""
    from albumsort.people import merge, resolve

    def change(idx):
        a, b = resolve(idx, keep), resolve(idx, other)
        return a, b, merge(idx, a, b)

    a, b, moved = _locked_change(ctx, change)
    console.print(f"person {b} merged into person {a} ({plural(moved, 'face')} moved)", highlight=False,
                  markup=False)


@people_app.command("forget", cls=AlbumCommand)
def people_forget(ctx: typer.Context) -> None:
    """Delete every face embedding and person (and their names) from the index, and stop recognising people
    in it; `albumsort index PHOTOS --people` starts again."""
    from albumsort.people import forget as forget_people

    n, k = _locked_change(ctx, forget_people)
    note(f"deleted {plural(n, 'face embedding')} and {plural(k, 'person')}; people stay off for this index "
         "until `albumsort index PHOTOS --people`")


@command()
def errors(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", metavar="", help="Print a JSON array of {path, reason}."),
) -> None:
    """Files and folders that could not be indexed, with the reason."""
    rows = list(open_index(ctx).query("SELECT path, reason FROM errors ORDER BY path, raw"))
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        console.print(f"{r['path']}: {r['reason']}", highlight=False, markup=False)
    if not rows:
        note("no failures")


@command()
def export(
    ctx: typer.Context,
    what: str | None = typer.Argument(None, metavar="EMOTION", show_default=False,
                                         help="angry, happy, sad or neutral, or surprise, fear, disgust "
                                              "(with --all: DEST)."),
    dest: Path | None = typer.Argument(None, metavar="DEST", show_default=False,
                                          help="The folder to write into."),
    all_: bool = typer.Option(False, "--all", metavar="",
                              help="The four emotions into DEST/<emotion>/, plus DEST/no-face/: export --all DEST."),
    all_expressions: bool = typer.Option(False, "--all-expressions", metavar="",
                                         help="With --all: also surprise, fear and disgust."),
    n: int = _n_opt("How many photos per emotion."),
    mode: Mode = typer.Option(Mode.copy, "--mode", metavar="MODE", help="copy, hardlink or symlink."),
    xmp: bool = typer.Option(False, "--xmp", metavar="",
                             help="Beside each exported photo, an XMP sidecar (001_IMG.jpg.xmp) with the keyword "
                                  "albumsort|<emotion>, for digiKam, darktable, Immich and Lightroom."),
    min_confidence: float = MIN_CONF_OPT,
    any_: bool = ANY_OPT,
    everyone: bool = EVERYONE_OPT,
    all_shots: bool = ALL_SHOTS_OPT,
    folders: list[Path] | None = IN_OPT,
    since: str | None = SINCE_OPT,
    until: str | None = UNTIL_OPT,
    min_faces: int | None = MIN_FACES_OPT,
    max_faces: int | None = MAX_FACES_OPT,
    persons: list[str] | None = PERSON_OPT,
) -> None:
    """Write the ranked photos into DEST as 001_<name>, 002_<name>, ... with a manifest; reruns update it.

    With --xmp each exported photo gets an XMP sidecar with its keyword; a
    rerun removes the sidecars of photos that left DEST.

    Exit status 0 when every photo is in place (files kept aside are
    reported, not failures), 1 when a photo could not be written.
    """
    from albumsort.export import export_ranked
    from albumsort.ranking import no_faces

    if what is None:
        raise UsageLine("export --all needs DEST: albumsort export --all DEST" if all_ else
                        "export needs EMOTION and DEST: albumsort export EMOTION DEST (or export --all DEST)")
    if all_:
        if dest is not None:
            raise UsageLine("export --all takes only DEST: albumsort export --all DEST")
        root = Path(what)
        jobs = [(e, root / e) for e in (EXPRESSIONS if all_expressions else EMOTIONS)]
        if not persons:  # a person's photos are never no-face photos
            jobs.append(("no-face", root / "no-face"))
    else:
        if dest is None:
            raise UsageLine("export needs EMOTION and DEST: albumsort export EMOTION DEST (or export --all DEST)")
        jobs = [(emotion_name(what), dest)]
    q = _list_query(n, min_confidence, any_, everyone, all_shots, folders, since, until, min_faces, max_faces,
                    persons)
    idx = open_index(ctx)
    q.check(idx)
    status_code = ExitStatus.OK
    for kind, target in jobs:
        if kind == "no-face":
            found = [dict(it, score=0.0) for it in no_faces(idx, min_confidence, with_keys=True, filters=q.filters)]
            items, gone = _on_disk(found, n)
        else:
            items, gone = _ranked_on_disk(lambda k, kind=kind: q.ranked(idx, kind, k, with_keys=True), n)
        for path in gone[:20]:
            note(f"skipped: {path}: missing on disk (deleted, or on a drive not plugged in); "
                 "`albumsort forget PATH` drops it from the index")
        if len(gone) > 20:
            note(f"... and {plural(len(gone) - 20, 'more photo')} missing on disk")
        try:
            res = export_ranked(items, target, mode.value)
        except OSError as e:
            fail(cannot_write(target, e), code=ExitStatus.FAILED)
        aside = f", {len(res.set_aside)} set aside" if res.set_aside else ""
        console.print(f"{kind}: {res.written + res.kept} of {plural(len(items), 'photo')} in {target} "
                      f"({res.written} written, "
                      f"{res.kept} up to date, {res.removed} removed{aside})", highlight=False, markup=False)
        for s in res.notes:
            note(f"note: {s}")
        for s in res.failed:
            err.print(f"failed: {s}", highlight=False, markup=False)
            status_code = ExitStatus.FAILED
        if xmp or os.path.isdir(target):
            status_code = max(status_code, _export_sidecars(target, kind, xmp))
    raise typer.Exit(int(status_code))


def _export_sidecars(target: Path, kind: str, write: bool) -> int:
    """Bring the XMP sidecars in an export folder up to date (``sidecars.sync_export``); the exit status."""
    from albumsort.sidecars import sync_export

    res = sync_export(target, kind, write)
    if write:
        console.print(f"{kind}: XMP sidecars in {target} ({res.written} written, {res.kept} up to date, "
                      f"{res.removed} removed, {len(res.skipped)} skipped)", highlight=False, markup=False)
    elif res.removed:
        note(f"{kind}: {plural(res.removed, 'XMP sidecar')} of photos no longer in {target} removed")
    return _sidecar_notes(res)


def _sidecar_notes(res) -> int:
    for s in res.skipped:
        note(f"skipped: {s}")
    for s in res.failed:
        err.print(f"failed: {s}", highlight=False, markup=False)
    return ExitStatus.FAILED if res.failed else ExitStatus.OK


@command()
def tag(
    ctx: typer.Context,
    photos: list[Path] = typer.Argument(..., metavar="PHOTO...", show_default=False,
                                        help="Indexed photos, or folders (every indexed photo under them)."),
    beside_originals: bool = typer.Option(False, "--beside-originals", metavar="",
                                          help="Write the sidecars beside your original photos (required)."),
) -> None:
    """XMP sidecars beside your original photos, with the keywords albumsort|<emotion> other tools read.

    Each photo gets IMG.jpg.xmp with every emotion it shows (the lists it is
    in), or albumsort|no face.  Only where the photo has no sidecar yet
    (IMG.jpg.xmp or IMG.xmp): an existing one is never changed, and each is
    reported as skipped.  No photo is changed.  Exit status 1 when a
    sidecar could not be written.
    """
    from albumsort.ranking import shows_emotion
    from albumsort.sidecars import SidecarResult, tags_for, write_beside

    if not beside_originals:
        raise UsageLine("tag writes beside your original photos only when asked: add --beside-originals "
                        "(export --xmp tags exported copies instead)")
    idx = open_index(ctx)
    rows, failed = _photo_rows(idx, photos)
    result = SidecarResult()
    gone = 0
    for row in rows:
        res = idx.result(row["hash"]) or {}
        kinds = [e for e in EXPRESSIONS
                 if res.get("n_kept") and shows_emotion(res.get(f"shows_{e}") or 0, res["n_kept"])]
        if _missing(row):
            gone += 1
            note(f"skipped: {row['path']}: missing on disk")
            continue
        write_beside(row["raw"], tags_for(kinds or ["no-face"]), result)
    console.print(f"tag: XMP sidecars for {plural(len(rows), 'photo')} ({result.written} written, {result.kept} "
                  f"up to date, {len(result.skipped) + gone} skipped)", highlight=False, markup=False)
    raise typer.Exit(int(_sidecar_notes(result)))


def _missing(item: dict) -> bool:
    """Whether an indexed photo's file is gone (its folder too, perhaps); an unreadable one is not missing."""
    import errno

    try:
        os.stat(os.fsdecode(item["raw"]) if item.get("raw") else item["path"])
    except OSError as e:
        return e.errno in (errno.ENOENT, errno.ENOTDIR)
    return False


def _on_disk(items: list[dict], n: int) -> tuple[list[dict], list[str]]:
    """The first ``n`` items whose file is on disk, and the paths of the missing ones met on the way."""
    present, gone = [], []
    for it in items:
        if len(present) >= n:
            break
        (gone.append(it["path"]) if _missing(it) else present.append(it))
    return present, gone


def _ranked_on_disk(fetch: Callable[[int], list[dict]], n: int) -> tuple[list[dict], list[str]]:
    """``n`` ranked photos on disk: ``fetch(k)`` gives the first k of the list; while some are missing, twice
    as many are asked for, so an unplugged folder neither shortens the export nor makes it slow."""
    want = n
    while True:
        got = fetch(want)
        present, gone = _on_disk(got, n)
        if len(present) >= n or len(got) < want:
            return present, gone
        want = max(2 * want, len(got) + n - len(present))


@command()
def report(
    ctx: typer.Context,
    dest: Path = typer.Argument(..., metavar="DEST", show_default=False,
                                help="Folder to write index.html and thumbs/ into."),
    n: int = _n_opt("Photos per emotion (and no-face photos shown)."),
    open_: bool = typer.Option(False, "--open", metavar="", help="Open the report in the default browser."),
    all_expressions: bool = typer.Option(False, "--all-expressions", metavar="",
                                         help="Also sections for surprise, fear and disgust."),
    min_confidence: float = MIN_CONF_OPT,
    any_: bool = ANY_OPT,
    everyone: bool = EVERYONE_OPT,
    all_shots: bool = ALL_SHOTS_OPT,
    folders: list[Path] | None = IN_OPT,
    since: str | None = SINCE_OPT,
    until: str | None = UNTIL_OPT,
    min_faces: int | None = MIN_FACES_OPT,
    max_faces: int | None = MAX_FACES_OPT,
    persons: list[str] | None = PERSON_OPT,
) -> None:
    """A self-contained HTML gallery: top-N per emotion with face boxes, no-face photos and why, summary."""
    from albumsort.report import ForeignPage, build_report

    q = _list_query(n, min_confidence, any_, everyone, all_shots, folders, since, until, min_faces, max_faces,
                    persons)
    idx = open_index(ctx)
    q.check(idx)
    try:
        res = build_report(idx, dest, n, min_confidence, any_=any_, everyone=everyone,
                           all_shots=all_shots, filters=q.filters,
                           expressions=EXPRESSIONS if all_expressions else EMOTIONS)

    except ForeignPage as e:
        fail(str(e), code=ExitStatus.FAILED)
    except OSError as e:
        fail(cannot_write(dest, e), code=ExitStatus.FAILED)
    console.print(f"report: {res.path} ({plural(res.photos, 'photo')}; {plural(res.thumbs_made, 'thumbnail')} "
                  f"made, {res.thumbs_reused:,} reused)", highlight=False, markup=False)
    for reason in res.thumb_failures:
        err.print(f"thumbnail failed: {reason}", highlight=False, markup=False)
    if open_:
        import webbrowser

        webbrowser.open(res.path.resolve().as_uri())


def run() -> None:
    """Console-script entry point: a damaged index is one line, not a traceback.

    A query that fails on an index opened ``immutable`` while an ``index``
    run writes to it is not damage (``Index.changed``): the line says to run
    the command again, and nothing is said about moving the index.
    """
    import sqlite3

    try:
        app()
    except sqlite3.DatabaseError as e:
        from albumsort.index import changed_message, damaged_message, default_db_path

        idx = _state.get("index")
        if idx is not None and idx.changed():
            err.print(f"[red]error:[/red] {changed_message(idx.path)}", highlight=False)
            sys.exit(ExitStatus.FAILED)
        db = Path(_state["db"]).expanduser() if _state["db"] else default_db_path()
        err.print(f"[red]error:[/red] {damaged_message(Path(db), e)}", highlight=False)
        sys.exit(ExitStatus.USAGE)
