"""The Space's archive tab without Gradio: one fragment index of many chat exports, kept on disk
across restarts, grown by uploads, searched with recall + an in-fragment picker, shown per chat.

Parsing, segmenting, embedding and the atomic writes are `f2rvlm.corpus`'s (`archive.read_exports`,
`FragmentIndex.add_dialogues` / `save` / `load`); this module only decides where the index lives,
which uploads are archives of several exports, who picks the turns, and how hits look.

    store = ArchiveStore()                       # $F2RVLM_ARCHIVE_DIR, else the Space's data folder
    store.add_uploads(["whatsapp.zip", "discord.json"])   # or one zip holding several exports
    result = store.search("the flat we viewed", top_k=20, picker="embeddings")
    html = results_html(store.index, result, store.picker_label("embeddings"))
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import os
import shutil
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from f2rvlm.corpus.archive import ArchiveReport, archive_entries, read_exports
from f2rvlm.corpus.backends import default_backend_name
from f2rvlm.corpus.index import MANIFEST, FragmentIndex, SearchResult
from f2rvlm.corpus.report import context_runs, dialogue_turns
from f2rvlm.formats.safety import is_nested_archive

from . import engine

#: The TopK slider: fragments recalled per query (the paper's K = 20).
TOP_K_DEFAULT, TOP_K_MAX = 20, 50
#: Turns shown either side of a run of picked turns.
CONTEXT_TURNS = 2
#: Conversations shown per search, and pictures drawn inline per page (page weight).
MAX_CONVERSATIONS, MAX_IMAGES = 20, 60
IMAGE_PX = 160
#: BM25 weight of the hybrid recall (the CLI's default, docs/corpus.md section 3).
LEXICAL = 1.0
#: Chat-like files: a zip with two or more of these (or any zip inside it) at its top level holds
#: several exports; any other zip is one export (its chat file plus media).
_CHAT_SUFFIXES = (".txt", ".json", ".csv")

PICKERS = {
    "model": "the Space's F2RVLM model",
    "embeddings": "the embedding picker (the turn closest to the query in the index's embedding space)",
    "none": "nothing: whole recalled fragments",
}

CSS = """
.f2-conv { border: 1px solid #dee2e6; border-radius: 8px; padding: 8px; margin: 0 0 12px 0; }
.f2-conv > h4 { margin: 0 0 4px 0; }
.f2-run { border-left: 3px solid #f08c00; margin: 6px 0; padding-left: 4px; }
.f2-turn.ctx { color: #868e96; }
.f2-conv img { max-height: 160px; max-width: 240px; margin: 2px; border-radius: 4px; }
"""


def archive_dir() -> Path:
    """Where the Space keeps its archive index: $F2RVLM_ARCHIVE_DIR, else the Space's persistent
    storage (/data on Hugging Face Spaces, when mounted and writable), else beside the default
    model (`engine.default_model_dir()`'s folder: $F2RVLM_CACHE, the checkout's outputs/, or
    ~/.cache/f2rvlm)."""
    if os.environ.get("F2RVLM_ARCHIVE_DIR"):
        return Path(os.environ["F2RVLM_ARCHIVE_DIR"])
    spaces_data = Path("/data")
    if os.environ.get("SPACE_ID") and spaces_data.is_dir() and os.access(spaces_data, os.W_OK):
        return spaces_data / "f2rvlm" / "archive-index"
    return engine.default_model_dir().parent / "archive-index"


def is_export_archive(path) -> bool:
    """True for a zip of several exports (a zip inside it, or two or more chat files at its top
    level, under one shared folder at most), False for one export's zip or any other file."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as z:
            parts = [n.replace("\\", "/").split("/") for n in z.namelist()
                     if not n.endswith("/") and not n.startswith("__MACOSX")]
    except (OSError, zipfile.BadZipFile):
        return False
    while parts and all(len(p) > 1 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]  # one folder holding everything
    top = [p for p in parts if len(p) == 1]
    if any(is_nested_archive(p[0]) for p in top):
        return True
    chats = {p[0] for p in top if p[0].lower().endswith(_CHAT_SUFFIXES)}
    chats |= {p[0] for p in parts if len(p) == 2 and p[1].lower().endswith(_CHAT_SUFFIXES)
              and not p[0].endswith("_Files")}  # an unzipped export folder; not a Discord media folder
    return len(chats) >= 2


@dataclass
class AddReport:
    """What an upload did: chats read and added, and each skipped one with its reason."""

    read: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    fragments: int = 0

    def markdown(self) -> str:
        lines = [f"**{len(self.read)} chat(s) added** ({self.fragments} fragments), {len(self.skipped)} skipped."]
        lines += [f"- ⚠️ skipped `{name}`: {reason}" for name, reason in self.skipped]
        lines += [f"- note `{name}`: {note}" for name, note in self.notes]
        return "\n".join(lines)


class _ModelPicker:
    """The Space's loaded F2RVLM model as the corpus reranker (its `retrieve_batch`), serialised
    with the single-chat tab's calls. Tagging when the model has a relevance head (one forward
    pass per fragment, no decoding: K fragments stay cheap on a CPU), else its default mode."""

    def __init__(self, retriever: engine.Retriever):
        self.retriever = retriever
        default = retriever.default_method if retriever.default_method in engine.MODEL_MODES else "generate"
        self.mode = "tagging" if "tagging" in retriever.methods else default

    def retrieve_batch(self, pairs, processor=None, batch_size: int = 8, show_progress: bool = False, **kwargs):
        with engine._MODEL_LOCK:
            return _rerank(self.retriever.key, list(pairs), self.mode, batch_size)


@engine._gpu
def _rerank(key: str, pairs: list, mode: str, batch_size: int):
    model, processor = engine._MODELS[key]
    return model.retrieve_batch(pairs, processor=processor, batch_size=batch_size, mode=mode)


class ArchiveStore:
    """The one archive index of this Space process (a folder; every session shares it), held in
    memory once read. Builds, deletes and searches take turns (one lock)."""

    def __init__(self, folder: str | os.PathLike | None = None, embedder: str | None = None,
                 backend: str | None = None, retriever: engine.Retriever | None = None):
        self.folder = Path(folder) if folder is not None else archive_dir()
        self.embedder_spec = embedder or os.environ.get("F2RVLM_ARCHIVE_EMBEDDER") or "minilm"
        self.backend_name = backend or os.environ.get("F2RVLM_ARCHIVE_BACKEND") or default_backend_name()
        self.retriever = retriever
        self._lock = threading.RLock()
        self._index: FragmentIndex | None = None
        self._pickers: dict[str, object] = {}

    # -- the index -----------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.folder / MANIFEST).is_file()

    @property
    def index(self) -> FragmentIndex | None:
        """The saved index (read once, then kept in memory), or None when there is none."""
        with self._lock:
            if self._index is None and self.exists():
                self._index = FragmentIndex.load(str(self.folder))
            return self._index

    def add_uploads(self, paths, progress=None) -> AddReport:
        """Index the chats of `paths` (exports, or zips of several exports), adding to the saved
        index. A chat that cannot be read, or whose name is already indexed, is skipped by name.
        Nothing replaces the saved index until the new chats are all embedded: a new index is
        written with `FragmentIndex.save` (temporary folder renamed in), an existing one gets
        one new shard and then its manifest (`add_dialogues`); on any error the folder keeps the
        previous index."""
        paths = [str(p) for p in (paths or []) if p]
        if not paths:
            raise ValueError("upload one or more chat exports (or one zip of several) first")
        report = ArchiveReport()
        with self._lock, contextlib.ExitStack() as stack:
            sources: list[tuple[str, str | None]] = []  # (export, folder its images sit in)
            for path in paths:
                if not is_export_archive(path):
                    sources.append((path, None))
                    continue
                try:
                    root, entries = stack.enter_context(archive_entries(path))
                except (ValueError, OSError) as err:
                    report.skipped.append((Path(path).name, " ".join(str(err).split())[:300]))
                    continue
                sources += [(entry, root) for entry in entries]
            index = self.index or FragmentIndex(self._new_embedder(), backend=self.backend_name)
            known = set(index.dialogue_ids())

            def dialogues():
                for k, (path, images_dir) in enumerate(sources):
                    if progress is not None:
                        progress(k / len(sources), desc=f"indexing {Path(path).name} ({k + 1}/{len(sources)})")
                    for dialogue in read_exports([path], report, images_dir):
                        if dialogue.dialogue_id in known:
                            report.read.remove(dialogue.dialogue_id)
                            report.skipped.append((dialogue.dialogue_id, "a chat of this name is already in the index"))
                            continue
                        known.add(dialogue.dialogue_id)
                        yield dialogue

            try:
                added = index.add_dialogues(dialogues(), persist=index.path is not None)
                if index.path is None and len(index):
                    if progress is not None:
                        progress(1.0, desc="saving the index")
                    index.save(str(self.folder), overwrite=True)
            except BaseException:
                self._index = None  # in-memory rows may be ahead of the folder: read it again next time
                raise
            self._index = index if index.path is not None else None
        notes = [(name, note) for name, note in report.notes if name in report.read]
        return AddReport(list(report.read), list(report.skipped), notes, added)

    def _new_embedder(self):
        from f2rvlm.embeddings import build_embedder

        return build_embedder(self.embedder_spec)

    def delete(self) -> bool:
        """Remove the saved index (renamed aside first, so a reader never sees half a folder);
        True when there was one."""
        with self._lock:
            self._index = None
            self._pickers.pop("embeddings", None)
            if not self.folder.exists():
                return False
            aside = self.folder.with_name(f".{self.folder.name}.deleting-{os.getpid()}")
            shutil.rmtree(aside, ignore_errors=True)
            os.rename(self.folder, aside)
            shutil.rmtree(aside, ignore_errors=True)
            return True

    def status_markdown(self) -> str:
        index = self.index
        if index is None:
            return "No archive index yet: upload chat exports and press **Add to index**."
        names = index.dialogue_ids()
        shown = ", ".join(f"`{n}`" for n in names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
        return (f"**Index:** {len(names)} conversation(s), {len(index)} fragments "
                f"({index.backend.name} engine, {self.embedder_name(index)} embeddings): {shown}")

    @staticmethod
    def embedder_name(index: FragmentIndex) -> str:
        from f2rvlm.corpus.index import embedder_spec

        return embedder_spec(index.embedder)

    # -- searching -----------------------------------------------------------------------------
    def picker_choices(self) -> list[tuple[str, str]]:
        keys = (["model"] if self.retriever is not None else []) + ["embeddings", "none"]
        return [(self.picker_label(k), k) for k in keys]

    def default_picker(self) -> str:
        """The model when it is a full-size checkpoint; on the small CPU demo model the embedding
        picker (the demo model is not a reranker: docs/corpus.md, section 4)."""
        if self.retriever is None:
            return "embeddings"
        if self.retriever.is_endpoint:  # a served model was configured on purpose: it picks
            return "model"
        size = sum(p.numel() for p in self.retriever.model.parameters())
        return "model" if size >= 50e6 else "embeddings"

    def picker_label(self, key: str) -> str:
        if key == "model" and self.retriever is not None and self.retriever.is_endpoint:
            return f"F2RVLM served model {self.retriever.client.model} at {self.retriever.base_url} (generate mode)"
        if key == "model" and self.retriever is not None:
            name = os.path.basename(os.path.normpath(self.retriever.model_path))
            return f"F2RVLM model {name} ({_ModelPicker(self.retriever).mode} mode)"
        return PICKERS[key]

    def answered_label(self, key: str) -> str:
        """`picker_label`, and for a served model also what became of the answer grammar (after a
        search: the results say who picked the turns)."""
        if key == "model" and self.retriever is not None and self.retriever.is_endpoint:
            return f"F2RVLM {self.retriever.answered_by('generate')}"
        return self.picker_label(key)

    def _picker(self, key: str, index: FragmentIndex):
        if key == "none":
            return None
        if key == "model":
            if self.retriever is None:
                raise ValueError("this Space has no model loaded; pick the embedding picker")
            # a served model: `EndpointRetriever.retrieve_batch` (EndpointReranker, failures as EndpointError)
            return self.retriever if self.retriever.is_endpoint else _ModelPicker(self.retriever)
        if key != "embeddings":
            raise ValueError(f"unknown picker {key!r}; choose one of {', '.join(PICKERS)}")
        from f2rvlm.corpus.rerank import CachedEmbedder, EmbeddingPicker

        picker = self._pickers.get("embeddings")
        if picker is None or picker.embedder.embedder is not index.embedder:
            picker = self._pickers["embeddings"] = EmbeddingPicker(CachedEmbedder(index.embedder))
        return picker

    def search(self, query: str, top_k: int = TOP_K_DEFAULT, picker: str = "embeddings") -> SearchResult:
        query = (query or "").strip()
        if not query:
            raise ValueError("type what you are looking for")
        if len(query) > engine.MAX_QUERY_CHARS:
            raise ValueError(f"the query has {len(query)} characters; the limit is {engine.MAX_QUERY_CHARS}")
        top_k = int(top_k)
        if not 1 <= top_k <= TOP_K_MAX:
            raise ValueError(f"top-K must be between 1 and {TOP_K_MAX}")
        with self._lock:  # a build appends to the same index at its end: searches wait for it
            index = self.index
            if index is None or not len(index):
                raise ValueError("the archive index is empty: upload chat exports and press Add to index first")
            return index.search(query, top_k=top_k, reranker=self._picker(picker, index), lexical=LEXICAL)


# ----------------------------------------------------------------------------------------------
# HTML: per conversation, the picked turns in runs with context, pictures inline
# ----------------------------------------------------------------------------------------------
def _image_html(image: dict, budget: list[int]) -> str:
    caption = html.escape(image.get("caption") or image.get("path") or "image")
    data = image.get("bytes")
    if not data or budget[0] <= 0:
        return f'<span class="f2-meta">[image: {caption}]</span>'
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as picture:
            picture = picture.convert("RGB")
            picture.thumbnail((IMAGE_PX * 2, IMAGE_PX * 2))
            out = io.BytesIO()
            picture.save(out, "JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return f'<span class="f2-meta">[image: {caption} (unreadable)]</span>'
    budget[0] -= 1
    return f'<img alt="{caption}" title="{caption}" src="data:image/jpeg;base64,{base64.b64encode(out.getvalue()).decode()}">'


def results_html(index: FragmentIndex, result: SearchResult, picker_label: str, context: int = CONTEXT_TURNS) -> str:
    """Hits grouped by conversation, best first: each run of picked turns (class `hit`) with
    `context` turns around it (class `ctx`); `data-dialogue-id` / `data-turn-id` for tests."""
    conversations = result.dialogues[:MAX_CONVERSATIONS]
    parts = [(f"<div class='f2-archive'><p class='f2-meta'>{len(result.fragments)} fragment(s) recalled from "
              f"{len(result.dialogues)} conversation(s); turns picked by {html.escape(picker_label)}; "
              f"recall {result.timings.get('recall_s', 0) * 1000:.0f} ms, "
              f"picking {result.timings.get('rerank_s', 0) * 1000:.0f} ms</p>")]
    budget = [MAX_IMAGES]
    for rank, hit in enumerate(conversations, 1):
        turns = dialogue_turns(index, hit.dialogue_id)
        name = html.escape(hit.dialogue_id)
        parts.append(f"<section class='f2-conv' data-dialogue-id=\"{name}\"><h4>{rank}. {name} "
                     f"<span class='f2-meta'>score {hit.score:.3f} · {len(hit.utterance_ids)} turn(s) · "
                     f"{len(hit.image_ids)} picture(s) · {len(hit.fragments)} fragment(s)</span></h4>")
        if not hit.utterance_ids:
            parts.append("<p class='f2-meta'>nothing picked in this conversation's recalled fragments</p>")
        for run in context_runs(hit.utterance_ids, turns, context):
            parts.append("<div class='f2-run'>")
            for uid, is_hit in run:
                speaker, text, images = turns[uid]
                kind = "hit" if is_hit else "ctx"
                parts.append(f"<div class='f2-turn {kind}' data-turn-id='{uid}'><span class='f2-id'>#{uid}</span>"
                             f"<b>{html.escape(speaker)}</b>: {html.escape(text)}"
                             + "".join(_image_html(im, budget) for im in images) + "</div>")
            parts.append("</div>")
        parts.append("</section>")
    if len(result.dialogues) > len(conversations):
        parts.append(f"<p class='f2-meta'>… {len(result.dialogues) - len(conversations)} more conversation(s)</p>")
    parts.append("</div>")
    return "\n".join(parts)
