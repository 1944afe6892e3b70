"""albumsort: sort a photo album by the emotions on people's faces."""

__version__ = "0.1.0"
