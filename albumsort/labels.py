"""The four emotions, in the order of the model's outputs (a module with no imports, for fast startup)."""

EMOTIONS = ("angry", "happy", "sad", "neutral")
