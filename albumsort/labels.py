"""The expressions the model reads and the four lists shown by default (a module with no imports, for fast startup)."""

EXPRESSIONS = ("angry", "happy", "sad", "neutral", "surprise", "fear", "disgust")
"""Every expression the emotion model reads, in the order of its outputs; each has a list (``top surprise``)."""

EMOTIONS = EXPRESSIONS[:4]
"""The four emotions albumsort ranks by default (``export --all``, the report, ``status``' headline)."""

BEYOND = EXPRESSIONS[4:]
"""Expressions beyond the four: a face whose top expression is one of them joins none of the four lists."""
