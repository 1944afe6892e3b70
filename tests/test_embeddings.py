"""Face embeddings (albumsort.embeddings): the shipped network, alignment, the no-embedding rule, and persons."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import astronaut, grace_hopper, shared
from test_models import MODELS, provenance

from albumsort import embeddings as E


@pytest.fixture(scope="module")
def embedder():
    return E.FaceEmbedder(threads=1)


@pytest.fixture(scope="module")
def detector():
    from albumsort.faces import make_detector

    return make_detector(threads=1)


def unit(rng, n, d=128):
    v = rng.normal(size=(n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def noisy(rng, centre, n, spread):
    v = centre + rng.normal(scale=spread, size=(n, len(centre)))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --------------------------------------------------------------------------
# The shipped file
def test_shipped_network_matches_its_provenance_row(embedder):
    row = provenance()[E.MODEL_NAME]
    assert embedder.path.name == E.MODEL_NAME
    assert hashlib.sha256((MODELS / E.MODEL_NAME).read_bytes()).hexdigest() == row["sha256"]
    assert "non-commercial" in row["licence"]
    assert embedder.version == f"mobilefacenet_int8-{row['sha256'][:12]}"
    assert embedder.dim == 128


def test_the_int8_network_embeds_as_the_float_one_it_was_made_from(detector, embedder):
    """The shipped file is a quantised copy (benchmarks/quantize_mobilefacenet.py): on real faces, under small
    shifts, its embeddings point where the float network's do and its norms (the quality rule) agree."""
    assert "mobilefacenet.onnx" in provenance()[E.MODEL_NAME]["source"]
    source = E.FaceEmbedder(MODELS / "mobilefacenet.onnx", threads=1)
    for image in (astronaut, grace_hopper):
        rgb = np.asarray(image())
        lm = E.landmarks_array(detector.detect(rgb)[0])
        crops = np.stack([E.align(rgb, lm + d) for d in (0, 1, -2)])
        v8, n8 = embedder.embed_crops(crops)
        v32, n32 = source.embed_crops(crops)
        assert np.all(np.sum(v8 * v32, axis=1) > 0.95)
        np.testing.assert_allclose(n8, n32, rtol=0.1)


# --------------------------------------------------------------------------
# Alignment
def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, s = rng.uniform(-0.6, 0.6), rng.uniform(0.2, 4)
        r = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        t = rng.uniform(-300, 300, 2)
        photo = E.ARCFACE_TEMPLATE @ r.T + t  # the template's points as seen in some photo
        m = E.similarity_transform(photo, E.ARCFACE_TEMPLATE)
        back = photo @ m[:, :2].T + m[:, 2]
        np.testing.assert_allclose(back, E.ARCFACE_TEMPLATE, atol=1e-3)


def test_alignment_puts_the_landmarks_where_the_template_says():
    """Five bright dots at rotated, scaled landmark positions land on the template's points in the crop."""
    import cv2

    a, s, t = np.deg2rad(20), 2.5, np.array([180.0, 90.0])
    r = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lm = E.ARCFACE_TEMPLATE @ r.T + t
    img = np.zeros((600, 600, 3), np.uint8)
    for x, y in lm:
        cv2.circle(img, (int(round(x * 8)), int(round(y * 8))), 24, (255, 255, 255), -1, shift=3)
    crop = E.align(img, lm.reshape(-1))  # a flat list of 10, as faces.Face keeps them
    assert crop.shape == (E.SIZE, E.SIZE, 3)
    grey = crop[..., 0].astype(np.float64)
    for x, y in E.ARCFACE_TEMPLATE:
        x0, y0 = int(x) - 5, int(y) - 5
        w = grey[y0:y0 + 11, x0:x0 + 11]
        ys, xs = np.mgrid[y0:y0 + 11, x0:x0 + 11]
        cx, cy = (w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()
        assert abs(cx - x) < 0.75 and abs(cy - y) < 0.75, (cx, cy, x, y)


def test_large_faces_are_shrunk_before_warping_not_aliased():
    """A face ten times the crop's size, drawn in one-pixel stripes, comes out an even grey, not black or
    white, and a photo comes out where the exact warp puts it (the shrink keeps pixel centres)."""
    import cv2

    stripes = np.zeros((1120, 1120, 3), np.uint8)
    stripes[:, ::2] = 255
    crop = E.align(stripes, E.ARCFACE_TEMPLATE * 10).astype(float)
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 8  # warped unfiltered: std ~127
    photo = cv2.resize(np.asarray(astronaut()), (1120, 1120), interpolation=cv2.INTER_CUBIC)
    a = E.align(photo, E.ARCFACE_TEMPLATE * 10).astype(np.float32)
    m = E.similarity_transform(E.ARCFACE_TEMPLATE * 10, E.ARCFACE_TEMPLATE)  # the warp itself, blurred first
    b = cv2.warpAffine(cv2.GaussianBlur(photo, (0, 0), 4), m, (112, 112)).astype(np.float32)
    (dx, dy), _ = cv2.phaseCorrelate(a[..., 0], b[..., 0])
    assert abs(dx) < 0.1 and abs(dy) < 0.1



def _align_whole(rgb, lm, size=E.SIZE):
    """Alignment from the whole photo: shrunk by whole k x k blocks, then warped."""
    import cv2

    dst = E.ARCFACE_TEMPLATE * (size / 112.0)
    m = E.similarity_transform(lm, dst)
    scale = float(np.hypot(m[0, 0], m[0, 1]))
    img = rgb
    if scale < 0.5:
        k = int(1 / scale + 1e-3)
        h, w = rgb.shape[0] // k * k, rgb.shape[1] // k * k  # whole k x k blocks: an exact k-fold average
        img = cv2.resize(rgb[:h, :w], (w // k, h // k), interpolation=cv2.INTER_AREA)
        m = E.similarity_transform((lm - (k - 1) / 2) / k, dst)
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def test_alignment_reads_only_the_face_region_and_gives_what_the_whole_photo_gives():
    """Faces of every size (k = 1..6), inside the photo, on its edges and partly outside it, on a photo
    whose sides are no multiple of k: the crop is what aligning from the whole photo gives."""
    import cv2

    rng = np.random.default_rng(3)
    photo = cv2.resize(np.asarray(astronaut()), (1531, 1017), interpolation=cv2.INTER_CUBIC)
    photo = np.clip(photo.astype(int) + rng.integers(-20, 21, photo.shape), 0, 255).astype(np.uint8)  # detail
    worst = 0.0
    for scale in (0.8, 1.5, 2.5, 3.5, 5.0, 6.5):
        for cx, cy in ((700, 500), (40, 30), (1500, 1000), (-30, 500), (765, 1040)):
            angle = rng.uniform(-0.4, 0.4)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
            lm = (E.ARCFACE_TEMPLATE - 56) @ rot.T * scale + np.array([cx, cy], np.float32)
            a = E.align(photo, lm).astype(np.float32)
            b = _align_whole(photo, lm).astype(np.float32)
            worst = max(worst, float(np.abs(a - b).max()))
    assert worst <= 1.0, worst  # rounding of the warp's last bit


# --------------------------------------------------------------------------
# Embeddings of real faces
def _embed_first(detector, embedder, rgb):
    faces = detector.detect(rgb)
    assert faces, "the sample face was not found"
    return embedder.embed(rgb, faces[:1])


@pytest.mark.parametrize("image", [astronaut, grace_hopper])
def test_same_face_under_small_shifts_embeds_close(detector, embedder, image):
    rgb = np.asarray(image())
    ref = _embed_first(detector, embedder, rgb)
    assert ref.vectors.dtype == np.float32 and ref.vectors.shape == (1, 128)
    np.testing.assert_allclose(np.linalg.norm(ref.vectors, axis=1), 1.0, atol=1e-5)
    assert ref.usable.all() and ref.norms[0] >= E.MIN_NORM
    for dx, dy in ((3, 0), (0, -4), (5, 5)):
        moved = _embed_first(detector, embedder, np.roll(rgb, (dy, dx), axis=(0, 1)))
        assert float(moved.vectors[0] @ ref.vectors[0]) > 0.95


def test_different_faces_embed_far_apart(detector, embedder):
    a = _embed_first(detector, embedder, np.asarray(astronaut())).vectors[0]
    b = _embed_first(detector, embedder, np.asarray(grace_hopper())).vectors[0]
    assert float(a @ b) < E.THRESHOLD - 0.25


def test_batches_give_the_same_embeddings_as_single_faces(detector, embedder):
    rgb = np.asarray(astronaut())
    lm = E.landmarks_array(detector.detect(rgb)[0])
    crops = np.stack([E.align(rgb, lm + d) for d in (0, 1, -1, 2)])
    v, n = embedder.embed_crops(crops)
    for i in range(len(crops)):
        v1, n1 = embedder.embed_crops(crops[i])
        np.testing.assert_allclose(v1[0], v[i], atol=1e-5)
        np.testing.assert_allclose(n1[0], n[i], rtol=1e-5)


def test_tiny_or_blurred_faces_get_no_embedding(detector, embedder):
    import cv2

    rgb = np.asarray(grace_hopper())
    face = detector.detect(rgb)[0]
    k = 8 / E.eye_distance(face)  # eyes 8 px apart: under MIN_EYES
    tiny = cv2.resize(rgb, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    assert not embedder.embed(tiny, [face], scale=k).usable[0]
    runs = []
    real = embedder.embed_crops
    embedder.embed_crops = lambda crops: runs.append(len(crops)) or real(crops)
    try:  # the network runs on the face large enough to identify only
        both = embedder.embed(rgb, [face.scaled(k), face])
    finally:
        del embedder.embed_crops
    assert runs == [1] and np.isnan(both.norms[0]) and not both.usable[0] and both.usable[1]
    assert not both.vectors[0].any() and both.norms[1] >= E.MIN_NORM
    assert embedder.embed(rgb, [face]).usable[0]
    flat = np.full_like(rgb, 128)  # no face at all where the landmarks say: a short vector
    assert not embedder.embed(flat, [face]).usable[0]
    assert embedder.embed(rgb, []).vectors.shape == (0, 128)


def test_faces_without_landmarks_are_refused(embedder):
    from albumsort.faces import Face

    with pytest.raises(ValueError, match="landmarks"):
        embedder.embed(np.zeros((50, 50, 3), np.uint8), [Face((0, 0, 10, 10), 0.9)])


def test_crowd_faces_from_the_shared_sample_are_mostly_apart(detector, embedder):
    """Faces of one WIDER photo are different people: few of their pairs come within the threshold."""
    import csv

    from albumsort.images import load_rgb

    root = shared("wider-face-val-sample")
    with open(root / "boxes.csv", newline="") as f:
        paths = sorted({r["path"] for r in csv.DictReader(f) if r["path"].startswith("20--Family_Group")})[:6]
    sims = []
    for rel in paths:
        rgb, _ = load_rgb(root / "images" / rel, max_side=1000)
        e = embedder.embed(rgb, detector.detect(rgb))
        v = e.vectors[e.usable]
        sims += list((v @ v.T)[np.triu_indices(len(v), 1)])
    assert len(sims) >= 5
    assert np.mean(np.array(sims) >= E.THRESHOLD) < 0.1


# --------------------------------------------------------------------------
# Persons
def test_faces_of_one_photo_are_never_one_person():
    rng = np.random.default_rng(1)
    c = unit(rng, 1)[0]
    v = noisy(rng, c, 6, 0.01)  # six near-identical faces...
    photos = ["a", "a", "b", "b", "c", "c"]  # ...two per photo
    lab = E.cluster_faces(v, photos)
    for ph in set(photos):
        idx = [i for i, p in enumerate(photos) if p == ph]
        assert len({lab[i] for i in idx}) == len(idx)
    assert len(set(lab.tolist())) == 2  # and otherwise grouped: one person per face of a photo
    # nor does a new face join a person that already has a face of its photo
    again = E.cluster_faces(np.vstack([v, v[:1]]), photos + ["a"], list(lab) + [-1])
    assert again[-1] not in {lab[0], lab[1]}


def test_clusters_separate_identities_and_keep_ids_when_faces_are_added():
    rng = np.random.default_rng(2)
    centres = unit(rng, 8)
    truth = rng.integers(0, 8, 200)
    v = np.vstack([noisy(rng, centres[t], 1, 0.04)[0] for t in truth])
    photos = np.arange(200)
    first = E.cluster_faces(v[:120], photos[:120])
    assert E.pairwise_scores(truth[:120], first) == (1.0, 1.0)
    labels = np.concatenate([first, np.full(80, -1)])
    both = E.cluster_faces(v, photos, labels)
    np.testing.assert_array_equal(both[:120], first)  # old faces keep their persons
    assert E.pairwise_scores(truth, both) == (1.0, 1.0)  # new faces join them
    # a new identity gets a new id, above every existing one
    newcomer = noisy(rng, unit(rng, 1)[0], 3, 0.04)
    more = E.cluster_faces(np.vstack([v, newcomer]), np.arange(203), list(both) + [-1, -1, -1])
    assert len(set(more[-3:].tolist())) == 1 and more[-1] > both.max()
    # small chunks give the same persons
    chunked = E.cluster_faces(v, photos, labels, chunk=7)
    assert E.pairwise_scores(both, chunked) == (1.0, 1.0)


def test_existing_persons_never_merge():
    rng = np.random.default_rng(3)
    v = noisy(rng, unit(rng, 1)[0], 4, 0.01)
    lab = E.cluster_faces(v, [0, 1, 2, 3], [5, 9, -1, -1])
    assert lab[0] == 5 and lab[1] == 9 and set(lab[2:].tolist()) <= {5, 9}


@pytest.mark.parametrize("linkage", ["centroid", "average"])
def test_agglomeration_matches_a_brute_force_one(linkage):
    rng = np.random.default_rng(4)
    centres = unit(rng, 5)
    v = np.vstack([noisy(rng, centres[i % 5], 1, 0.09)[0] for i in range(40)])
    photos = np.arange(40) // 2
    th = 0.5

    def sim(a, b):
        if linkage == "average":
            return float((v[a] @ v[b].T).mean())
        sa, sb = v[a].sum(0), v[b].sum(0)
        return float(sa @ sb / np.linalg.norm(sa) / np.linalg.norm(sb))

    groups = [[i] for i in range(40)]
    while True:
        best, pair = -2.0, None
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if not set(photos[groups[i]]) & set(photos[groups[j]]):
                    s = sim(groups[i], groups[j])
                    if s > best:
                        best, pair = s, (i, j)
        if pair is None or best < th:
            break
        i, j = pair
        groups[i] += groups.pop(j)
    ref = np.zeros(40, int)
    for g, m in enumerate(groups):
        ref[m] = g
    got = E.cluster_faces(v, photos, threshold=th, linkage=linkage)
    assert E.pairwise_scores(ref, got) == (1.0, 1.0)


def test_carry_over_keeps_ids_across_a_re_clustering():
    old = np.array([3, 3, 3, 7, 7, -1, 4])
    new = np.array([0, 0, 1, 2, 2, 2, 5])  # 0 is mostly old 3; 2 is old 7; 1 and 5 are new or split off
    out = E.carry_over(old, new)
    assert out[0] == out[1] == 3 and out[3] == out[4] == out[5] == 7
    assert out[6] == 4  # a one-face person keeps its id too
    assert out[2] not in {3, 4, 7} and out[2] > 7


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        E.cluster_faces(np.zeros((2, 4)), [0])
    with pytest.raises(ValueError, match="linkage"):
        E.cluster_faces(np.zeros((1, 4)), [0], linkage="single")
    assert len(E.cluster_faces(np.zeros((0, 128)), [])) == 0
