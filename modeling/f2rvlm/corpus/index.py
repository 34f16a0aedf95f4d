"""The fragment index: topic fragments of many dialogues, their embeddings, a vector engine, and
search (recall top-K fragments, optional F2RVLM rerank per fragment, picks merged per dialogue).

On disk an index is a folder that `datasets.load_dataset(folder)` reads:

    manifest.json           embedder, backend, dim, shard list (written last: it is the commit)
    data/shard-00000.parquet  one row per fragment (see `FRAGMENT_COLUMNS`)
    index.faiss             the vector engine's file (FAISS) or vectors.npy (numpy)

`FragmentIndex.save` writes a whole index through `data.io.atomic_folder` (a half-built index
never replaces a good one); `add_dialogues` on a saved index writes one new shard and the engine
file under temporary names, renames them in, then rewrites the manifest with `os.replace`: a
reader sees the old index or the new one, and a crash leaves only an orphan shard that the next
open removes.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..core.dialogue import Dialogue, DialogueImage, Utterance, as_dialogue
from ..embeddings import l2_normalize
from .backends import load_backend, make_backend
from .segmentation import EmbeddingSegmenter, utterance_texts

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA_DIR = "data"
FRAGMENT_COLUMNS = ("dialogue_id", "fragment_id", "utterance_ids", "speakers", "texts", "timestamps",
                    "image_ids", "image_hosts", "images", "text", "embedding")


def _features(dim: int):
    from datasets import Features, List, Value

    return Features({
        "dialogue_id": Value("string"),
        "fragment_id": Value("int32"),
        "utterance_ids": List(Value("int32")),       # global ids in the dialogue
        "speakers": List(Value("string")),
        "texts": List(Value("string")),
        "timestamps": List(Value("string")),
        "image_ids": List(Value("int32")),           # global image ids in the dialogue
        "image_hosts": List(Value("int32")),         # per image: its utterance's position in the fragment
        "images": List({"bytes": Value("binary"), "path": Value("string"), "caption": Value("string")}),
        "text": Value("string"),                     # what was embedded, one "speaker: text" line per turn
        "embedding": List(Value("float32"), length=dim),
    })


# ----------------------------------------------------------------------------------------------
# Typed fragments and hits
# ----------------------------------------------------------------------------------------------
@dataclass
class Fragment:
    dialogue_id: str
    fragment_id: int
    utterance_ids: list[int]
    speakers: list[str]
    texts: list[str]
    image_ids: list[int]
    image_hosts: list[int]
    images: list[dict]
    timestamps: list[str] = field(default_factory=list)
    text: str = ""

    def dialogue(self) -> Dialogue:
        """The fragment as its own dialogue: utterances renumbered from 0, images from 0 (the
        released per-candidate prompt, FFRS_pipeline/6_fragment2F2RVLM.py)."""
        utterances = [Utterance(s, t) for s, t in zip(self.speakers, self.texts)]
        for host, image in zip(self.image_hosts, self.images):
            source = image.get("bytes") or image.get("path") or b""
            utterances[host].images.append(DialogueImage(source, image.get("caption") or None, image.get("path") or None))
        return Dialogue(utterances, f"{self.dialogue_id}+{self.fragment_id}")

    @classmethod
    def from_row(cls, row) -> Fragment:
        return cls(row["dialogue_id"], int(row["fragment_id"]), list(row["utterance_ids"]), list(row["speakers"]),
                   list(row["texts"]), list(row["image_ids"]), list(row["image_hosts"]), list(row["images"]),
                   list(row.get("timestamps") or []), row.get("text", ""))


@dataclass
class FragmentHit:
    """One recalled fragment; with a reranker, the utterances/images it picked (global ids)."""

    rank: int
    score: float
    fragment: Fragment
    utterance_ids: list[int] | None = None
    image_ids: list[int] | None = None
    #: The reranker's own scores for this fragment (local ids), when it gives any.
    rerank_scores: dict | None = None

    @property
    def dialogue_id(self) -> str:
        return self.fragment.dialogue_id


@dataclass
class DialogueHit:
    """Picks of all recalled fragments of one dialogue, merged (global ids)."""

    dialogue_id: str
    score: float
    utterance_ids: list[int]
    image_ids: list[int]
    fragments: list[FragmentHit]


@dataclass
class SearchResult:
    query: str
    fragments: list[FragmentHit]
    dialogues: list[DialogueHit]
    reranked: bool
    timings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "query": self.query, "reranked": self.reranked, "timings": self.timings,
            "dialogues": [{"dialogue_id": d.dialogue_id, "score": d.score, "utterance_ids": d.utterance_ids,
                           "image_ids": d.image_ids, "fragments": [f.fragment.fragment_id for f in d.fragments]}
                          for d in self.dialogues],
            "fragments": [{"rank": h.rank, "score": h.score, "dialogue_id": h.dialogue_id,
                           "fragment_id": h.fragment.fragment_id, "fragment_utterance_ids": h.fragment.utterance_ids,
                           "utterance_ids": h.utterance_ids, "image_ids": h.image_ids} for h in self.fragments],
        }


# ----------------------------------------------------------------------------------------------
# Building fragments
# ----------------------------------------------------------------------------------------------
def _image_record(image: DialogueImage) -> dict:
    data = None
    if isinstance(image.source, (bytes, bytearray)) or not image.path or image.path and os.path.exists(image.path):
        data = image.to_bytes()
    return {"bytes": data, "path": image.name or image.path, "caption": image.caption}


def fragment_rows(dialogue: Dialogue, groups: Sequence[Sequence[int]], vectors: np.ndarray) -> list[dict]:
    """One row per group: global ids, turn texts, images, and the normalised mean of its turns'
    vectors (every turn counts, so a fragment's vector is near what any of its turns says)."""
    dialogue_id = str(dialogue.dialogue_id)
    texts = utterance_texts(dialogue)
    first_image = np.cumsum([0] + [len(u.images) for u in dialogue.utterances])
    rows = []
    for fid, group in enumerate(groups):
        image_ids, hosts, images = [], [], []
        for local, uid in enumerate(group):
            for k, image in enumerate(dialogue.utterances[uid].images):
                image_ids.append(int(first_image[uid] + k))
                hosts.append(local)
                images.append(_image_record(image))
        vector = l2_normalize(np.asarray(vectors[list(group)], np.float32).mean(axis=0))[0]
        rows.append({
            "dialogue_id": dialogue_id, "fragment_id": fid,
            "utterance_ids": [dialogue.id_offset + i for i in group],
            "speakers": [dialogue.utterances[i].speaker for i in group],
            "texts": [dialogue.utterances[i].text for i in group],
            "timestamps": [dialogue.utterances[i].timestamp or "" for i in group],
            "image_ids": image_ids, "image_hosts": hosts, "images": images,
            "text": "\n".join(texts[i] for i in group),
            "embedding": vector.tolist(),
        })
    return rows


def _progress(items, desc: str, show: bool, total: int | None = None):
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, unit="chat")


def embedder_spec(embedder) -> str:
    return getattr(embedder, "spec", None) or {"MiniLMCaptionEmbedder": "minilm", "HashingEmbedder": "hashing"}.get(
        type(embedder).__name__, type(embedder).__name__)


class FragmentIndex:
    """Fragments of many dialogues + a vector engine. See the module docstring for the folder."""

    def __init__(self, embedder=None, backend: str | None = None, segmenter: Callable | None = None,
                 dim: int | None = None):
        if embedder is None or isinstance(embedder, str):
            from ..embeddings import build_embedder

            embedder = build_embedder(embedder or "minilm")
        self.embedder = embedder
        self.dim = dim or getattr(embedder, "dim", None) or int(embedder.embed_texts(["x"]).shape[1])
        self.segmenter = segmenter or EmbeddingSegmenter(embedder)
        self.backend = make_backend(backend, self.dim) if not hasattr(backend, "search") else backend
        self.fragments: list[Fragment] = []
        self._table: dict[tuple[str, int], dict] = {}  # (dialogue id, fragment id) -> stored row
        self.path: str | None = None
        self._shards: list[str] = []
        self.skipped: list[tuple[str, str]] = []

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def build(cls, dialogues: Iterable, embedder=None, backend: str | None = None, segmenter: Callable | None = None,
              show_progress: bool = False) -> FragmentIndex:
        index = cls(embedder, backend, segmenter)
        index.add_dialogues(dialogues, show_progress=show_progress, persist=False)
        return index

    def segment_and_embed(self, dialogue) -> list[dict]:
        dialogue = as_dialogue(dialogue)
        if not dialogue.dialogue_id:
            raise ValueError("every dialogue in an index needs a dialogue_id")
        if dialogue.dialogue_id in self.dialogue_ids():
            raise ValueError(f"dialogue {dialogue.dialogue_id!r} is already in the index")
        if not len(dialogue):
            return []
        vectors = self.embedder.embed_texts(utterance_texts(dialogue))
        groups = self.segmenter(dialogue, vectors)
        return fragment_rows(dialogue, groups, vectors)

    def add_dialogues(self, dialogues: Iterable, show_progress: bool = False, persist: bool | None = None) -> int:
        """Segment, embed and add dialogues; on a saved index (`persist` None -> True) the new
        fragments are written as one new shard without rewriting the others. Returns fragments added."""
        rows = []
        seen = set(self.dialogue_ids())
        for dialogue in _progress(dialogues, "indexing", show_progress):
            new = self.segment_and_embed(dialogue)
            did = new[0]["dialogue_id"] if new else None
            if did in seen:
                raise ValueError(f"dialogue {did!r} given twice")
            seen.add(did)
            rows += new
        self._append(rows)
        if (self.path is not None) if persist is None else persist:
            self._persist_new_shard(rows)
        return len(rows)

    def _append(self, rows: list[dict]) -> None:
        if not rows:
            return
        self.backend.add(np.asarray([r["embedding"] for r in rows], np.float32))
        self.fragments += [Fragment.from_row(r) for r in rows]
        self._table.update({(r["dialogue_id"], r["fragment_id"]): r for r in rows})

    def dialogue_ids(self) -> list[str]:
        return list(dict.fromkeys(f.dialogue_id for f in self.fragments))

    def __len__(self) -> int:
        return len(self.fragments)

    # -- disk ----------------------------------------------------------------------------------
    def _manifest(self) -> dict:
        return {"format_version": FORMAT_VERSION, "embedder": embedder_spec(self.embedder), "dim": self.dim,
                "backend": self.backend.name, "shards": self._shards, "num_fragments": len(self),
                "num_dialogues": len(self.dialogue_ids())}

    def _write_shard(self, rows: list[dict], folder: str, name: str) -> None:
        import pyarrow.parquet as pq
        from datasets import Dataset

        os.makedirs(os.path.join(folder, DATA_DIR), exist_ok=True)
        # the table carries the `datasets` features in its schema metadata: load_dataset reads them
        pq.write_table(Dataset.from_list(rows, features=_features(self.dim)).data.table,
                       os.path.join(folder, DATA_DIR, name))

    def save(self, path: str, overwrite: bool = False) -> str:
        """Write the whole index to `path` atomically (a temporary folder renamed in)."""
        from ..data.io import atomic_folder

        rows = [self._row_of(f) for f in self.fragments]
        with atomic_folder(path, overwrite=overwrite) as tmp:
            self._shards = ["shard-00000.parquet"] if rows else []
            if rows:
                self._write_shard(rows, tmp, self._shards[0])
            self.backend.save(tmp)
            _write_json(os.path.join(tmp, MANIFEST), self._manifest())
        self.path = os.path.abspath(path)
        return self.path

    def _row_of(self, fragment: Fragment) -> dict:
        return self._table[fragment.dialogue_id, fragment.fragment_id]

    def _persist_new_shard(self, rows: list[dict]) -> None:
        if not rows:
            return
        folder = self.path
        name = f"shard-{len(self._shards):05d}.parquet"
        while os.path.exists(os.path.join(folder, DATA_DIR, name)):
            name = f"shard-{len(self._shards):05d}-{int(time.time() * 1000) % 100000}.parquet"
        stage = tempfile.mkdtemp(prefix=".add-", dir=folder)
        try:
            self._write_shard(rows, stage, name)
            self.backend.save(stage)
            os.replace(os.path.join(stage, DATA_DIR, name), os.path.join(folder, DATA_DIR, name))
            for engine_file in os.listdir(stage):
                if engine_file != DATA_DIR:
                    os.replace(os.path.join(stage, engine_file), os.path.join(folder, engine_file))
            self._shards.append(name)
            _write_json(os.path.join(folder, MANIFEST), self._manifest())  # the commit point
        except BaseException:
            self._shards = [s for s in self._shards if s != name]
            raise
        finally:
            import shutil

            shutil.rmtree(stage, ignore_errors=True)

    @classmethod
    def load(cls, path: str, embedder=None) -> FragmentIndex:
        import pyarrow.parquet as pq

        manifest_path = os.path.join(path, MANIFEST)
        if not os.path.exists(manifest_path):
            raise FileNotFoundError(f"not a fragment index (no {MANIFEST}): {path}")
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        if embedder is None:
            from ..embeddings import build_embedder

            embedder = build_embedder(manifest["embedder"])
        index = cls(embedder, backend="numpy", dim=manifest["dim"])
        index.path = os.path.abspath(path)
        index._shards = list(manifest["shards"])
        # an orphan shard (an add killed before its manifest) is not part of the index
        data_dir = os.path.join(path, DATA_DIR)
        if os.path.isdir(data_dir):
            for name in os.listdir(data_dir):
                if name not in index._shards:
                    os.remove(os.path.join(data_dir, name))
        rows = []
        for shard in index._shards:
            rows += pq.read_table(os.path.join(data_dir, shard)).to_pylist()
        index.fragments = [Fragment.from_row(r) for r in rows]
        index._table = {(r["dialogue_id"], r["fragment_id"]): r for r in rows}
        backend = load_backend(manifest["backend"], path, manifest["dim"])
        if len(backend) != len(rows):  # the engine file lags its table: rebuild it from the table
            backend = make_backend(manifest["backend"], manifest["dim"])
            backend.add(np.asarray([r["embedding"] for r in rows], np.float32).reshape(-1, manifest["dim"]))
        index.backend = backend
        return index

    # -- search --------------------------------------------------------------------------------
    def recall(self, queries: Sequence[str], top_k: int = 20, lexical: float = 0.0,
               pool: int = 100) -> list[list[tuple[float, Fragment]]]:
        """Top-K fragments per query by cosine; with `lexical` > 0, a hybrid: reciprocal rank
        fusion of the dense top-`pool` and the BM25 top-`pool` over fragment texts (score =
        1/(60 + dense rank) + lexical/(60 + BM25 rank)); the BM25 index is built in memory on
        first use (`bm25s`)."""
        vectors = self.embedder.embed_texts(list(queries))
        scores, ids = self.backend.search(vectors, max(top_k, pool) if lexical else top_k)
        dense = [[(float(sc), int(i)) for sc, i in zip(row_s, row_i) if i >= 0] for row_s, row_i in zip(scores, ids)]
        if not lexical:
            return [[(sc, self.fragments[i]) for sc, i in row[:top_k]] for row in dense]
        out = []
        for query, row in zip(queries, dense):
            fused: dict[int, float] = {}
            for rank, (_, i) in enumerate(row):
                fused[i] = fused.get(i, 0.0) + 1.0 / (60 + rank)
            for rank, i in enumerate(self._bm25_top(query, pool)):
                fused[i] = fused.get(i, 0.0) + lexical / (60 + rank)
            best = sorted(fused.items(), key=lambda item: -item[1])[:top_k]
            out.append([(score, self.fragments[i]) for i, score in best])
        return out

    def _bm25_top(self, query: str, n: int) -> list[int]:
        from ..baselines import tokenize

        if getattr(self, "_bm25", None) is None or self._bm25[1] != len(self.fragments):
            import bm25s

            engine = bm25s.BM25()
            engine.index([tokenize(f.text) or ["\x00"] for f in self.fragments], show_progress=False)
            self._bm25 = (engine, len(self.fragments))
        tokens = tokenize(query)
        if not tokens or not self.fragments:
            return []
        scores = self._bm25[0].get_scores(tokens)
        top = np.argsort(-scores)[:n]
        return [int(i) for i in top if scores[i] > 0]

    def search(self, query: str, top_k: int = 20, reranker=None, processor=None, batch_size: int = 8,
               show_progress: bool = False, lexical: float = 0.0, **retrieve_kwargs) -> SearchResult:
        """Recall the top-K fragments; with `reranker` (an F2RVLM model, or anything with its
        `retrieve_batch`), let it pick utterances and images inside each fragment (local ids ->
        global ids), merge the picks per dialogue and rank dialogues by their best fragment that
        picked something. Without one, every recalled fragment counts as a whole. `lexical`:
        see `recall` (hybrid dense + BM25 recall)."""
        t0 = time.perf_counter()
        recalled = self.recall([query], top_k, lexical=lexical)[0]
        t1 = time.perf_counter()
        hits = [FragmentHit(rank, score, fragment) for rank, (score, fragment) in enumerate(recalled)]
        if reranker is not None and hits:
            results = reranker.retrieve_batch([(h.fragment.dialogue(), query) for h in hits], processor=processor,
                                              batch_size=batch_size, show_progress=show_progress, **retrieve_kwargs)
            for hit, result in zip(hits, results):
                frag = hit.fragment
                hit.utterance_ids = [frag.utterance_ids[i] for i in result.utterance_ids if 0 <= i < len(frag.utterance_ids)]
                hit.image_ids = [frag.image_ids[i] for i in result.image_ids if 0 <= i < len(frag.image_ids)]
                hit.rerank_scores = getattr(result, "scores", None)
        t2 = time.perf_counter()
        return SearchResult(query, hits, merge_hits(hits), reranker is not None,
                            {"recall_s": t1 - t0, "rerank_s": t2 - t1})


def merge_hits(hits: Sequence[FragmentHit]) -> list[DialogueHit]:
    """Per dialogue: the union of its fragments' picks (whole fragments when not reranked); a
    dialogue's score is its best recall score among fragments that picked something; dialogues
    with picks rank first."""
    groups: dict[str, list[FragmentHit]] = {}
    for hit in hits:
        groups.setdefault(hit.dialogue_id, []).append(hit)
    out = []
    for did, group in groups.items():
        utts, imgs, picked = set(), set(), []
        for h in group:
            u = h.fragment.utterance_ids if h.utterance_ids is None else h.utterance_ids
            i = h.fragment.image_ids if h.image_ids is None else h.image_ids
            if u or i:
                picked.append(h)
            utts.update(u)
            imgs.update(i)
        score = max((h.score for h in picked), default=max(h.score for h in group))
        out.append(DialogueHit(did, score, sorted(utts), sorted(imgs), group))
    out.sort(key=lambda d: (not (d.utterance_ids or d.image_ids), -d.score))
    return out


def _write_json(path: str, value) -> None:
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
