"""The offline grader: rubric coverage from sentence embeddings and the answer's own words.

For every rubric key point it finds the answer sentence (or pair of sentences) that states it
best, combining embedding similarity with word overlap weighted by rarity, and discounting

* sentences whose polarity disagrees with the key point ("is not thread-safe" vs "is"),
* sentences that are lists of terms rather than explanations (keyword stuffing),
* sentences that address the grader (removed before grading, see :mod:`injection`).

Criterion scores follow from key-point coverage; misconceptions are matched against the
question's list and penalised by the documented mapping. Because coverage takes the best
sentence per key point, repeating or padding an answer cannot raise its score.

Grading is split in two so the calibration script can refit cheaply: :func:`analyse` does the
expensive, parameter-free work (embeddings, overlaps, polarity) and :func:`score` turns an
analysis into criterion scores with :class:`OfflineParams`, which are fit on the training
split by ``evals/fit_offline_grader.py`` and saved in ``offline_params.json``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from app.corpus.items import InterviewItem
from app.corpus.models import Corpus
from app.embeddings import MiniLMEncoder, get_encoder
from app.grading.base import Grader, GraderContext, ProposedCriterion, assemble
from app.grading.injection import scrub_injection
from app.grading.models import DetectedMisconception, Evaluation, GraderCapabilities, GraderIdentity
from app.prompts import Prompt, load_prompt
from app.text import (
    NEGATIONS,
    STOPWORDS,
    content_words,
    split_sentences,
    strip_code_blocks,
    tokens,
)

PARAMS_FILE = Path(__file__).with_name("offline_params.json")
MAX_SENTENCES = 80
MAX_SENTENCE_CHARS = 220  # unpunctuated speech is cut into pieces of about this size
MAX_WINDOW_CHARS = 300
CODE_LINES = 6  # code blocks are graded in overlapping windows of this many lines
_CLAUSE = re.compile(r"[,;:]\s+|\s+(?:but|while|whereas|although|though|however|so|because)\s+")
CODE_FLUENCY = 0.8  # fenced code is evidence too, though it has few stop words

FloatArray = npt.NDArray[np.float64]

# What the criterion model sees, per criterion, all in [0, 1]: mean over its key points of the
# best semantic match and of the best word overlap, the best and worst key-point coverage,
# how relevant the whole answer is to the question, how much of it is explanatory prose, and
# how much of the reference answer it covers in meaning and in words (these two are robust to
# answers that use other words than the rubric, such as paraphrases and speech transcripts).
FEATURES = (
    "semantic",
    "lexical",
    "best_point",
    "worst_point",
    "relevance",
    "fluency",
    "reference_semantic",
    "reference_lexical",
)


class OfflineParams(BaseModel):
    """The calibrated constants of the offline grader (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    version: str = "untrained"
    semantic_weight: float = Field(default=0.6, ge=0, le=1)
    semantic_low: float = 0.30
    semantic_high: float = 0.75
    lexical_high: float = Field(default=0.8, gt=0.1, le=1.0)  # word overlap that counts as full
    # criterion score = 5 * sigmoid(criterion_bias + features . criterion_weights)
    criterion_weights: list[float] = [3.0, 3.0, 1.0, 0.5, 1.0, 0.5, 0.5, 0.5]
    criterion_bias: float = -4.0
    list_floor: float = Field(default=0.35, ge=0, le=1)
    negation_factor: float = Field(default=0.25, ge=0, le=1)
    misconception_threshold: float = 0.55  # similarity of a sentence to the claim
    misconception_margin: float = 0.03  # ... above its similarity to the correction/key points
    misconception_lexical: float = 0.45  # share of the claim's (rare) words in the sentence
    missed_threshold: float = 0.45
    evidence_threshold: float = 0.5
    idf: dict[str, float] = {}
    default_idf: float = 3.0
    fit: dict[str, object] = {}  # how and on what these were fit (documented, not used)


@lru_cache(maxsize=4)
def load_params(path: Path = PARAMS_FILE) -> OfflineParams:
    if path.is_file():
        return OfflineParams.model_validate_json(path.read_text(encoding="utf-8"))
    return OfflineParams()


def _ramp(values: FloatArray, low: float, high: float) -> FloatArray:
    span = max(high - low, 1e-6)
    ramped: FloatArray = np.clip((values - low) / span, 0.0, 1.0)
    return ramped


def _fluency(text: str) -> float:
    """1.0 for explanatory prose, near 0 for a bare list of terms."""
    words = tokens(text)
    if not words:
        return 0.0
    glue = sum(1 for w in words if w in STOPWORDS or w in NEGATIONS)
    ratio = glue / len(words)
    length_factor = min(1.0, len(words) / 6)
    return float(min(1.0, max(0.0, (ratio - 0.08) / 0.22)) * length_factor)


def _polarity(text: str) -> bool:
    """True when the text is negated (an odd number of negation cues)."""
    return sum(1 for w in tokens(text) if w in NEGATIONS) % 2 == 1


@dataclass
class _Terms:
    words: list[str]
    polarity: bool


@lru_cache(maxsize=20_000)
def _terms(text: str) -> _Terms:
    return _Terms(sorted(set(content_words(text))), _polarity(text))


def _clauses(text: str) -> list[str]:
    parts = [p for p in _CLAUSE.split(text) if p and p.strip()]
    return parts or [text]


@dataclass
class AnswerAnalysis:
    """The parameter-free measurements of one answer against one item."""

    answer: str
    units: list[str]
    unit_fluency: FloatArray
    kp_sem: FloatArray  # key points x units: cosine similarity
    kp_words: list[list[str]]
    unit_words: list[set[str]]
    kp_negated: FloatArray  # key points x units: 1.0 when the matched clause's polarity differs
    claim_sem: FloatArray  # misconceptions x units
    correction_sem: FloatArray
    claim_words: list[list[str]]
    claim_negated: FloatArray
    reference_sem: FloatArray  # reference-answer sentences x units
    reference_words: list[list[str]]
    relevance: float
    flags: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.units


def _negation_mismatch(statement: str, unit: str) -> float:
    """1.0 when the best-matching pair of clauses (one of the statement, one of the unit) has
    opposite polarity: "X is not thread-safe" against "X is thread-safe, so no locks are
    needed" compares the first clauses, not the stray "no" of the second."""
    best, best_overlap = (statement, unit), -1
    for part in _clauses(statement):
        wanted = set(_terms(part).words)
        if not wanted:
            continue
        for clause in _clauses(unit):
            overlap = len(wanted & set(_terms(clause).words))
            if overlap > best_overlap:
                best, best_overlap = (part, clause), overlap
    return 1.0 if _terms(best[0]).polarity != _terms(best[1]).polarity else 0.0


@dataclass
class _Pieces:
    sentences: list[str]
    code: list[str]
    pairs: list[tuple[int, int]]  # indices of adjacent sentences graded together
    removed: list[str]

    @property
    def units(self) -> list[str]:
        joined = [f"{self.sentences[a]} {self.sentences[b]}" for a, b in self.pairs]
        return [*self.sentences, *self.code, *joined]


def _pieces(answer: str) -> _Pieces:
    """Gradable pieces of the answer: sentences, code blocks and adjacent-sentence pairs."""
    scrubbed = scrub_injection(answer)
    prose, code_blocks = strip_code_blocks(scrubbed.text)
    sentences: list[str] = []
    seen: set[str] = set()
    for sentence in split_sentences(prose, max_chars=MAX_SENTENCE_CHARS):
        key = " ".join(sentence.lower().split())
        if key in seen or not any(ch.isalnum() for ch in sentence):
            continue
        seen.add(key)
        sentences.append(sentence)
        if len(sentences) >= MAX_SENTENCES:
            break
    pairs = [
        (i, i + 1)
        for i, (a, b) in enumerate(itertools.pairwise(sentences))
        if len(a) + len(b) < MAX_WINDOW_CHARS
    ]
    code: list[str] = []
    for block in code_blocks:
        lines = [line for line in block.strip("`").splitlines() if line.strip()]
        step = max(1, CODE_LINES // 2)
        for start in range(0, max(1, len(lines) - step), step):
            chunk = "\n".join(lines[start : start + CODE_LINES]).strip()
            if chunk:
                code.append(chunk)
    return _Pieces(sentences, code[:24], pairs, scrubbed.removed)


def _with_pair_vectors(
    vectors: npt.NDArray[np.float32], pieces: _Pieces
) -> npt.NDArray[np.float32]:
    """Append a vector per sentence pair: the length-weighted mean of its two sentences.

    Mean pooling over the concatenation is close to this mean of the two poolings, and it
    costs no second pass through the model (which would double grading time)."""
    if not pieces.pairs:
        return vectors
    lengths = np.array([max(1, len(s.split())) for s in pieces.sentences], dtype=np.float32)
    rows = []
    for a, b in pieces.pairs:
        mixed = lengths[a] * vectors[a] + lengths[b] * vectors[b]
        rows.append(mixed / max(float(np.linalg.norm(mixed)), 1e-12))
    combined: npt.NDArray[np.float32] = np.vstack([vectors, np.asarray(rows, dtype=np.float32)])
    return combined


def _unit_fluency(units: list[str], pieces: _Pieces) -> FloatArray:
    """Fluency per unit; a sentence pair is only as fluent as its weaker sentence, so a
    keyword list appended to a real sentence is still treated as a list."""
    own = [_fluency(s) for s in pieces.sentences] + [CODE_FLUENCY] * len(pieces.code)
    pairs = [min(own[a], own[b]) for a, b in pieces.pairs]
    return np.asarray(own + pairs, dtype=np.float64)


def analyse(
    item: InterviewItem, answer: str, encoder: MiniLMEncoder | None = None
) -> AnswerAnalysis:
    """Embed and compare; everything here is independent of :class:`OfflineParams`."""
    encoder = encoder or get_encoder()
    pieces = _pieces(answer)
    units, removed, sentences = pieces.units, pieces.removed, pieces.sentences
    flags = []
    if removed:
        flags.append("injection_attempt")
    key_points = [p for c in item.rubric.criteria for p in c.key_points]
    claims = [m.claim for m in item.misconceptions]
    corrections = [m.correction for m in item.misconceptions]
    kp_words = [_terms(p).words for p in key_points]
    claim_words = [_terms(c).words for c in claims]
    if not units:
        empty = np.zeros((len(key_points), 0))
        no_claims = np.zeros((len(claims), 0))
        return AnswerAnalysis(
            answer=answer,
            units=[],
            unit_fluency=np.zeros(0),
            kp_sem=empty,
            kp_words=kp_words,
            unit_words=[],
            kp_negated=empty,
            claim_sem=no_claims,
            correction_sem=no_claims,
            claim_words=claim_words,
            claim_negated=no_claims,
            reference_sem=np.zeros((0, 0)),
            reference_words=[],
            relevance=0.0,
            flags=[*flags, "empty"],
            removed=removed,
        )
    encoded = [*sentences, *pieces.code]
    reference = reference_sentences(item)
    vectors = encoder.encode(
        [*encoded, *key_points, *claims, *corrections, *reference, item.question]
    )
    n_encoded, n_kp, n_claims = len(encoded), len(key_points), len(claims)
    unit_vectors = _with_pair_vectors(vectors[:n_encoded], pieces)
    kp_vectors = vectors[n_encoded : n_encoded + n_kp]
    claim_vectors = vectors[n_encoded + n_kp : n_encoded + n_kp + n_claims]
    correction_vectors = vectors[n_encoded + n_kp + n_claims : n_encoded + n_kp + 2 * n_claims]
    reference_vectors = vectors[n_encoded + n_kp + 2 * n_claims : -1]
    question_vector = vectors[-1]
    n_units = len(units)
    kp_sem = (kp_vectors @ unit_vectors.T).astype(np.float64)
    claim_sem = (claim_vectors @ unit_vectors.T).astype(np.float64)
    correction_sem = (correction_vectors @ unit_vectors.T).astype(np.float64)
    kp_negated = np.array(
        [[_negation_mismatch(p, u) for u in units] for p in key_points], dtype=np.float64
    ).reshape(n_kp, n_units)
    claim_negated = np.array(
        [[_negation_mismatch(c, u) for u in units] for c in claims], dtype=np.float64
    ).reshape(n_claims, n_units)
    relevance = float(np.max(unit_vectors[: max(1, len(sentences))] @ question_vector))
    return AnswerAnalysis(
        answer=answer,
        units=units,
        unit_fluency=_unit_fluency(units, pieces),
        kp_sem=kp_sem,
        kp_words=kp_words,
        unit_words=[set(_terms(u).words) for u in units],
        kp_negated=kp_negated,
        claim_sem=claim_sem,
        correction_sem=correction_sem,
        claim_words=claim_words,
        claim_negated=claim_negated,
        reference_sem=(reference_vectors @ unit_vectors.T).astype(np.float64),
        reference_words=[_terms(s).words for s in reference],
        relevance=relevance,
        flags=flags,
        removed=removed,
    )


def _lexical(
    wanted: list[list[str]], unit_words: list[set[str]], params: OfflineParams
) -> FloatArray:
    """Rarity-weighted share of each statement's content words found in each unit."""
    matrix = np.zeros((len(wanted), len(unit_words)))
    for row, words in enumerate(wanted):
        if not words:
            continue
        weights = {w: params.idf.get(w, params.default_idf) for w in words}
        total = sum(weights.values())
        for col, present in enumerate(unit_words):
            matrix[row, col] = sum(v for w, v in weights.items() if w in present) / total
    return matrix


@dataclass
class ScoredAnalysis:
    criteria: list[ProposedCriterion]
    misconceptions: list[DetectedMisconception]
    covered: list[str]
    flags: list[str]


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))
    return result


@dataclass
class CriterionEvidence:
    """Per key point: its coverage (0-1) and the unit that covers it best."""

    features: FloatArray  # criteria x len(FEATURES)
    coverage: FloatArray  # key points
    best_unit: npt.NDArray[np.int64]  # key points


def criterion_evidence(
    item: InterviewItem, analysis: AnswerAnalysis, params: OfflineParams
) -> CriterionEvidence:
    """The features :data:`FEATURES` of every criterion of ``item`` for this answer."""
    n_points = sum(len(c.key_points) for c in item.rubric.criteria)
    if analysis.empty:
        return CriterionEvidence(
            np.zeros((len(item.rubric.criteria), len(FEATURES))),
            np.zeros(n_points),
            np.zeros(n_points, dtype=np.int64),
        )
    quality = params.list_floor + (1 - params.list_floor) * analysis.unit_fluency
    keep = 1 - (1 - params.negation_factor) * analysis.kp_negated
    semantic = _ramp(analysis.kp_sem, params.semantic_low, params.semantic_high) * keep
    lexical = _ramp(
        _lexical(analysis.kp_words, analysis.unit_words, params), 0.0, params.lexical_high
    )
    lexical = lexical * keep * quality[None, :]
    weight = params.semantic_weight
    combined = (weight * semantic + (1 - weight) * lexical) * quality[None, :]
    coverage = combined.max(axis=1)
    best_unit = combined.argmax(axis=1).astype(np.int64)
    semantic_best = semantic.max(axis=1)
    lexical_best = lexical.max(axis=1)
    relevance = float(_ramp(np.array([analysis.relevance]), 0.15, 0.65)[0])
    fluency = float(np.mean(analysis.unit_fluency))
    if len(analysis.reference_words):
        ref_keep = quality[None, :]
        ref_semantic = float(
            np.mean(
                (
                    _ramp(analysis.reference_sem, params.semantic_low, params.semantic_high)
                    * ref_keep
                ).max(axis=1)
            )
        )
        ref_lexical = float(
            np.mean(
                (
                    _ramp(
                        _lexical(analysis.reference_words, analysis.unit_words, params),
                        0.0,
                        params.lexical_high,
                    )
                    * ref_keep
                ).max(axis=1)
            )
        )
    else:
        ref_semantic = ref_lexical = 0.0
    rows = []
    start = 0
    for criterion in item.rubric.criteria:
        span = slice(start, start + len(criterion.key_points))
        start += len(criterion.key_points)
        rows.append(
            [
                float(np.mean(semantic_best[span])),
                float(np.mean(lexical_best[span])),
                float(np.max(coverage[span])),
                float(np.min(coverage[span])),
                relevance,
                fluency,
                ref_semantic,
                ref_lexical,
            ]
        )
    return CriterionEvidence(np.asarray(rows), coverage, best_unit)


def criterion_scores(features: FloatArray, params: OfflineParams) -> FloatArray:
    """5 * sigmoid(bias + features . weights): the calibrated criterion score, 0-5."""
    weights = np.asarray(params.criterion_weights, dtype=np.float64)
    scores: FloatArray = 5.0 * _sigmoid(params.criterion_bias + features @ weights)
    return scores


def score(item: InterviewItem, analysis: AnswerAnalysis, params: OfflineParams) -> ScoredAnalysis:
    """Criterion scores, evidence and misconceptions from an analysis and the parameters."""
    if analysis.empty:
        return ScoredAnalysis(
            criteria=[
                ProposedCriterion(c.id, 0.0, "No answer to assess.", (), list(c.key_points))
                for c in item.rubric.criteria
            ],
            misconceptions=[],
            covered=[],
            flags=analysis.flags,
        )
    evidence_data = criterion_evidence(item, analysis, params)
    values = criterion_scores(evidence_data.features, params)
    coverage, best_unit = evidence_data.coverage, evidence_data.best_unit
    proposed: list[ProposedCriterion] = []
    covered_points: list[str] = []
    row = 0
    for index, criterion in enumerate(item.rubric.criteria):
        evidence, missed = [], []
        for point in criterion.key_points:
            if coverage[row] >= params.evidence_threshold:
                unit = analysis.units[int(best_unit[row])]
                if unit not in evidence:
                    evidence.append(unit)
                covered_points.append(point)
            if coverage[row] < params.missed_threshold:
                missed.append(point)
            row += 1
        total = len(criterion.key_points)
        justification = (
            f"Covers {total - len(missed)} of {total} key point(s) "
            f"(mean coverage {float(evidence_data.features[index, 2]):.2f})."
            if total
            else "No key points."
        )
        proposed.append(
            ProposedCriterion(criterion.id, float(values[index]), justification, evidence, missed)
        )

    misconceptions = _misconceptions(item, analysis, params)
    flags = list(analysis.flags)
    overall_fluency = float(np.mean(analysis.unit_fluency)) if len(analysis.unit_fluency) else 0.0
    if overall_fluency < 0.35:
        flags.append("keyword_list")
    if analysis.relevance < 0.2 and not covered_points:
        flags.append("off_topic")
    return ScoredAnalysis(proposed, misconceptions, covered_points, flags)


def _misconceptions(
    item: InterviewItem, analysis: AnswerAnalysis, params: OfflineParams
) -> list[DetectedMisconception]:
    if not item.misconceptions:
        return []
    claim_lex = _lexical(analysis.claim_words, analysis.unit_words, params)
    # A sentence asserts a claim when it is close to the claim, closer to it than to the
    # correction or to any key point (correct answers discuss the same ideas, rightly),
    # shares enough of the claim's words, and does not negate it.
    best_key_point = analysis.kp_sem.max(axis=0) if len(analysis.kp_sem) else 0.0
    rival = np.maximum(analysis.correction_sem, best_key_point)
    asserts = (
        (analysis.claim_negated == 0)
        & (analysis.claim_sem >= params.misconception_threshold)
        & (analysis.claim_sem - rival >= params.misconception_margin)
        & (claim_lex >= params.misconception_lexical)
    )
    strength = np.where(asserts, analysis.claim_sem, 0.0)
    found = []
    for row, misconception in enumerate(item.misconceptions):
        unit = int(strength[row].argmax())
        if strength[row, unit] > 0:
            found.append(
                DetectedMisconception(
                    claim=misconception.claim,
                    correction=misconception.correction,
                    evidence=analysis.units[unit],
                )
            )
    return found


def _join(points: Sequence[str], limit: int = 2) -> str:
    chosen = [p.rstrip(".") for p in points[:limit]]
    return "; ".join(chosen)


def coaching_text(item: InterviewItem, scored: ScoredAnalysis, prompt: Prompt) -> str:
    """Two to four sentences: what to fix first, then what was good."""
    flags = set(scored.flags)
    key_points = [p for c in item.rubric.criteria for p in c.key_points]
    sentences: list[str] = []
    if "empty" in flags:
        return prompt.render("empty", first_point=key_points[0].rstrip(".") if key_points else "")
    if "injection_attempt" in flags:
        sentences.append(prompt.render("injection"))
    if "off_topic" in flags:
        sentences.append(prompt.render("off_topic", question=item.question))
    for found in scored.misconceptions[:1]:
        quote = (found.evidence or found.claim).strip()
        if len(quote) > 140:
            quote = quote[:137].rstrip() + "..."
        sentences.append(
            prompt.render("misconception", quote=quote, correction=found.correction or "")
        )
    if "keyword_list" in flags:
        term = next((c.name.lower() for c in item.rubric.criteria), "each term")
        sentences.append(prompt.render("keyword_list", term=term))
    missed = [p for c in scored.criteria for p in c.missed_key_points]
    if missed:
        sentences.append(prompt.render("missed", missed=_join(missed)))
    elif "empty" not in flags:
        sentences.append(prompt.render("polish"))
    if scored.covered and len(sentences) < 4:
        sentences.append(prompt.render("strong", covered=_join(scored.covered)))
    return " ".join(sentences[:4])


class OfflineGrader(Grader):
    """Deterministic, local, fast: the default grader when no LLM is configured."""

    name = "offline"
    capabilities = GraderCapabilities(quotes_evidence=True)

    def __init__(
        self,
        prompts_dir: Path,
        params: OfflineParams | None = None,
        encoder: MiniLMEncoder | None = None,
    ) -> None:
        self.params = params or load_params()
        self.encoder = encoder or get_encoder()
        self.prompt = load_prompt(prompts_dir, "coaching")

    @classmethod
    def from_context(cls, context: GraderContext) -> OfflineGrader:
        return cls(context.settings.prompts_dir)

    @property
    def identity(self) -> GraderIdentity:
        return GraderIdentity(
            self.name, f"minilm-rubric@{self.params.version}", self.prompt.version
        )

    def grade_sync(self, item: InterviewItem, answer: str) -> Evaluation:
        started = time.perf_counter()
        analysis = analyse(item, answer, self.encoder)
        scored = score(item, analysis, self.params)
        coaching = coaching_text(item, scored, self.prompt)
        run = self.identity.run(latency_ms=round((time.perf_counter() - started) * 1000, 2))
        return assemble(
            item, answer, scored.criteria, scored.misconceptions, coaching, run, scored.flags
        )

    async def grade(self, item: InterviewItem, answer: str) -> Evaluation:
        # CPU-bound and short (tens of ms): run in a thread so an event loop stays responsive.
        return await asyncio.to_thread(self.grade_sync, item, answer)


def reference_sentences(item: InterviewItem) -> list[str]:
    """The reference answer's sentences (at most 30), compared with the answer as a whole."""
    return [s for s in split_sentences(item.reference_answer) if len(s.split()) >= 3][:30]


def rubric_texts(corpus: Corpus) -> list[str]:
    """Every text :func:`analyse` embeds for corpus items, apart from answers."""
    texts: list[str] = []
    for question in corpus.questions.values():
        texts.append(question.question)
        texts.extend(s for s in split_sentences(question.model_answer) if len(s.split()) >= 3)
        texts.extend(question.key_points)
        for misconception in question.misconceptions:
            texts.extend((misconception.claim, misconception.correction))
        for follow_up in question.follow_ups:
            if follow_up.question is not None:
                texts.append(follow_up.question)
                texts.extend(follow_up.key_points)
    return list(dict.fromkeys(texts))


def inverse_document_frequencies(documents: Sequence[str]) -> dict[str, float]:
    """idf(w) = ln((N + 1) / (df + 1)) + 1 over stemmed content words."""
    frequency: dict[str, int] = {}
    for document in documents:
        for word in set(content_words(document)):
            frequency[word] = frequency.get(word, 0) + 1
    total = len(documents)
    return {
        word: round(math.log((total + 1) / (count + 1)) + 1.0, 4)
        for word, count in sorted(frequency.items())
    }
