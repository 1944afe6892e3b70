"""Walking folders: hidden folders, symlinks, loops, unreadable folders, odd names."""

import os
import sys

import pytest

from albumsort.scan import Entry, Failure, walk


def touch(p, data=b"x"):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def names(items):
    return sorted(os.path.basename(i.path) for i in items if isinstance(i, Entry))


def test_recursive_hidden_and_extensions(tmp_path):
    touch(tmp_path / "a.JPG")
    touch(tmp_path / "sub" / "deeper" / "b.heic")
    touch(tmp_path / "sub" / "c.txt")
    touch(tmp_path / ".hidden" / "d.jpg")
    touch(tmp_path / "sub" / "._e.jpg")  # AppleDouble sidecar
    assert names(walk([str(tmp_path)])) == ["a.JPG", "b.heic"]


def test_single_file_root(tmp_path):
    f = touch(tmp_path / "one.png")
    (item,) = list(walk([str(f)]))
    assert isinstance(item, Entry) and item.size == 1


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_broken_symlink_and_loop(tmp_path):
    touch(tmp_path / "ok.jpg")
    os.symlink(tmp_path / "missing.jpg", tmp_path / "dangling.jpg")
    os.symlink(tmp_path / "self.jpg", tmp_path / "self.jpg")  # file symlink loop
    os.symlink(tmp_path, tmp_path / "loop")  # folder link to an ancestor
    items = list(walk([str(tmp_path)]))
    reasons = {os.path.basename(i.path): i.reason for i in items if isinstance(i, Failure)}
    assert names(items) == ["ok.jpg"]
    assert reasons["dangling.jpg"] == "broken symlink"
    assert reasons["self.jpg"] == "symlink loop"
    assert "symlink loop" in reasons["loop"]


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_linked_folder_walked_once(tmp_path):
    touch(tmp_path / "real" / "a.jpg")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert names(walk([str(tmp_path)])) == ["a.jpg"]


def test_unreadable_folder_is_reported(tmp_path, monkeypatch):
    touch(tmp_path / "ok" / "a.jpg")
    touch(tmp_path / "locked" / "b.jpg")
    real = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(walk([str(tmp_path)]))
    assert names(items) == ["a.jpg"]
    (f,) = [i for i in items if isinstance(i, Failure)]
    assert f.is_dir and "permission denied" in f.reason


@pytest.mark.skipif(os.name != "posix" or getattr(os, "geteuid", lambda: 0)() == 0,
                    reason="root reads every folder; the monkeypatched test above covers CI")
def test_unreadable_folder_really(tmp_path):
    touch(tmp_path / "locked" / "b.jpg")
    os.chmod(tmp_path / "locked", 0)
    try:
        items = list(walk([str(tmp_path)]))
    finally:
        os.chmod(tmp_path / "locked", 0o755)
    assert any(isinstance(i, Failure) and i.is_dir for i in items)


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs a file system that takes any bytes")
def test_non_utf8_name(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg"
    with open(raw, "wb") as f:
        f.write(b"x")
    (item,) = list(walk([str(tmp_path)]))
    assert os.fsencode(item.path) == raw


def test_albumsortignore_and_exclude(tmp_path):
    from albumsort.scan import Entry, walk

    root = tmp_path / "photos"
    for rel in ("a.jpg", "raw/b.jpg", "trip/c.jpg", "trip/tmp/d.jpg", "trip/e.png", "trip/keep.png", "x/f.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / ".albumsortignore").write_text("# my rules\nraw/\n*.png\n")
    (root / "trip" / ".albumsortignore").write_text("tmp/\n!keep.png\n")

    def found(**kw):
        return sorted(os.path.relpath(e.path, root) for e in walk([str(root)], **kw) if isinstance(e, Entry))

    assert found() == ["a.jpg", "trip/c.jpg", "trip/keep.png", "x/f.jpg"]
    assert found(exclude=["x/", "a.*"]) == ["trip/c.jpg", "trip/keep.png"]
