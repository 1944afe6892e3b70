"""The Typer app and what every command shares: one-line usage errors, exit statuses, the index opened
for reading or for a locked change, and the console-script entry point."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

try:  # Typer 0.29 and later carry their own copy of Click: its errors are the ones raised
    from typer._click import core as _click_core
    from typer._click import exceptions as click
except ImportError:  # older Typer uses Click itself
    from click import core as _click_core  # type: ignore[no-redef]
    from click import exceptions as click  # type: ignore[no-redef]


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
        sub = state.get("command")
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
            state["command"] = next((a for i, a in enumerate(args) if a in self.commands
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
state: dict = {"db": None}  # the --db given, for the last-resort handler in run()


def command(*args, **kwargs):
    return app.command(*args, cls=AlbumCommand, **kwargs)




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
    state["db"] = db
    from_env = ctx.get_parameter_source("db") is _click_core.ParameterSource.ENVIRONMENT
    ctx.obj = {"db": db, "db_name": "ALBUMSORT_DB" if from_env else "--db"}



def open_index(ctx: typer.Context, create: bool = False):
    """The index: read-only unless ``create`` (only ``index`` writes to it)."""
    import sqlite3

    from albumsort.files import DamagedIndex, IndexChanged, NotAnIndex, damaged_message, default_db_path
    from albumsort.store import Index

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
    state["index"] = idx
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


def writable_index(ctx: typer.Context):
    """The index, opened for a small write (a correction); it must exist already."""
    from albumsort.files import default_db_path

    given = ctx.obj["db"]
    path = Path(given).expanduser() if given else default_db_path()
    if not path.exists():
        fail(f"no index at {path}: run `albumsort index PHOTOS` first")
    return open_index(ctx, create=True)



def locked_change(ctx: typer.Context, change: Callable[[Any], Any]) -> Any:
    """Run ``change(idx)`` in one transaction on the writable index (``forget``, ``people ...``), refused
    while an `index` run holds it."""
    from filelock import FileLock, Timeout

    from albumsort.files import lock_path
    from albumsort.people import PersonError

    idx = writable_index(ctx)
    lock = FileLock(lock_path(idx.path))
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
        from albumsort.files import changed_message, damaged_message, default_db_path

        idx = state.get("index")
        if idx is not None and idx.changed():
            err.print(f"[red]error:[/red] {changed_message(idx.path)}", highlight=False)
            sys.exit(ExitStatus.FAILED)
        db = Path(state["db"]).expanduser() if state["db"] else default_db_path()
        err.print(f"[red]error:[/red] {damaged_message(Path(db), e)}", highlight=False)
        sys.exit(ExitStatus.USAGE)
