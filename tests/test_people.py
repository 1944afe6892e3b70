"""Issue 20: faces grouped into people by `index`, named, merged and forgotten, and lists of one person's photos."""

import json
import sqlite3

import pytest
from PIL import Image, ImageOps

from albumsort import people
from albumsort.embeddings import pairwise_scores
from albumsort.pipeline import Pipeline, PipelineSpec
from albumsort.store import Index
from tests.conftest import astronaut, grace_hopper, scenery
from tests.test_cli import albumsort


def variants(im: Image.Image, n: int, seed: int) -> list[Image.Image]:
    """``n`` different shots of one face: scaled, turned a little, mirrored, cropped."""
    out = []
    for i in range(n):
        k = seed + i
        v = im.resize((int(im.width * (1.4 + 0.3 * (k % 3))), int(im.height * (1.4 + 0.3 * (k % 3)))))
        v = v.rotate((k % 5) * 3 - 6, expand=False, fillcolor=(90, 90, 90))
        if k % 2:
            v = ImageOps.mirror(v)
        out.append(v)
    return out


def collage(*ims: Image.Image) -> Image.Image:
    h = max(im.height for im in ims)
    out = Image.new("RGB", (sum(im.width for im in ims) + 40 * len(ims), h + 40), (200, 200, 200))
    x = 20
    for im in ims:
        out.paste(im, (x, 20))
        x += im.width + 40
    return out


@pytest.fixture
def family(tmp_path):
    """Three photos of one person, two of another, one of both, one with no face."""
    root = tmp_path / "family"
    root.mkdir()
    for i, im in enumerate(variants(astronaut(), 3, 0)):
        im.save(root / f"eileen_{i}.jpg", quality=90)
    for i, im in enumerate(variants(grace_hopper(), 2, 1)):
        im.save(root / f"grace_{i}.jpg", quality=90)
    collage(astronaut(), grace_hopper()).save(root / "both.jpg", quality=90)
    scenery(3, (640, 480)).save(root / "view.jpg", quality=90)
    return root


def persons_by_file(db) -> dict[str, list[int]]:
    c = sqlite3.connect(db)
    rows = c.execute("SELECT p.path, f.person FROM faces f JOIN photos p ON p.hash = f.hash ORDER BY p.path, f.idx")
    out: dict[str, list[int]] = {}
    for path, person in rows:
        out.setdefault(path.rsplit("/", 1)[-1], []).append(person)
    return out


def test_index_groups_faces_into_people_and_lists_them(family, tmp_path):
    db = tmp_path / "people.db"
    albumsort("index", family, db=db, check=True)
    who = persons_by_file(db)
    assert set(who) == {"eileen_0.jpg", "eileen_1.jpg", "eileen_2.jpg", "grace_0.jpg", "grace_1.jpg", "both.jpg"}
    truth, got = [], []
    for name, persons in who.items():
        if name == "both.jpg":
            continue
        assert len(persons) == 1 and persons[0] is not None, who
        truth.append(name.split("_")[0])
        got.append(persons[0])
    assert pairwise_scores(truth, got) == (1.0, 1.0), who
    eileen, grace = who["eileen_0.jpg"][0], who["grace_0.jpg"][0]
    assert sorted(who["both.jpg"]) == sorted([eileen, grace])  # two faces of one photo: two people

    listed = json.loads(albumsort("people", "--json", db=db, check=True).stdout)
    by_id = {p["person"]: p for p in listed}
    assert set(by_id) == {eileen, grace}
    assert by_id[eileen]["faces"] == 4 and len(by_id[eileen]["photos"]) == 4
    assert {p.rsplit("/", 1)[-1] for p in by_id[grace]["photos"]} == {"grace_0.jpg", "grace_1.jpg", "both.jpg"}
    assert by_id[eileen]["name"] is None and by_id[eileen]["sample"] in by_id[eileen]["photos"]
    assert listed[0]["person"] == eileen  # most photographed first
    # Embeddings are biometric data: no listing prints them.
    assert "embedding" not in albumsort("show", family, "--json", db=db, check=True).stdout


def test_names_person_lists_and_a_rerun_keep_ids(family, tmp_path):
    db = tmp_path / "people.db"
    albumsort("index", family, db=db, check=True)
    who = persons_by_file(db)
    eileen, grace = who["eileen_0.jpg"][0], who["grace_0.jpg"][0]
    p = albumsort("people", "name", str(eileen), "Eileen Collins", db=db, check=True)
    assert p.stdout.strip() == f"person {eileen}: Eileen Collins"
    albumsort("people", "name", str(grace), "Grace", db=db, check=True)

    listed = json.loads(albumsort("top", "happy", "--person", "eileen collins", "--any", "--json", "-n", "50",
                                  db=db, check=True).stdout)
    assert {i["path"].rsplit("/", 1)[-1] for i in listed} == {"eileen_0.jpg", "eileen_1.jpg", "eileen_2.jpg",
                                                                "both.jpg"}
    for item in listed:  # ranked by her own face: the score is her face's P(happy)
        hers = [f for f in item["faces"] if f.get("person") == eileen]
        assert len(hers) == 1 and item["score"] == pytest.approx(hers[0]["probabilities"]["happy"], abs=1e-4)
    assert [i["score"] for i in listed] == sorted((i["score"] for i in listed), reverse=True)
    both = json.loads(albumsort("top", "happy", "--person", "Grace", "--person", str(eileen), "--any", "--json",
                                db=db, check=True).stdout)
    assert [i["path"].rsplit("/", 1)[-1] for i in both] == ["both.jpg"]
    shown = albumsort("show", family, "--person", "Grace", db=db, check=True).stdout
    assert "grace_0.jpg" in shown and "eileen_0.jpg" not in shown and "Grace" in shown
    told = albumsort("explain", family / "both.jpg", "--person", "Grace", "--person", "Eileen Collins", db=db,
                     check=True).stdout
    assert "; person Grace" in told and "; person Eileen Collins" in told
    assert told.count(" in the list of Grace and Eileen Collins") == 7, told  # each expression: ranked or why not
    albumsort("report", tmp_path / "report", "--person", "Grace", db=db, check=True)
    page = (tmp_path / "report" / "index.html").read_text()
    people_part = page[page.index('<section id="people">'):]
    people_part = people_part[:people_part.index("</section>")]
    assert f'data-person="{grace}">Grace — 3 photos' in people_part and f'data-person="{eileen}"' not in people_part
    bad = albumsort("top", "happy", "--person", "Nobody", db=db)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: no person 'Nobody' in the index {db} " \
                                                        "(see `albumsort people`)"

    # A rerun that adds photos keeps every id and name; the new photos join their person.
    for i, im in enumerate(variants(astronaut(), 2, 7)):
        im.save(family / f"eileen_new_{i}.jpg", quality=90)
    albumsort("index", family, db=db, check=True)
    after = persons_by_file(db)
    assert after["eileen_new_0.jpg"] == [eileen] and after["eileen_new_1.jpg"] == [eileen]
    assert {k: v for k, v in after.items() if k in who} == who
    names = {p["person"]: p["name"] for p in json.loads(albumsort("people", "--json", db=db, check=True).stdout)}
    assert names == {eileen: "Eileen Collins", grace: "Grace"}


def test_a_rescored_photo_keeps_its_people_and_a_new_face_model_regroups_with_the_same_ids(family, tmp_path):
    db = tmp_path / "people.db"
    albumsort("index", family, db=db, check=True)
    who = persons_by_file(db)
    albumsort("people", "name", str(who["grace_0.jpg"][0]), "Grace", db=db, check=True)
    c = sqlite3.connect(db)
    with c:  # as after a new emotion model: every photo is scored again
        c.execute("UPDATE results SET model_version = 'emotion-older'")
    c.close()
    p = albumsort("index", family, db=db, check=True)
    assert "7 re-scored" in p.stderr, p.stderr
    assert persons_by_file(db) == who

    idx = Index(db)
    try:  # a new face-recognition model re-embeds (here: the same vectors) and groups every face again
        with idx.transaction():
            idx.db["meta"].upsert({"key": "embedder_version", "value": "mobilefacenet-older"}, pk="key")
            from albumsort.embeddings import model_version

            assert people.assign(idx, model_version()) == 0
    finally:
        idx.close()
    assert persons_by_file(db) == who
    assert any(p["name"] == "Grace" for p in json.loads(albumsort("people", "--json", db=db, check=True).stdout))


def test_merge_refuses_two_faces_of_one_photo_and_forget_deletes_every_embedding(family, tmp_path):
    db = tmp_path / "people.db"
    albumsort("index", family, db=db, check=True)
    who = persons_by_file(db)
    eileen, grace = who["eileen_0.jpg"][0], who["grace_0.jpg"][0]
    p = albumsort("people", "merge", str(eileen), str(grace), db=db)
    assert p.returncode == 2 and "both in 1 photo: two faces of one photo are never one person" in p.stderr
    assert persons_by_file(db) == who

    # Merging two persons that share no photo (the one photo they share forgotten first).
    albumsort("forget", family / "both.jpg", db=db, check=True)
    p = albumsort("people", "merge", str(eileen), str(grace), db=db, check=True)
    assert p.stdout.strip() == f"person {grace} merged into person {eileen} (2 faces moved)"
    (family / "both.jpg").unlink()
    albumsort("index", family, db=db, check=True)
    assert set(sum(persons_by_file(db).values(), [])) == {eileen}  # a rerun keeps them merged

    c = sqlite3.connect(db)
    blob = c.execute("SELECT embedding FROM faces WHERE embedding IS NOT NULL").fetchone()[0]
    c.close()
    p = albumsort("people", "forget", db=db, check=True)
    assert "deleted 5 face embeddings and 1 person" in p.stderr
    c = sqlite3.connect(db)
    assert c.execute("SELECT count(*) FROM faces WHERE embedding IS NOT NULL OR person IS NOT NULL").fetchone() == (0,)
    assert c.execute("SELECT count(*) FROM persons").fetchone() == (0,)
    c.close()
    assert blob[:64] not in db.read_bytes()  # overwritten in the file, not only unlinked from its rows
    albumsort("index", family, db=db, check=True)  # people stay off...
    assert json.loads(albumsort("people", "--json", db=db, check=True).stdout) == []
    assert set(sum(persons_by_file(db).values(), [])) == {None}
    albumsort("index", family, "--people", db=db, check=True)  # ...until asked for again, from nothing:
    assert len(json.loads(albumsort("people", "--json", db=db, check=True).stdout)) == 2  # the merge was forgotten


def test_the_pipeline_embeds_faces_large_enough_to_identify(tmp_path):
    path = tmp_path / "a.jpg"
    astronaut().save(path, quality=92)
    res = Pipeline(PipelineSpec()).analyse(str(path))
    assert len(res.faces) == 1 and len(res.faces[0].embedding) == 128 * 4 and res.faces[0].embedding_norm > 12
    off = Pipeline(PipelineSpec(people=False)).analyse(str(path))
    assert off.faces[0].embedding is None and off.faces[0].embedding_norm is None
    assert PipelineSpec(people=False).versions()[1] != PipelineSpec().versions()[1]  # turning people on re-reads
    tiny = tmp_path / "tiny.jpg"
    im = Image.new("RGB", (640, 480), (120, 120, 120))
    im.paste(astronaut().resize((100, 100)), (300, 200))  # a face 21 px high, read where it is
    im.save(tiny, quality=95)
    small = Pipeline(PipelineSpec()).analyse(str(tiny))
    assert small.faces
    for f in small.faces:  # eyes about 10 px apart: kept for its expression, too small to identify (not run)
        assert f.embedding is None and f.embedding_norm is None
