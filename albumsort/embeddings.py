"""Face embeddings and persons: who is in a photo, without names, offline.

Two parts, both free of the index and the CLI:

* ``FaceEmbedder``: a face-recognition network (``models/mobilefacenet_int8.onnx``, an int8 copy of MobileFaceNet;
  provenance in models/README.md) on ONNX Runtime.  A face is aligned by the
  detector's five landmarks onto the standard ArcFace 112 x 112 template
  (one similarity transform, one warp), and the network's 128 numbers become
  an L2-normalised float32 embedding plus the raw norm.  The raw norm is the
  quality signal: small, blurred and turned-away faces give short vectors.
  ``FaceEmbedder.usable`` is the rule that gives such a face no embedding.
* ``cluster_faces``: pure numpy grouping of embeddings into persons by
  agglomeration of groups' mean embeddings at a cosine threshold, with the rule that two
  faces of one photo are never one person.  It is incremental: faces that
  already have a person keep it, new faces join existing persons or make new
  ones, and persons never merge with each other, so ids (and the names a user
  gave them) stay stable across reruns.  ``carry_over`` keeps ids across a
  model change, which re-embeds and re-clusters every face.

Every threshold here is measured by ``benchmarks/people.py`` (figures in
benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from albumsort.runtime import OnnxModel, file_version, model_file

MODEL_NAME = "mobilefacenet_int8.onnx"
"""The network faces are embedded with: MobileFaceNet (``mobilefacenet.onnx``, foamliu) quantised to int8 by
``benchmarks/quantize_mobilefacenet.py``: 1.9x faster per face than the float file (about 1.8 against 3.3 ms on one
idle core), verification AUC on CK+ 0.9988 against 0.9987, and its own sweep chose the same ``THRESHOLD``,
``MIN_NORM`` and ``MIN_EYES`` (benchmarks/README.md, 2026-12-05)."""
SIZE = 112
"""Side of the aligned crop the network reads."""

ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963],  # eye on the image's left (the person's right eye)
    [73.5318, 51.5014],  # eye on the image's right
    [56.0252, 71.7366],  # nose tip
    [41.5493, 92.3655],  # mouth corner on the image's left
    [70.7299, 92.2041],  # mouth corner on the image's right
], np.float32)
"""Where the five landmarks go in the 112 x 112 crop: the template insightface's ArcFace training sets
(MS1M-ArcFace, which MobileFaceNet was trained on) were cut with, in SCRFD's landmark order."""

MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0
"""The network's input normalisation (RGB, ImageNet statistics), as it was trained."""

MIN_EYES = 12.0
"""A face whose eyes are under this many pixels apart, in the image it is cut from, gets no embedding.
Shrinking deepface's portraits until the eyes are 16, 12 and 8 px apart left 87%, 68% and 3% of their
same-person pairs within ``THRESHOLD`` (32 px: 94%; as photographed: 93%): under 12 px identification collapses, and
such a face would only add a person of one face (``benchmarks/people.py --sweep``; benchmarks/README.md)."""

MIN_NORM = 12.0
"""...nor a face whose raw embedding norm is under this: blurred, dim, masked, occluded or turned-away
faces give short vectors (deepface's and CK+'s portraits: 14-24; WIDER crowd faces: median 11), and such
faces gather into persons of strangers.  On the training half of the WIDER sample's crowds (eyes >= 12 px),
floors of 10, 12 and 14 left 8.5%, 4.3% and 2.2% of the embedded faces in a person with a face of another
photo, and 2.0%, 1.2% and 1.0% of the different-person pairs of one photo within ``THRESHOLD``; 12 keeps
88% of the crowd faces whose eyes are 40 px or more apart (14: 73%)."""

THRESHOLD = 0.575
"""Cosine similarity between two groups' mean embeddings (``LINKAGE``) at or above which they are one
person: the lowest threshold with pairwise precision >= 0.98 grouping CK+'s 48 px posed portraits (0.997,
recall 0.867; deepface's portraits 1.000 / 1.000 from 0.40 to 0.675).  Higher thresholds keep crowd
strangers further apart but cost CK+ recall (0.600: 0.777)."""

LINKAGE = "centroid"
"""How two groups' similarity is measured: ``centroid`` (cosine of their mean embeddings) or ``average``
(mean pairwise cosine).  On CK+, centroid linkage at 0.575 gave precision 0.997 / recall 0.867 against
average linkage's best at that precision, 0.981 / 0.840 (at 0.525)."""


def model_version(path: str | Path | None = None) -> str:
    """The version the index records for the face-recognition model (the shipped one by default), without
    loading it: a new file re-embeds every face and re-groups persons, keeping their ids where it can."""
    path = Path(path) if path else model_file(MODEL_NAME)
    return f"{path.stem}-{file_version(path)}"


def to_bytes(vector: np.ndarray) -> bytes:
    """How an embedding is stored in the index: float32 bytes."""
    return np.asarray(vector, np.float32).tobytes()


def from_bytes(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored embeddings back as an (N, D) float32 array."""
    if not blobs:
        return np.zeros((0, 128), np.float32)
    return np.stack([np.frombuffer(b, np.float32) for b in blobs])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix of the rotation + uniform scale + translation that maps ``src`` points (N, 2) onto
    ``dst`` (N, 2) in the least-squares sense (Umeyama, 1991; no reflection)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s ** 2).sum() / len(src)
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    scale = (sig * np.diag(e)).sum() / max(var_s, 1e-12)
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]]).astype(np.float32)


def landmarks_array(landmarks) -> np.ndarray:
    """Five (x, y) points from a ``faces.Face``, a flat list of 10 numbers or a (5, 2) array."""
    lm = getattr(landmarks, "landmarks", landmarks)
    if lm is None:
        raise ValueError("the face has no landmarks: embeddings need the detector's five points")
    return np.asarray(lm, np.float32).reshape(5, 2)


def eye_distance(landmarks) -> float:
    """Pixels between the two eyes: the face's size as alignment sees it (robust to box conventions)."""
    lm = landmarks_array(landmarks)
    return float(np.hypot(*(lm[1] - lm[0])))


def align(rgb: np.ndarray, landmarks, size: int = SIZE, template: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray:
    """The face with these five landmarks (in ``rgb``'s pixels) warped onto the ``size`` x ``size`` template.

    Only the region the warp samples is read: a 12 MP photo costs what the face costs.  A face much
    larger than the crop is first shrunk by a whole factor k (warping samples, it does not average), so a
    large face is not aliased; the region starts on a multiple of k and holds whole k x k blocks, so the
    shrink averages exactly the blocks a shrink of the whole photo would.  Pixels outside the photo
    replicate its border.
    """
    import cv2

    lm = landmarks_array(landmarks)
    dst = template * (size / 112.0)
    m = similarity_transform(lm, dst)
    scale = float(np.hypot(m[0, 0], m[0, 1]))
    k = int(1 / scale + 1e-3) if scale < 0.5 else 1  # 1 / 0.1 is 9.99... in float32
    inv = cv2.invertAffineTransform(m)
    square = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float32) @ inv.T
    margin = 2 * k + 2  # the bilinear neighbours of the outermost samples, in source pixels
    h, w = rgb.shape[:2]
    x0 = max(0, int(np.floor(square[:, 0].min())) - margin)
    y0 = max(0, int(np.floor(square[:, 1].min())) - margin)
    x1 = min(w, int(np.ceil(square[:, 0].max())) + margin + 1)
    y1 = min(h, int(np.ceil(square[:, 1].max())) + margin + 1)
    x0, y0 = x0 - x0 % k, y0 - y0 % k
    if x1 - x0 < k or y1 - y0 < k:  # the face lies outside the photo: sample the whole of it
        x0 = y0 = 0
        x1, y1 = w, h
    x1, y1 = x0 + max(k, (x1 - x0) // k * k), y0 + max(k, (y1 - y0) // k * k)  # whole k x k blocks only
    img = rgb[y0:y1, x0:x1]
    lm = lm - np.array([x0, y0], np.float32)
    if k > 1:
        img = cv2.resize(img, (max(1, img.shape[1] // k), max(1, img.shape[0] // k)), interpolation=cv2.INTER_AREA)
        lm = (lm - (k - 1) / 2) / k  # pixel centres of a k-fold area shrink
    m = similarity_transform(lm, dst)
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass
class Embeddings:
    """What ``FaceEmbedder.embed`` returns for N faces."""

    vectors: np.ndarray  # (N, D) float32, L2-normalised
    norms: np.ndarray  # (N,) float32: the raw norm before normalisation (quality); NaN where not run
    usable: np.ndarray  # (N,) bool: passes ``FaceEmbedder.usable``; the others get no embedding


class FaceEmbedder(OnnxModel):
    """The face-recognition network: aligned 112 px RGB crops in, unit 128-d embeddings and raw norms out."""

    def __init__(self, path: str | Path | None = None, threads: int | None = None, batch: int = 16,
                 min_norm: float = MIN_NORM, min_eyes: float = MIN_EYES):
        super().__init__(Path(path) if path else model_file(MODEL_NAME), threads)
        self.batch = batch
        self.min_norm, self.min_eyes = min_norm, min_eyes
        self.version = model_version(self.path)
        """Changes with the model file: the index re-embeds every face (and re-clusters) when it does."""

    @property
    def dim(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def embed_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Aligned uint8 RGB crops (N, 112, 112, 3) -> (unit embeddings (N, D) float32, raw norms (N,)).

        Runs ``batch`` crops at a time when the file's batch dimension is free; the shipped file's is fixed
        at 1 (a copy with a free one was 3% faster per face in batches of 8, not worth an altered file), so
        its crops run one by one."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        if len(crops) == 0:
            return np.zeros((0, 128), np.float32), np.zeros(0, np.float32)
        sess = self.session
        name = sess.get_inputs()[0].name
        fixed = sess.get_inputs()[0].shape[0]
        step = fixed if isinstance(fixed, int) else self.batch
        out = []
        for i in range(0, len(crops), step):
            x = ((crops[i:i + step].astype(np.float32) - MEAN) / STD).transpose(0, 3, 1, 2)
            out.append(sess.run(None, {name: np.ascontiguousarray(x)})[0])
        raw = np.concatenate(out).astype(np.float32)
        norms = np.linalg.norm(raw, axis=1).astype(np.float32)
        return raw / np.maximum(norms, 1e-12)[:, None], norms

    def usable(self, norms: np.ndarray, eyes: np.ndarray) -> np.ndarray:
        """Which faces get an embedding: raw norm at least ``min_norm`` (not blurred, small in detail or
        turned away) and eyes at least ``min_eyes`` px apart in the pixels they were cut from."""
        return (np.asarray(norms) >= self.min_norm) & (np.asarray(eyes) >= self.min_eyes)

    def embed(self, rgb: np.ndarray, faces: Sequence, scale: float = 1.0) -> Embeddings:
        """Embed ``faces`` (``faces.Face`` with landmarks, or five-point arrays) found in ``rgb``.

        ``scale``: pixels of ``rgb`` per pixel of the faces' coordinates (more than 1 when ``rgb`` is a
        larger decode of the image the detector read).  Size rules are judged in ``rgb``'s pixels.
        Faces with the eyes under ``min_eyes`` apart are not run (a crowd's small faces cost nothing): their
        vector is zero and their norm NaN.
        """
        lms = [landmarks_array(f) * np.float32(scale) for f in faces]
        vectors = np.zeros((len(lms), self.dim), np.float32)
        norms = np.full(len(lms), np.nan, np.float32)
        eyes = np.array([eye_distance(lm) for lm in lms], np.float32)
        run = np.flatnonzero(eyes >= self.min_eyes)
        if len(run):
            vectors[run], norms[run] = self.embed_crops(np.stack([align(rgb, lms[i]) for i in run]))
        return Embeddings(vectors, norms, self.usable(np.nan_to_num(norms), eyes))


# --------------------------------------------------------------------------
# Persons
def cluster_faces(vectors: np.ndarray, photos: Sequence, labels: ArrayLike | None = None,
                  threshold: float = THRESHOLD, chunk: int = 1024, linkage: str = LINKAGE) -> np.ndarray:
    """Person ids for every face: the given ones kept, new ones (label < 0) assigned.

    ``vectors``: (N, D) unit embeddings; ``photos``: N hashable photo keys (two faces with the same key are
    never one person); ``labels``: the faces' current person ids (ints >= 0), -1 for faces without one
    (all -1 when omitted).  Returns the N person ids: old faces keep theirs, a new face joins an existing
    person or gets a new id above every existing one.

    Agglomeration: starting from the existing persons and every new face on its own, the two most
    similar groups are merged while their similarity is at least ``threshold``, except two existing
    persons (their ids stay apart) and two groups that share a photo.  Each group is held as the sum of
    its unit vectors: ``centroid`` linkage is the cosine of two sums, ``average`` linkage (the mean
    pairwise cosine) is ``sum(A) . sum(B) / (|A| |B|)``.  New faces are taken ``chunk`` at a time (in the
    order given) so memory stays at ``chunk`` x (persons + ``chunk``) floats; within one chunk the result
    is exactly that of clustering them all at once.
    """
    if linkage not in ("centroid", "average"):
        raise ValueError(f"unknown linkage {linkage!r}: use 'centroid' or 'average'")
    v = np.asarray(vectors, np.float32)
    n = len(v)
    ids = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64).copy()
    if len(ids) != n or len(photos) != n:
        raise ValueError("vectors, photos and ids must have one entry per face")
    if n == 0:
        return ids
    photo_ids = _codes(photos)
    # existing persons: sum, count, set of photos
    person_ids = sorted({int(x) for x in ids if x >= 0})
    pidx = {p: i for i, p in enumerate(person_ids)}
    d = v.shape[1]
    psum = np.zeros((len(person_ids), d), np.float64)
    pcount = np.zeros(len(person_ids), np.int64)
    pphotos: list[set] = [set() for _ in person_ids]
    for i in np.flatnonzero(ids >= 0):
        k = pidx[int(ids[i])]
        psum[k] += v[i]
        pcount[k] += 1
        pphotos[k].add(photo_ids[i])
    next_id = (max(person_ids) + 1) if person_ids else 0
    new = np.flatnonzero(ids < 0)
    for start in range(0, len(new), chunk):
        idx = new[start:start + chunk]
        p = len(person_ids)
        groups, psum, pcount, pphotos = _agglomerate(v[idx], photo_ids[idx], psum, pcount, pphotos, threshold, linkage)
        for g in sorted(groups):
            if g >= p:  # a new person (groups p, p+1, ... in order of their first face)
                person_ids.append(next_id)
                next_id += 1
            ids[idx[groups[g]]] = person_ids[g]
    return ids


def _codes(keys: Sequence) -> np.ndarray:
    table: dict = {}
    return np.array([table.setdefault(k, len(table)) for k in keys], np.int64)


def _agglomerate(v, photos, psum, pcount, pphotos, threshold, linkage):
    """One chunk of new faces against the existing persons (see ``cluster_faces``).

    Groups 0..p-1 are the p existing persons, p..p+c-1 the chunk's faces, each on its own at first; row r
    of the similarity matrix is new group p + r against every group.  Returns ({group: positions in the
    chunk}, with new groups numbered p, p+1, ... in order of their first face; and the persons with the
    new groups appended).
    """
    p, c = len(psum), len(v)
    sums = np.vstack([psum, v.astype(np.float64)])
    counts = np.concatenate([pcount, np.ones(c, np.int64)]).astype(np.float64)
    centroid = linkage == "centroid"
    scale = np.linalg.norm(sums, axis=1) if centroid else counts.copy()  # the similarity's denominators
    members: dict[int, list[int]] = {p + j: [j] for j in range(c)}
    # conflict[r, k]: new group p + r and group k share a photo (or are the same group)
    holders: dict[int, list[int]] = {}
    for k, s in enumerate(pphotos):
        for ph in s:
            holders.setdefault(ph, []).append(k)
    for j, ph in enumerate(photos):
        holders.setdefault(int(ph), []).append(p + j)
    conflict = np.zeros((c, p + c), bool)
    for j, ph in enumerate(photos):
        conflict[j, holders[int(ph)]] = True
    alive = np.ones(c, bool)  # new groups not yet merged into another

    sim = (sums[p:] @ sums.T) / np.outer(scale[p:], scale)
    sim[conflict] = -np.inf
    best = sim.argmax(1)
    bval = sim[np.arange(c), best]
    while True:
        r = int(np.where(alive, bval, -np.inf).argmax())
        if not alive[r] or bval[r] < threshold:
            break
        a, b = p + r, int(best[r])  # new group a joins group b (a person or another new group)
        sums[b] += sums[a]
        counts[b] += counts[a]
        scale[b] = np.linalg.norm(sums[b]) if centroid else counts[b]
        members.setdefault(b, []).extend(members.pop(a))
        alive[r] = False
        sim[r] = -np.inf
        sim[:, a] = -np.inf
        conflict[:, b] |= conflict[:, a]
        if b >= p:
            conflict[b - p] |= conflict[r]
            row = (sums @ sums[b]) / (scale * scale[b])
            row[conflict[b - p]] = -np.inf
            row[p:][~alive] = -np.inf
            sim[b - p] = row
        col = (sums[p:] @ sums[b]) / (scale[p:] * scale[b])
        col[~alive | conflict[:, b]] = -np.inf
        sim[:, b] = col
        stale = alive & ((best == a) | (best == b))
        if b >= p:
            stale[b - p] = True
        for rr in np.flatnonzero(stale):
            best[rr] = int(sim[rr].argmax())
            bval[rr] = sim[rr, best[rr]]
        better = alive & ~stale & (col > bval)
        best[better] = b
        bval[better] = col[better]
    new_groups = sorted(g for g in members if g >= p)
    out = {g: members[g] for g in members if g < p}
    psum2 = np.vstack([sums[:p], sums[new_groups]])
    pcount2 = np.concatenate([counts[:p], counts[new_groups]]).astype(np.int64)
    pphotos2 = [set(s) for s in pphotos]
    for g, m in out.items():
        pphotos2[g] |= {int(photos[j]) for j in m}
    for i, g in enumerate(new_groups):
        out[p + i] = members[g]
        pphotos2.append({int(photos[j]) for j in members[g]})
    return out, psum2, pcount2, pphotos2


def carry_over(old: ArrayLike, new: ArrayLike) -> np.ndarray:
    """Person ids across a re-clustering (a model change): each new group takes the old id that most of
    its faces had, largest overlaps first, each old id at most once; the rest get fresh ids above all old
    ones.  ``old``: the faces' previous ids (-1 for none); ``new``: their ids from ``cluster_faces``."""
    before = np.asarray(old, np.int64)
    after = np.asarray(new, np.int64)
    pairs: dict[tuple[int, int], int] = {}
    for o, g in zip(before.tolist(), after.tolist(), strict=True):
        if o >= 0 and g >= 0:
            pairs[(g, o)] = pairs.get((g, o), 0) + 1
    mapping: dict[int, int] = {}
    used: set[int] = set()
    for (g, o), _ in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
        if g not in mapping and o not in used:
            mapping[g] = o
            used.add(o)
    nxt = max([int(x) for x in before.tolist() if x >= 0] + [-1]) + 1
    out = np.full(len(after), -1, np.int64)
    for g in sorted(set(after.tolist()) - {-1}):
        if g not in mapping:
            mapping[g] = nxt
            nxt += 1
        out[after == g] = mapping[g]
    return out


def pairwise_scores(truth: Iterable, predicted: Iterable) -> tuple[float, float]:
    """Pairwise precision and recall of a grouping: of the face pairs put in one group, the share that
    are one person; of the pairs that are one person, the share put in one group."""
    t = np.asarray(list(truth))
    q = np.asarray(list(predicted))
    iu = np.triu_indices(len(t), 1)
    same_t = (t[:, None] == t[None, :])[iu]
    same_q = (q[:, None] == q[None, :])[iu]
    tp = int((same_t & same_q).sum())
    prec = tp / max(int(same_q.sum()), 1)
    rec = tp / max(int(same_t.sum()), 1)
    return prec, rec
