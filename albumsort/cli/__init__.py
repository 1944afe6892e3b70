"""The ``albumsort`` command: a thin Typer layer over the library modules.

One module per group of commands; ``app`` holds what they share.  Read-only
commands (top, nofaces, show, explain, status, errors, export, report)
touch only the SQLite index; none of them imports a network runtime.
Importing the command modules registers their commands, in the order help lists them.
"""
# The import order is the order of the commands in --help: pyproject.toml exempts this file from sorting.

from albumsort.cli.base import ExitStatus, app, run, state
from albumsort.cli import indexing, lists, photos, corrections, people, exporting  # noqa: F401  (registration)

__all__ = ["ExitStatus", "app", "run", "state"]
