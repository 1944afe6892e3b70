"""albumsort: sort a photo album by the emotions on people's faces."""

import sys as _sys

__version__ = "0.1.0"


def _ignore_ctrl_c_in_workers() -> None:
    """A worker process leaves Ctrl-C to the main process from its first import of albumsort on.

    Ctrl-C reaches every process of the terminal's group; a spawned worker
    still importing would otherwise print a KeyboardInterrupt traceback.
    """
    mp = _sys.modules.get("multiprocessing")
    # A spawned child is named (SpawnProcess-N) before it imports anything of ours;
    # it learns its parent only later.
    if mp is not None and (mp.parent_process() is not None or mp.current_process().name != "MainProcess"):
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)


_ignore_ctrl_c_in_workers()
