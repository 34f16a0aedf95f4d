"""What the Space does, without any Gradio: pick and load the model, import an upload into a
per-session folder, run queries with the chosen methods, and build the result document.

The app (`space/app.py`) only wires these functions to components, so tests and the load
benchmark can check the same code paths through the UI or directly.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from f2rvlm.core.dialogue import Dialogue
from f2rvlm.formats import ChatImport, ChatImportError, ImportLimits, import_chat
from f2rvlm.formats.redact import redact_dialogue, redact_text
from f2rvlm.formats.safety import MB
from f2rvlm.models.registry_f2rvlm import RETRIEVAL_MODES

from .images import bound_image_sizes, release_memory

#: Upload limits of the Space: lower than the library defaults, since one shared CPU serves all.
SPACE_LIMITS = ImportLimits(
    max_upload_bytes=25 * MB,
    max_members=2_000,
    max_total_uncompressed=200 * MB,
    max_ratio=200.0,
    max_turns=3_000,
    max_image_pixels=40_000_000,
    # per-session disk cap: what one import may extract (photos of a 25 MB export fit; a small zip
    # of highly compressible files cannot fill the disk: the images past the cap are reported)
    max_extract_bytes=60 * MB,
)
#: All session folders together (env F2RVLM_SPACE_DISK_MB): past it, stale folders are swept and
#: a new upload is refused with a message until sessions end.
SESSIONS_DISK_BUDGET = int(os.environ.get("F2RVLM_SPACE_DISK_MB", "3000")) * MB
#: A session folder untouched for this long belongs to a session that is gone (gr.State's TTL).
STALE_SESSION_SECONDS = 2 * 3600
SESSION_PREFIX = "f2rvlm-space-"
MAX_QUERIES = 8
MAX_QUERY_CHARS = 500
#: Per request, the generating modes read at most this many turns (env F2RVLM_MAX_GENERATE_TURNS):
#: a model call holds the model lock, so one long chat must not keep everyone else waiting for
#: minutes. Tagging and the baselines (one forward pass per window, no decoding) have no such cap
#: beyond the upload's `max_turns`.
MAX_GENERATE_TURNS = int(os.environ.get("F2RVLM_MAX_GENERATE_TURNS", "400"))
GENERATING_MODES = ("generate", "guided")

#: Method key -> label shown in the selector. Model modes need the model; "guided" and
#: "tagging" need its relevance head; baselines need `f2rvlm.baselines`.
METHOD_LABELS = {
    "generate": "F2RVLM · generate",
    "guided": "F2RVLM · guided",
    "tagging": "F2RVLM · tagging",
    "bm25": "BM25 (baseline)",
    "embeddings": "Embeddings (baseline)",
}
MODEL_MODES = tuple(RETRIEVAL_MODES)


# ----------------------------------------------------------------------------------------------
# Model choice and loading
# ----------------------------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_model_dir() -> Path:
    """Where the default tiny CPU model lives (built there when absent): $F2RVLM_CACHE/demo-model,
    else the checkout's outputs/demo-model (the folder `python -m f2rvlm.cli.demo` uses), else
    ~/.cache/f2rvlm/demo-model."""
    if os.environ.get("F2RVLM_CACHE"):
        return Path(os.environ["F2RVLM_CACHE"]) / "demo-model"
    if (REPO_ROOT / "modeling" / "f2rvlm").is_dir():
        return REPO_ROOT / "outputs" / "demo-model"
    return Path(os.path.expanduser("~")) / ".cache" / "f2rvlm" / "demo-model"


def is_trained_model(folder: Path) -> bool:
    """A trained export (recipes write `f2rvlm_recipe.json` beside the weights), not the random
    stand-in built on first use."""
    return (folder / "config.json").exists() and (folder / "f2rvlm_recipe.json").exists()


#: A deploy folder (`make space-bundle`) carries the demo model beside app.py.
BUNDLE_ROOT = Path(__file__).resolve().parents[1]


def committed_model_dir() -> Path:
    """The small trained demo model committed with the repository (`make demo-model` rebuilds it),
    or its copy in a deploy folder built by `make space-bundle` (models/tiny-demo beside app.py)."""
    bundled = BUNDLE_ROOT / "models" / "tiny-demo"
    if (bundled / "config.json").exists():
        return bundled
    return REPO_ROOT / "models" / "tiny-demo"


def resolve_default_model(model: str | None = None) -> str:
    """The model the Space serves: `model` if given, else $F2RVLM_MODEL, else $F2RVLM_GPU_MODEL when a
    GPU is present (a converted released checkpoint, say), else a freshly trained
    `default_model_dir()` (what `make train-tiny` exports), else the committed `models/tiny-demo`,
    else a randomly initialised tiny model built on first use into `default_model_dir()` (with a
    warning: run `make train-tiny` or `make demo-model`). A Hub repo id or a local folder both work."""
    chosen = model or os.environ.get("F2RVLM_MODEL")
    if not chosen and os.environ.get("F2RVLM_GPU_MODEL") and pick_device() == "cuda":
        chosen = os.environ["F2RVLM_GPU_MODEL"]  # the stronger model (e.g. a converted 7B), only with a GPU
    if chosen:
        return chosen
    folder = default_model_dir()
    if is_trained_model(folder):
        return str(folder)
    committed = committed_model_dir()
    if (committed / "config.json").exists() and (committed / "model.safetensors").exists():
        return str(committed)
    if not (folder / "config.json").exists():
        import warnings

        from f2rvlm.models.tiny import save_tiny

        warnings.warn(f"no trained F2RVLM model found (neither {folder} from `make train-tiny` nor {committed}): "
                      "serving a randomly initialised tiny model; run `make demo-model` or `make train-tiny`",
                      stacklevel=2)
        # built beside, then renamed: two processes starting together never see half a folder
        partial = Path(tempfile.mkdtemp(prefix=".building-", dir=_ensure(folder.parent)))
        save_tiny(str(partial / "model"), family="qwen2_vl", size="test", seed=0, relevance_head=True)
        try:
            os.replace(partial / "model", folder)
        except OSError:
            pass  # another process won the race; its folder is equivalent
        shutil.rmtree(partial, ignore_errors=True)
    return str(folder)


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pick_device() -> str:
    """cuda on a GPU / ZeroGPU Space (ZeroGPU lends the GPU inside `spaces.GPU` calls), else cpu."""
    if os.environ.get("SPACES_ZERO_GPU"):
        return "cuda"
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def _gpu_decorator():
    try:
        import spaces  # a ZeroGPU Space

        return spaces.GPU
    except ImportError:
        return lambda fn: fn


_gpu = _gpu_decorator()
#: Loaded models by key; the GPU-decorated function looks the model up here instead of receiving
#: it as an argument (ZeroGPU pickles arguments into its worker).
_MODELS: dict[str, tuple] = {}


class FairLock:
    """A first-come, first-served lock: a search of many queries releases it between model calls,
    and a waiting user's call goes next instead of the same search re-taking it (a plain
    `threading.Lock` lets the releasing thread win again)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self):
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()
        return self

    def __exit__(self, *exc):
        with self._cond:
            self._serving += 1
            self._cond.notify_all()
        return False


_MODEL_LOCK = FairLock()


@_gpu
def _run_model(key: str, dialogue: Dialogue, query: str, mode: str, show_progress: bool) -> dict:
    model, processor = _MODELS[key]
    return model.retrieve(dialogue, query, processor=processor, mode=mode, show_progress=show_progress).to_dict()


class WorkLimitError(ValueError):
    """A request would hold the model longer than the Space allows; the message says what to do."""


def check_work_limit(method: str, dialogue: Dialogue, available=()) -> None:
    """Refuse a generating mode on a chat longer than `MAX_GENERATE_TURNS` with a plain message that
    names the limit and the alternative."""
    if method in GENERATING_MODES and len(dialogue) > MAX_GENERATE_TURNS:
        hint = (" Use the tagging method (it reads the whole chat quickly) or upload a shorter part of the chat."
                if "tagging" in available else " Upload a shorter part of the chat, or try the BM25 or embeddings method.")
        raise WorkLimitError(f"This chat has {len(dialogue):,} turns; on this Space the {method} method reads "
                             f"at most {MAX_GENERATE_TURNS:,} turns per request.{hint}")


class Retriever:
    """The F2RVLM model plus whatever baselines are installed, behind one `run` call."""

    is_endpoint = False

    def __init__(self, model_path: str | None = None, device: str | None = None):
        from f2rvlm.models.hub import load_model

        self.model_path = resolve_default_model(model_path)
        self.device = device or pick_device()
        model, processor = load_model(self.model_path, device=self.device)
        self.key = f"{self.model_path}@{self.device}#{id(model)}"
        _MODELS[self.key] = (model, processor)
        self.model, self.processor = model, processor
        # the head modes read the relevance head, or the text scorer when the checkpoint has one
        self.has_head = (getattr(model, "relevance_head", None) is not None
                         or getattr(model, "text_scorer", None) is not None)
        self._baselines: dict[str, object] = {}
        self._baseline_errors: dict[str, str] = {}

    # -- which methods exist -------------------------------------------------------------------
    @property
    def methods(self) -> list[str]:
        keys = ["generate"] + (["guided", "tagging"] if self.has_head else [])
        return keys + [k for k in ("bm25", "embeddings") if _baseline_available(k)]

    @property
    def default_method(self) -> str:
        """The model's best mode on validation (`config.default_retrieval_mode`, set by the recipes)."""
        mode = getattr(self.model.config, "default_retrieval_mode", None) or "generate"
        return mode if mode in self.methods else "generate"

    @property
    def description(self) -> str:
        """Which model answers, in words: its name, what it is, what it was trained on."""
        config = self.model.config
        name = os.path.basename(os.path.normpath(self.model_path)) or self.model_path
        size = sum(p.numel() for n, p in self.model.named_parameters() if not n.startswith("text_scorer."))
        parts = [(f"{name}: F2RVLM on {type(self.model).__name__.replace('F2RVLM', '').replace('ForConditionalGeneration', '')}"
                  f" ({size / 1e6:.1f}M parameters), default mode {self.default_method}, on {self.device}")]
        if size < 50e6:
            parts.append("a small demo VLM trained on a CPU on synthetic MLDR dialogues (not the paper's 7B model)")
        if getattr(self.model, "text_scorer", None) is not None:
            parts.append("with a MiniLM text scorer fine-tuned on self-supervised queries from real chat turns "
                         "(tagging answers from it; generation picks among its shortlist)")
        if getattr(config, "_name_or_path", "") and "tiny-demo" not in self.model_path and size >= 50e6:
            parts.append("a full-size checkpoint")
        return "; ".join(parts) + "."

    def choices(self) -> list[tuple[str, str]]:
        return [(METHOD_LABELS[k], k) for k in self.methods]

    def normalise_methods(self, methods) -> list[str]:
        """Method keys from keys or labels (none: the model's declared mode); unknown names raise
        `ValueError` naming the choices."""
        if not methods:
            return [self.default_method]
        if isinstance(methods, str):
            methods = [methods]
        by_label = {v.lower(): k for k, v in METHOD_LABELS.items()}
        keys = []
        for name in methods:
            key = by_label.get(str(name).strip().lower(), str(name).strip().lower())
            if key not in self.methods:
                raise ValueError(f"unknown or unavailable method {name!r}; choose from {', '.join(self.methods)}")
            keys.append(key)
        return list(dict.fromkeys(keys))

    # -- running -------------------------------------------------------------------------------
    def run(self, method: str, dialogue: Dialogue, query: str, show_progress: bool = False) -> dict:
        """One method on one query: ids, spans, raw text and seconds (model calls are serialised:
        tokenizers are not safe to share between threads, and a CPU gains nothing from overlap)."""
        check_work_limit(method, dialogue, self.methods)
        start = time.perf_counter()
        if method in MODEL_MODES:
            out = self._model_answer(method, dialogue, query, show_progress)
        else:
            out = self._run_baseline(method, dialogue, query)
        out["seconds"] = round(time.perf_counter() - start, 3)
        out["method"] = method
        if method in MODEL_MODES:
            out["model"] = self.model_path
            out["answered_by"] = self.answered_by(method)
        return out

    def _model_answer(self, method: str, dialogue: Dialogue, query: str, show_progress: bool) -> dict:
        with _MODEL_LOCK:
            return _run_model(self.key, dialogue, query, method, show_progress)

    def answered_by(self, method: str) -> str:
        """Which model answered, where, in which mode (shown beside each answer)."""
        name = os.path.basename(os.path.normpath(self.model_path)) or self.model_path
        return f"model {name}, in process on {self.device}, {method} mode"

    def _run_baseline(self, method: str, dialogue: Dialogue, query: str) -> dict:
        from f2rvlm.core.protocol import contiguous_spans, render_answer

        baseline = self._baselines.get(method)
        if baseline is None:
            baseline = self._baselines[method] = _make_baseline(method)
        utterance_ids, image_ids = baseline.retrieve(dialogue, query)
        utterance_ids, image_ids = sorted(set(utterance_ids)), sorted(set(image_ids))
        return {"utterance_ids": utterance_ids, "image_ids": image_ids,
                "spans": [list(s) for s in contiguous_spans(utterance_ids)],
                "text": render_answer(utterance_ids, image_ids), "mode": method, "num_windows": 1, "scores": None}


# ----------------------------------------------------------------------------------------------
# A model served behind an OpenAI-compatible endpoint (`f2rvlm serve`, vLLM, docs/serving.md)
# ----------------------------------------------------------------------------------------------
class EndpointError(RuntimeError):
    """The model server failed to answer; the message says which server and what to do."""


def endpoint_settings(base_url: str | None = None, model: str | None = None) -> dict | None:
    """`RetrievalClient` settings of the served model the Space should use, or None (the model runs
    in process): `base_url` / `model` when given, else $F2RVLM_ENDPOINT (the server's OpenAI base
    URL, `http://HOST:PORT/v1`), $F2RVLM_ENDPOINT_MODEL (the served name; default: the first the
    server lists), $F2RVLM_ENDPOINT_API_KEY, $F2RVLM_ENDPOINT_TEMPLATE (the model's prompt template,
    default the released one) and $F2RVLM_ENDPOINT_TIMEOUT (seconds per request, default 120)."""
    from f2rvlm.core.protocol import DEFAULT_TEMPLATE

    base_url = (base_url or os.environ.get("F2RVLM_ENDPOINT") or "").strip()
    if not base_url:
        return None
    return {"base_url": base_url.rstrip("/"), "model": model or os.environ.get("F2RVLM_ENDPOINT_MODEL") or None,
            "api_key": os.environ.get("F2RVLM_ENDPOINT_API_KEY") or "EMPTY",
            "template": os.environ.get("F2RVLM_ENDPOINT_TEMPLATE") or DEFAULT_TEMPLATE,
            "timeout": float(os.environ.get("F2RVLM_ENDPOINT_TIMEOUT") or 120), "retries": 1, "concurrency": 16}


def make_retriever(model_path: str | None = None, device: str | None = None, endpoint: str | None = None,
                   endpoint_model: str | None = None):
    """The Space's model: an explicit `model_path` runs in process; else an endpoint (`endpoint`, or
    $F2RVLM_ENDPOINT) is used through `EndpointRetriever`; else `resolve_default_model`'s choice."""
    settings = None if model_path else endpoint_settings(endpoint, endpoint_model)
    if settings is not None:
        return EndpointRetriever(**settings)
    return Retriever(model_path, device)


class EndpointRetriever(Retriever):
    """`Retriever` whose model is served elsewhere: the single-chat tab's model calls go through
    `f2rvlm.client.RetrievalClient`, the archive tab's picker through `EndpointReranker` (one client
    for both). A served model answers in generate mode only; the baselines still run here. Nothing
    is loaded here, no model lock is taken (the server batches concurrent requests), and a server
    that does not answer becomes an `EndpointError` whose message the UI shows."""

    is_endpoint = True

    def __init__(self, base_url: str, model: str | None = None, **client_kwargs):
        from f2rvlm.corpus.rerank import EndpointReranker

        self.reranker = EndpointReranker(base_url, model=model, **client_kwargs)
        self.client = self.reranker.client
        self.base_url = self.client.base_url
        self.device = "endpoint"
        self.has_head = False
        self.model = self.processor = None
        self.startup_error = self._ask_model_name() if model is None else None
        self.model_path = f"{self.client.model or 'served model'} at {self.base_url}"
        self.key = f"endpoint:{self.base_url}"
        self._baselines: dict[str, object] = {}
        self._baseline_errors: dict[str, str] = {}

    def _ask_model_name(self) -> str | None:
        """Fill in the served model's name from `/v1/models` (a short wait: the Space starts even
        when the server does not answer yet; the name is then asked with the first request)."""
        import json
        import urllib.request

        request = urllib.request.Request(f"{self.base_url}/models",
                                         headers={"Authorization": f"Bearer {self.client.api_key}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                models = json.loads(response.read()).get("data") or []
        except (OSError, ValueError) as err:
            return " ".join(f"{type(err).__name__}: {err}".split())[:200]
        if models:
            self.client.model = models[0]["id"]
        return None

    @property
    def methods(self) -> list[str]:
        return ["generate"] + [k for k in ("bm25", "embeddings") if _baseline_available(k)]

    @property
    def default_method(self) -> str:
        return "generate"

    @property
    def description(self) -> str:
        text = (f"served model {self.client.model or '(the first the server lists)'} at {self.base_url}, "
                f"through its OpenAI-compatible API (generate mode only; {self._grammar_words()})")
        if self.startup_error:
            text += f"; ⚠️ the server did not answer at start-up ({self.startup_error})"
        return text + "."

    def _grammar_words(self) -> str:
        return {"accepted": "grammar enforced by server: yes (sent with each request and accepted)",
                "rejected": "grammar enforced by server: no (the server refused it; the client keeps only the "
                            "chat's own ids)",
                "off": "grammar enforced by server: no (not sent)",
                "unknown": "grammar enforced by server: not known before the first answer"}[self.client.grammar_status]

    def answered_by(self, method: str) -> str:
        return f"served model {self.client.model} at {self.base_url}, {method} mode, {self._grammar_words()}"

    def _model_answer(self, method: str, dialogue: Dialogue, query: str, show_progress: bool) -> dict:
        return self.retrieve_batch([(dialogue, query)], mode=method)[0].to_dict()

    def retrieve_batch(self, pairs, processor=None, batch_size: int = 8, show_progress: bool = False, **kwargs):
        """The reranker shape (`FragmentIndex.search(..., reranker=self)`); failures as `EndpointError`."""
        try:
            return self.reranker.retrieve_batch(list(pairs), show_progress=show_progress, **kwargs)
        except Exception as err:  # noqa: BLE001 - connection, HTTP, timeout: said in words, never a traceback
            _LOG.warning("endpoint %s failed: %s", self.base_url, err)
            detail = " ".join(f"{type(err).__name__}: {err}".split())[:300]
            raise EndpointError(f"The model server at {self.base_url} did not answer ({detail}). Try again in a "
                                "moment; the BM25 and embeddings methods do not need it.") from None


def _baseline_available(key: str) -> bool:
    try:
        from f2rvlm import baselines
    except ImportError:
        return False
    return _baseline_class(baselines, key) is not None


def _baseline_class(module, key: str):
    names = {"bm25": ("BM25Baseline", "BM25Retriever", "BM25"),
             "embeddings": ("EmbeddingBaseline", "EmbeddingRetriever", "EmbeddingsBaseline", "Embedding")}[key]
    for name in names:
        if hasattr(module, name):
            return getattr(module, name)
    return None


def _make_baseline(key: str):
    from f2rvlm import baselines

    return _baseline_class(baselines, key)()


# ----------------------------------------------------------------------------------------------
# Sessions: one upload, imported into a folder owned by one browser session
# ----------------------------------------------------------------------------------------------
@dataclass
class ChatSession:
    """An imported upload; `workdir` holds extracted media and the result downloads and is
    deleted by `close` (the app calls it when the browser session ends)."""

    workdir: str
    upload_name: str
    imported: ChatImport
    dialogue: Dialogue
    redacted_turns: int = 0
    redact: bool = False
    #: ("upload", path) or ("example", index): what to re-import when the redaction box changes
    source: tuple = ()
    thumbnails: dict = field(default_factory=dict)

    def __post_init__(self):
        # the folder also goes when the session object does (a client gone without the State's
        # delete callback, a handler that dropped it): `close` is only the early, explicit path
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.workdir, True)

    def close(self) -> None:
        self._finalizer()

    def __deepcopy__(self, memo):  # one folder, one owner: a copy would delete it when collected
        return self

    def summary(self) -> dict:
        return {
            "file": self.upload_name,
            "format": self.imported.format,
            "num_turns": len(self.dialogue),
            "num_images": self.dialogue.num_images,
            "ignored": [self._text(str(item)) for item in self.imported.ignored],
            "redacted": self.redact,
            "redacted_turns": self.redacted_turns,
        }

    def _text(self, text: str) -> str:
        return redact_text(text) if self.redact else text


_LOG = logging.getLogger(__name__)


def sessions_root() -> str:
    root = os.environ.get("F2RVLM_SPACE_TMP") or tempfile.gettempdir()
    os.makedirs(root, exist_ok=True)
    return root


def _folder_bytes(folder: str) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for filename in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, filename)).st_size
            except OSError:
                pass
    return total


def session_folders(root: str | None = None) -> list[str]:
    """The session folders under the sessions root (ours by name prefix)."""
    root = root or sessions_root()
    try:
        return [os.path.join(root, n) for n in os.listdir(root) if n.startswith(SESSION_PREFIX)]
    except OSError:
        return []


def sessions_disk_usage(root: str | None = None) -> int:
    """Bytes held by all session folders."""
    return sum(_folder_bytes(folder) for folder in session_folders(root))


def sweep_stale_sessions(root: str | None = None, max_age: float = STALE_SESSION_SECONDS) -> int:
    """Remove session folders untouched for `max_age` seconds (left by a killed process or a lost
    session); the number removed."""
    removed, now = 0, time.time()
    for folder in session_folders(root):
        try:
            if now - os.stat(folder).st_mtime > max_age:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        except OSError:
            pass
    return removed


def new_workdir() -> str:
    """A fresh session folder; refused with `ChatImportError` while all sessions together hold more
    than `SESSIONS_DISK_BUDGET` (stale folders are swept first)."""
    root = sessions_root()
    if sessions_disk_usage(root) > SESSIONS_DISK_BUDGET:
        sweep_stale_sessions(root)
        if sessions_disk_usage(root) > SESSIONS_DISK_BUDGET:
            raise ChatImportError("the Space is short of disk space for uploads right now; try again in a few minutes")
    return tempfile.mkdtemp(prefix=SESSION_PREFIX, dir=root)


def import_upload(path, limits: ImportLimits = SPACE_LIMITS, redact: bool = False,
                  workdir: str | None = None) -> ChatSession:
    """Import `path` into a fresh session folder; `ChatImportError` (folder removed) on bad input.

    Anything unexpected while reading a hostile file is turned into a `ChatImportError` too, so
    the app always has a message to show and never a traceback."""
    if path is None:
        raise ChatImportError("no file uploaded: choose a chat export (.zip, .txt, .json or .csv) or an example")
    workdir = workdir or new_workdir()
    name = Path(str(path)).name
    try:
        media = os.path.join(workdir, "media")
        os.makedirs(media, exist_ok=True)
        imported = import_chat(path, limits=limits, extract_to=media)
        bound_image_sizes(imported.dialogue, os.path.join(workdir, "small"))  # bounded memory (images.py)
        dialogue, changed = redact_dialogue(imported.dialogue) if redact else (imported.dialogue, 0)
        return ChatSession(workdir, name, imported, dialogue, changed, redact, source=("upload", str(path)))
    except ChatImportError:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    except Exception as err:  # noqa: BLE001 - never a traceback for the user, never a folder left
        shutil.rmtree(workdir, ignore_errors=True)
        _LOG.exception("unexpected error importing %s", name)
        message = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise ChatImportError(f"{name}: cannot be read ({message})") from None
    except BaseException:  # the client went away (cancelled task), Ctrl-C: the folder still goes
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def samples_dir() -> Path:
    import f2rvlm

    return Path(f2rvlm.__file__).resolve().parent / "assets" / "samples"


def load_samples() -> list[dict]:
    """The sample dialogues shipped with the package (`assets/samples/samples.json`), or []."""
    path = samples_dir() / "samples.json"
    if not path.is_file():
        return []
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def exports_dir() -> Path:
    import f2rvlm

    return Path(f2rvlm.__file__).resolve().parent / "assets" / "exports"


def load_exports() -> list[dict]:
    """The sample chat exports shipped with the package (`assets/exports/exports.json`, written by
    scripts/make_sample_exports.py), or []."""
    path = exports_dir() / "exports.json"
    if not path.is_file():
        return []
    import json

    return json.loads(path.read_text(encoding="utf-8"))


EXPORT_LABELS = {"whatsapp": "WhatsApp export (.zip with photos)", "telegram": "Telegram Desktop export (.zip)",
                 "discord": "Discord export (DiscordChatExporter JSON)", "wechat": "WeChat export (CSV + images, .zip)"}


def sample_choices() -> list[tuple[str, int]]:
    """Dropdown entries: the shipped chat exports first (try the real upload path), then the
    synthetic sample dialogues; values index `load_example`."""
    out = []
    samples, exports = load_samples(), load_exports()
    for k, entry in enumerate(exports):
        label = EXPORT_LABELS.get(entry["format"], entry["format"])
        out.append((f"Sample chat: {label}: {entry['file']}", len(samples) + k))
    for index, sample in enumerate(samples):
        topics = ", ".join(t.replace("_", " ") for t in sample.get("topics", []))
        turns = len(sample["dialogue"]["utterances"])
        out.append((f"Example {index + 1} ({sample.get('language', '?')}, {turns} turns): {topics}", index))
    return out


def load_example(index: int, redact: bool = False) -> ChatSession:
    """A session on sample `index` (a synthetic dialogue, or past them a shipped chat export read
    by the same import path as an upload); its queries are offered in the query box."""
    samples, exports = load_samples(), load_exports()
    index = int(index)
    if not 0 <= index < len(samples) + len(exports):
        raise ChatImportError(f"example {index} does not exist; there are {len(samples) + len(exports)}")
    if index >= len(samples):
        entry = exports[index - len(samples)]
        session = import_upload(str(exports_dir() / entry["file"]), SPACE_LIMITS, redact)
        session.imported.queries[:] = [q["query"] for q in entry.get("queries", []) if q.get("query")]
        session.source = ("example", index)
        return session
    sample = samples[index]
    original = Dialogue.from_dict(sample["dialogue"], base_dir=str(samples_dir()))
    dialogue, changed = redact_dialogue(original) if redact else (original, 0)
    queries = [q["query"] for q in sample.get("queries", []) if q.get("query")]
    imported = ChatImport(original, [], "example", queries)
    return ChatSession(new_workdir(), f"example {index + 1}", imported, dialogue, changed, redact,
                       source=("example", index))


def parse_queries(text: str | None) -> list[str]:
    """Non-empty lines of `text`, checked against the Space's limits."""
    queries = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not queries:
        raise ValueError("type a query (one per line) describing the part of the chat you want")
    if len(queries) > MAX_QUERIES:
        raise ValueError(f"{len(queries)} queries; at most {MAX_QUERIES} at a time")
    for query in queries:
        if len(query) > MAX_QUERY_CHARS:
            raise ValueError(f"a query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    return queries


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------
def turn_record(dialogue: Dialogue, turn_id: int) -> dict:
    utterance = dialogue.utterances[turn_id - dialogue.id_offset]
    return {"id": turn_id, "speaker": utterance.speaker, "text": utterance.text, "timestamp": utterance.timestamp}


def result_record(session: ChatSession, query: str, out: dict) -> dict:
    """The JSON of one (query, method) answer: ids, spans, the retrieved turns and images."""
    dialogue = session.dialogue
    hosts = dialogue.image_hosts
    return {
        "query": query,
        "method": out["method"],
        "utterance_ids": list(out["utterance_ids"]),
        "image_ids": list(out["image_ids"]),
        "spans": [list(span) for span in out["spans"]],
        "turns": [turn_record(dialogue, i) for i in out["utterance_ids"]],
        "images": [{"id": i, "turn": hosts[i]} for i in out["image_ids"] if 0 <= i < len(hosts)],
        "raw_answer": out["text"],
        "num_windows": out.get("num_windows", 1),
        "seconds": out["seconds"],
        **({"answered_by": out["answered_by"]} if out.get("answered_by") else {}),
    }


def error_record(query: str, method: str, message: str) -> dict:
    """A (query, method) that was not run: empty ids and the reason."""
    return {"query": query, "method": method, "utterance_ids": [], "image_ids": [], "spans": [], "turns": [],
            "images": [], "raw_answer": "", "num_windows": 0, "seconds": 0.0, "error": message}


def run_search(retriever: Retriever, session: ChatSession, queries: list[str], methods: list[str],
               progress=None) -> dict:
    """Every query with every method; `progress(fraction, desc)` is called between runs."""
    results = []
    total = len(queries) * len(methods)
    for q, query in enumerate(queries):
        for m, method in enumerate(methods):
            if progress is not None:
                progress((q * len(methods) + m) / total, desc=f"query {q + 1}/{len(queries)} · {METHOD_LABELS[method]}")
            try:
                out = retriever.run(method, session.dialogue, query, show_progress=progress is not None)
            except (WorkLimitError, EndpointError) as err:  # this method failed; the others still answer
                results.append(error_record(query, method, str(err)))
                continue
            results.append(result_record(session, query, out))
    release_memory()  # the run's decoded pictures and activations go back to the system (images.py)
    return {"chat": session.summary(), "model": retriever.model_path, "results": results}
