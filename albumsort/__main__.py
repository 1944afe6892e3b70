"""python -m albumsort: the same as the albumsort command."""

from albumsort.cli import run

run()
