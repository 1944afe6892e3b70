"""albumsort report: escaping, links, thumbnails cache, and what a real browser shows."""

import os
import shutil
import sys
import urllib.parse
from pathlib import Path

import pytest

from albumsort.indexing import run_index
from albumsort.preprocess import EMOTIONS
from albumsort.ranking import no_faces, top
from albumsort.report import build_report
from albumsort.store import Index
from tests.conftest import ROOT, astronaut, grace_hopper, scenery

EVIL = "<img src=x onerror=alert(1)>.jpg"
ODD = "with space #1 %20 café.jpg"


@pytest.fixture
def indexed(tmp_path, album):
    astronaut().save(album / EVIL, quality=90)
    grace_hopper().save(album / ODD, quality=90)
    scenery(5).save(album / "places" / "no face #2.jpg")
    shutil.copy(album / "people" / "astronaut.jpg", album / "astronaut copy.jpg")  # one moment, two shots
    idx = Index(tmp_path / "r.db")
    run_index([str(album)], idx, workers=2)
    return idx, album


def test_report_escapes_links_and_reuses_thumbnails(indexed, tmp_path):
    idx, album = indexed
    res = build_report(idx, tmp_path / "rep", n=10)
    page = res.path.read_text(encoding="utf-8")
    assert EVIL not in page and "&lt;img src=x onerror=alert(1)&gt;.jpg" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    hrefs = [h.split('"')[0] for h in page.split('class="photo" href="')[1:]]
    assert hrefs
    for h in hrefs:
        h = h.replace("&amp;", "&")
        assert h.startswith("file:///")
        assert Path(urllib.parse.unquote(h[len("file://"):])).exists(), h
    assert res.thumbs_made == res.photos and res.thumbs_reused == 0
    again = build_report(idx, tmp_path / "rep", n=10)
    assert again.thumbs_made == 0 and again.thumbs_reused == res.photos


def browser():
    """A headless Chromium driven by Selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no Chromium/chromedriver: apt-get install chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--window-size=1280,1600",
              "--allow-file-access-from-files"):
        opts.add_argument(a)
    opts.add_argument(f"--user-data-dir={os.environ.get('TMPDIR', '/tmp')}/albumsort-chromium-{os.getpid()}")
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_report_in_headless_chromium(indexed, tmp_path):
    idx, album = indexed
    res = build_report(idx, tmp_path / "rep", n=10)
    drv = browser()
    try:
        drv.get(res.path.as_uri())
        drv.execute_script("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
        drv.set_script_timeout(30)
        drv.execute_async_script(
            "const done = arguments[0]; Promise.all([...document.images].map(i => i.complete ? 0 :"
            " new Promise(r => { i.onload = i.onerror = r; }))).then(done);")
        widths = drv.execute_script("return [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth])")
        assert widths and all(w > 0 for _, w in widths), widths
        # No script ran from the file name: no alert is open and the name is shown as text.
        from selenium.common.exceptions import NoAlertPresentException

        with pytest.raises(NoAlertPresentException):
            _ = drv.switch_to.alert.text
        names = drv.execute_script("return [...document.querySelectorAll('.name')].map(e => e.textContent)")
        assert EVIL in names and ODD in names
        for e in EMOTIONS:
            shown = drv.execute_script(
                f"return [...document.querySelectorAll('#{e} figure')].map(f => f.dataset.path)")
            assert shown == [r["path"] for r in top(idx, e, 10)]
            ranks = drv.execute_script(f"return [...document.querySelectorAll('#{e} figure')].map(f => f.dataset.rank)")
            assert ranks == [str(i) for i in range(1, len(shown) + 1)]
        shown = drv.execute_script("return [...document.querySelectorAll('#no-face figure')].map(f => f.dataset.path)")
        assert shown == [r["path"] for r in no_faces(idx)][:10]
        boxes = drv.execute_script("return document.querySelectorAll('.box').length")
        assert boxes >= 4
        # Face labels stay inside their thumbnail and never overlap one another.
        bad = drv.execute_script("""
            const out = [];
            for (const fig of document.querySelectorAll('figure')) {
              const img = fig.querySelector('img').getBoundingClientRect();
              const labels = [...fig.querySelectorAll('.box span')].map(s => s.getBoundingClientRect());
              labels.forEach((r, i) => {
                if (r.left < img.left - 0.5 || r.right > img.right + 0.5 || r.top < img.top - 0.5 ||
                    r.bottom > img.bottom + 0.5) out.push(['outside', fig.dataset.path]);
                labels.slice(i + 1).forEach(q => {
                  if (r.left < q.right && q.left < r.right && r.top < q.bottom && q.top < r.bottom)
                    out.push(['overlap', fig.dataset.path]);
                });
              });
            }
            return out;""")
        assert bad == []
        # Labels are whole ("happy 93%" or "happy", never "h" or "ha"), no wider than the layout allows for.
        from albumsort.report import LABEL_CHAR_PX, LABEL_PAD_PX

        spans = drv.execute_script("return [...document.querySelectorAll('.box span')].map("
                                   "s => [s.textContent, s.getBoundingClientRect().width, s.scrollWidth])")
        assert spans and all(t.split()[0] in EMOTIONS for t, _, _ in spans), spans
        assert all(w <= len(t) * LABEL_CHAR_PX + LABEL_PAD_PX and sw <= w + 0.5 for t, w, sw in spans), spans
        # A moment's thumbnail says how many shots it stands for.
        shots = drv.execute_script("return [...document.querySelectorAll('#happy figure')].map("
                                   "f => [f.dataset.path, (f.querySelector('.shots') || {}).textContent])")
        astro = [t for p, t in shots if "astronaut" in p]
        assert astro == ["2 shots"], shots
        shot = tmp_path / "report.png"
        drv.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("ALBUMSORT_UPDATE_SCREENSHOT"):
            shutil.copy(shot, ROOT / "docs" / "report.png")
    finally:
        drv.quit()


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs a file system that takes any bytes")
def test_names_that_print_alike_keep_their_own_thumbnail_link_and_hash(album, tmp_path):
    """Issue 21: ``p\\xff.jpg`` written literally and ``p<byte 0xff>.jpg`` print alike; each keeps its own."""
    import html as html_

    d = os.fsencode(str(album))
    literal, byte = d + b"/p\\xff.jpg", d + b"/p\xff.jpg"
    shutil.copy(album / "people" / "astronaut.jpg", os.fsdecode(literal))
    shutil.copy(album / "people" / "hopper.png", os.fsdecode(byte))
    idx = Index(tmp_path / "r.db")
    run_index([str(album)], idx, workers=2)
    printed = idx.photo(literal)["path"]
    assert printed == idx.photo(byte)["path"]
    page = build_report(idx, tmp_path / "rep", n=10, any_=True).path.read_text(encoding="utf-8")
    shown = set()
    for fig in page.split("<figure ")[1:]:
        if f'data-path="{html_.escape(printed)}"' in fig:
            href = html_.unescape(fig.split('href="')[1].split('"')[0])
            src = fig.split('<img src="thumbs/')[1].split('.jpg"')[0]
            shown.add((urllib.parse.unquote_to_bytes(href[len("file://"):]), src))
    assert shown == {(literal, idx.photo(literal)["hash"]), (byte, idx.photo(byte)["hash"])}
    assert (tmp_path / "rep" / "thumbs" / f"{idx.photo(byte)['hash']}.jpg").exists()
