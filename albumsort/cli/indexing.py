"""``albumsort index``: the one command that reads photos and writes the index."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

import typer

from albumsort import detectors
from albumsort.cli.base import (
    ExitStatus,
    UsageLine,
    command,
    err,
    fail,
    note,
    open_index,
)
from albumsort.cli.options import (
    positive,
)
from albumsort.wording import plural

Detector = Enum("Detector", {n.replace("-", "_"): n for n in detectors.names()}, type=str)  # type: ignore[misc]  # the registry


@command()
def index(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., metavar="PATH...", show_default=False,
                                       help="Photo folders (searched recursively) or files."),
    workers: int | None = typer.Option(None, "--workers", "-j", metavar="N", callback=positive,
                                          show_default="one per core, fewer when memory is short",
                                          help="Worker processes."),
    detector: Detector | None = typer.Option(
        None, metavar="NAME", show_default=detectors.DEFAULT,
        help="Face detector: " + ", ".join(detectors.names()) + " (scrfd's weights, float or int8, are for "
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
    from albumsort.indexing import IndexLocked, run_index

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
    from albumsort.files import path_key

    return sum(idx.held_under(path_key(os.path.abspath(path))))


def _gone_hint(ctx: typer.Context, path: Path) -> str:
    """For a PATH that does not exist: how many indexed photos are under it and how to drop them, if any."""
    from albumsort.files import default_db_path, path_key
    from albumsort.store import Index

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
