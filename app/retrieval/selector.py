"""Which question comes next, and why: the interview's adaptive path through the corpus.

UI-free and deterministic for a given seed. The engine calls :meth:`Selector.first` and then
:meth:`Selector.next` with what happened so far; every pick carries a short reason.

Policy, in order of preference:

* after a weak answer: a declared follow-up aimed at a missed criterion, else the question
  nearest (in embedding space) to the missed key points and the answer, else a step down;
* after a strong answer: a declared follow-up that goes deeper, else a harder neighbour in
  the same area, else the next topic one level up;
* otherwise, or when a thread is deep enough: the least-covered chosen topic;
* a topic that has had its share of the session (length / topics, follow-ups included)
  gets no more follow-ups or step-downs while another topic has room.

Role and topic filters apply to every candidate, declared follow-ups included, and no item
is asked twice in a session.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.corpus.items import InterviewItem, item_from_follow_up, item_from_question
from app.corpus.models import Corpus, Kind, Question, Role
from app.embeddings import get_encoder
from app.retrieval.index import QuestionIndex

STRONG = 3.5
WEAK = 2.5
MAX_THREAD_DEPTH = 2  # follow-ups in a row before moving on
QUERY_CHARS = 4000  # the encoder reads 256 tokens; more text only costs tokenising time
NEIGHBOURS = 8
MIN_NEIGHBOUR_SIMILARITY = 0.25  # a harder question "in the same area"
# A gap probe must be about what was missed: below this, a neighbour shares the topic's
# vocabulary rather than the gap (seen in simulated interviews at 0.40-0.44), and stepping
# down or moving on serves the candidate better.
GAP_PROBE_SIMILARITY = 0.45


CANDIDATES = 20  # retrieved by whole-document similarity, then re-ranked
# Nearest questions fetched without a filter and filtered here. Chroma answers an unfiltered
# query from its HNSW graph (about 3 ms at 10,000 questions); with a metadata filter it took
# 30-45 ms (bench: selection), too slow for a turn.
OVERFETCH = 200
PART_WEIGHT = 0.3  # share of the best single part (question or key point) in the ranking


def semantic_search(
    index: QuestionIndex,
    corpus: Corpus,
    query: str,
    n_results: int,
    where: dict[str, Any] | None = None,
    accept: Callable[[Question], bool] | None = None,
) -> list[tuple[Question, float]]:
    """Questions nearest to ``query``: Chroma retrieves and filters by the whole document,
    then candidates are re-ranked with their best-matching part (the question or one key
    point), which is what a candidate's answer usually echoes. Part vectors come from the
    encoder's cache (warmed with the rubric texts), so re-ranking costs no model call.

    ``accept`` is ``where`` as a Python test. With it, the nearest :data:`OVERFETCH`
    questions are fetched unfiltered and tested here; Chroma filters only when that leaves
    fewer than ``n_results`` of a collection larger than the fetch."""
    encoder = get_encoder()
    vector = encoder.encode_one(query[:QUERY_CHARS])
    wanted = max(n_results, CANDIDATES)
    hits: list[tuple[str, float]] | None = None
    if accept is not None:
        nearest = index.query(vector, OVERFETCH)
        kept = [
            (qid, similarity)
            for qid, similarity in nearest
            if qid in corpus.questions and accept(corpus.questions[qid])
        ]
        if len(kept) >= n_results or len(nearest) < OVERFETCH:
            hits = kept[:wanted]
    if hits is None:
        hits = index.query(vector, wanted, where)
    ranked = []
    for question_id, similarity in hits:
        question = corpus.questions.get(question_id)
        if question is None:
            continue
        parts = encoder.encode([question.question, *question.key_points])
        best_part = float((parts @ vector).max())
        ranked.append((question, (1 - PART_WEIGHT) * similarity + PART_WEIGHT * best_part))
    ranked.sort(key=lambda pair: -pair[1])
    return ranked[:n_results]


class SelectionError(ValueError):
    """The plan cannot be served (unknown role or topic, or nothing to ask)."""


class InterviewPlan(BaseModel):
    """What the candidate chose at setup."""

    model_config = ConfigDict(frozen=True)

    role: Role
    topics: list[str] = Field(min_length=1)
    difficulty: int = Field(default=3, ge=1, le=5)
    length: int = Field(default=5, ge=1, le=50)
    seed: int = 7


@dataclass(frozen=True)
class AskedTurn:
    """What the selector needs to know about one asked item and its answer."""

    item: InterviewItem
    score: float | None  # None: skipped, or graded later (mock mode)
    answer: str = ""
    missed_criteria: Sequence[str] = ()
    missed_key_points: Sequence[str] = ()


@dataclass(frozen=True)
class Selection:
    item: InterviewItem
    reason: str
    follow_up: bool = False


@dataclass
class _State:
    plan: InterviewPlan
    history: Sequence[AskedTurn]
    asked: set[str] = field(default_factory=set)
    per_topic: Counter[str] = field(default_factory=Counter)

    @property
    def last(self) -> AskedTurn:
        return self.history[-1]

    @property
    def quota(self) -> int:
        """Items per topic (follow-ups included) that keep the session spread evenly."""
        return math.ceil(self.plan.length / len(self.plan.topics))

    def has_room(self, topic: str) -> bool:
        return self.per_topic[topic] < self.quota

    def thread_depth(self) -> int:
        depth = 0
        for turn in reversed(self.history):
            if not turn.item.is_follow_up:
                break
            depth += 1
        return depth

    def target_difficulty(self) -> int:
        level = self.plan.difficulty
        for turn in self.history:
            if turn.score is None:
                continue
            if turn.score >= STRONG:
                level += 1
            elif turn.score < WEAK:
                level -= 1
            level = min(5, max(1, level))
        return level


class Selector:
    def __init__(self, corpus: Corpus, index: QuestionIndex | None) -> None:
        self.corpus = corpus
        self.index = index
        self._by_role_topic: dict[tuple[Role, str], list[Question]] = {}
        for question in corpus.questions.values():
            if question.kind == Kind.CODING:  # asked in the code editor, not in the chat
                continue
            for role in question.roles:
                self._by_role_topic.setdefault((role, question.topic), []).append(question)

    # -- plan validation ---------------------------------------------------------------
    def check_plan(self, plan: InterviewPlan) -> InterviewPlan:
        """The plan with its topics checked against the corpus and the role."""
        unknown = [t for t in plan.topics if t not in self.corpus.topics]
        if unknown:
            raise SelectionError(
                f"unknown topic(s) {', '.join(map(repr, unknown))}; "
                f"choose from: {', '.join(self.corpus.topics)}"
            )
        served = [t for t in plan.topics if self._pool(plan.role, [t])]
        if not served:
            raise SelectionError(
                f"no questions for role {plan.role.value!r} in {', '.join(plan.topics)}"
            )
        return plan.model_copy(update={"topics": served})

    @staticmethod
    def parse_role(value: str) -> Role:
        try:
            return Role(value)
        except ValueError:
            raise SelectionError(
                f"unknown role {value!r}; choose from: {', '.join(r.value for r in Role)}"
            ) from None

    # -- public API -----------------------------------------------------------------------
    def first(self, plan: InterviewPlan) -> Selection:
        plan = self.check_plan(plan)
        state = _State(plan, [])
        selection = self._next_topic(state, plan.difficulty, "Opening question")
        if selection is None:  # pragma: no cover - check_plan guarantees a pool
            raise SelectionError("nothing to ask for this plan")
        return selection

    def next(self, plan: InterviewPlan, history: Sequence[AskedTurn]) -> Selection | None:
        """The next item, or None when every allowed question has been asked."""
        if not history:
            return self.first(plan)
        plan = self.check_plan(plan)
        state = _State(plan, history)
        for turn in history:
            state.asked.add(turn.item.id)
            state.per_topic[turn.item.topic] += 1
        last = state.last
        # Follow-ups continue a thread only while its topic has room: the session stays
        # spread over the chosen topics however the answers go.
        depth_left = state.thread_depth() < MAX_THREAD_DEPTH and state.has_room(last.item.topic)
        target = state.target_difficulty()
        if last.score is None:
            return self._next_topic(state, target, "Moving on to a new topic")
        if last.score < WEAK:
            return (
                (depth_left and self._declared(state, targeted=True))
                or (depth_left and self._probe_gap(state))
                or (state.has_room(last.item.topic) and self._step_down(state))
                or self._next_topic(state, target, "Moving on after a weak answer")
            )
        if last.score >= STRONG:
            return (
                (depth_left and self._declared(state, targeted=False, harder=True))
                or (depth_left and self._harder_neighbour(state))
                or self._next_topic(state, target, "Next topic, one level up after a strong answer")
            )
        return (
            depth_left and last.missed_criteria and self._declared(state, targeted=True)
        ) or self._next_topic(state, target, "Next topic")

    # -- candidates ----------------------------------------------------------------------
    def _pool(self, role: Role, topics: Sequence[str]) -> list[Question]:
        return [q for topic in topics for q in self._by_role_topic.get((role, topic), [])]

    def _allowed(self, state: _State, question: Question) -> bool:
        return (
            question.id not in state.asked
            and question.kind != Kind.CODING
            and question.topic in state.plan.topics
            and state.plan.role in question.roles
        )

    def _rng(self, state: _State, salt: str) -> random.Random:
        return random.Random(f"{state.plan.seed}:{len(state.history)}:{salt}")

    def _declared(self, state: _State, *, targeted: bool, harder: bool = False) -> Selection | None:
        """The corpus's own follow-ups of the question just asked."""
        last = state.last
        # A corpus question (asked directly or as a follow-up) offers its own follow-ups;
        # after an inline follow-up, its parent's remaining follow-ups are offered.
        root = self.corpus.questions.get(last.item.id) or self.corpus.questions.get(
            last.item.parent_id or ""
        )
        if root is None:
            return None
        missed = set(last.missed_criteria)
        for index, follow_up in enumerate(root.follow_ups):
            if targeted and not (missed & set(follow_up.targets)):
                continue
            item = item_from_follow_up(self.corpus, root, index)
            if item.id in state.asked:
                continue
            if follow_up.ref is not None:
                ref = self.corpus.questions[follow_up.ref]
                if not self._allowed(state, ref):
                    continue
                if harder and ref.difficulty < root.difficulty:
                    continue
            elif harder:
                continue  # inline follow-ups probe gaps; they do not go deeper
            if targeted:
                names = ", ".join(
                    root.rubric.criterion(c).name for c in follow_up.targets if c in missed
                )
                reason = f"Follow-up on a gap ({names}): {follow_up.probes}"
            else:
                reason = f"Going deeper after a strong answer: {follow_up.probes}"
            return Selection(item, reason, follow_up=True)
        return None

    def _neighbours(
        self, state: _State, query: str, *, at_most: int | None = None, above: int | None = None
    ) -> list[tuple[Question, float]]:
        """Allowed questions near ``query``, within a difficulty bound."""
        if self.index is None or not query.strip():
            return []
        conditions: list[dict[str, Any]] = [
            {"roles": {"$contains": state.plan.role.value}},
            {"topic": {"$in": list(state.plan.topics)}},
        ]
        if state.asked:
            conditions.append({"qid": {"$nin": sorted(state.asked)}})
        if at_most is not None:
            conditions.append({"difficulty": {"$lte": at_most}})
        if above is not None:
            conditions.append({"difficulty": {"$gt": above}})

        def accept(question: Question) -> bool:
            return (
                self._allowed(state, question)
                and (at_most is None or question.difficulty <= at_most)
                and (above is None or question.difficulty > above)
            )

        hits = semantic_search(
            self.index, self.corpus, query, NEIGHBOURS, {"$and": conditions}, accept
        )
        # Re-check in Python: a stale index must never leak a role or topic.
        return [(q, score) for q, score in hits if accept(q)]

    def _probe_gap(self, state: _State) -> Selection | None:
        last = state.last
        if not last.missed_key_points and not last.answer.strip():
            return None
        query = "\n".join([*last.missed_key_points, last.answer])
        hits = self._neighbours(state, query, at_most=max(last.item.difficulty, 1))
        same_topic = [(q, s) for q, s in hits if q.topic == last.item.topic] or hits
        for question, similarity in same_topic:
            if similarity >= GAP_PROBE_SIMILARITY:
                return Selection(
                    item_from_question(question).model_copy(update={"parent_id": last.item.id}),
                    f"Probing the gap: closest question to the missed points "
                    f"(similarity {similarity:.2f})",
                    follow_up=True,
                )
        return None

    def _harder_neighbour(self, state: _State) -> Selection | None:
        last = state.last
        query = f"{last.item.question}\n{last.answer}"
        hits = self._neighbours(state, query, above=last.item.difficulty)
        for question, similarity in hits:
            if question.topic == last.item.topic and similarity >= MIN_NEIGHBOUR_SIMILARITY:
                return Selection(
                    item_from_question(question).model_copy(update={"parent_id": last.item.id}),
                    f"Going harder in the same area (difficulty {question.difficulty})",
                    follow_up=True,
                )
        return None

    def _step_down(self, state: _State) -> Selection | None:
        last = state.last
        candidates = [
            q
            for q in self._pool(state.plan.role, [last.item.topic])
            if self._allowed(state, q) and q.difficulty < last.item.difficulty
        ]
        if not candidates:
            return None
        best = max(q.difficulty for q in candidates)
        choice = self._rng(state, "down").choice(
            sorted((q for q in candidates if q.difficulty == best), key=lambda q: q.id)
        )
        return Selection(
            item_from_question(choice),
            f"Stepping down to difficulty {choice.difficulty} in {choice.topic} "
            "after a weak answer",
        )

    def _next_topic(self, state: _State, difficulty: int, why: str) -> Selection | None:
        """A fresh question from the least-covered chosen topic, near the target difficulty."""
        plan = state.plan
        rng = self._rng(state, "topic")
        order = list(plan.topics)
        rng.shuffle(order)
        order.sort(key=lambda t: (not state.has_room(t), state.per_topic[t]))
        last_topic = state.last.item.topic if state.history else None
        if len(order) > 1 and last_topic in order and order[0] == last_topic:
            order.append(order.pop(0))  # vary topics when there is a choice
        for topic in order:
            candidates = [q for q in self._pool(plan.role, [topic]) if self._allowed(state, q)]
            if not candidates:
                continue
            nearest = min(abs(q.difficulty - difficulty) for q in candidates)
            ties = sorted(
                (q for q in candidates if abs(q.difficulty - difficulty) == nearest),
                key=lambda q: q.id,
            )
            choice = rng.choice(ties)
            title = self.corpus.topics[topic].title
            return Selection(
                item_from_question(choice),
                f"{why}: {title}, difficulty {choice.difficulty}",
            )
        return self._leftover_follow_up(state, order)

    def _leftover_follow_up(self, state: _State, topics: Sequence[str]) -> Selection | None:
        """When every question of the chosen topics was asked, the inline follow-ups of those
        questions remain: long sessions continue with them, least-covered topic first."""
        for topic in topics:
            for turn in state.history:
                parent = self.corpus.questions.get(turn.item.id)
                if parent is None or parent.topic != topic:
                    continue
                for index, follow_up in enumerate(parent.follow_ups):
                    if follow_up.question is None:
                        continue
                    item = item_from_follow_up(self.corpus, parent, index)
                    if item.id not in state.asked:
                        return Selection(
                            item,
                            f"All questions on {self.corpus.topics[topic].title} were asked; "
                            "a follow-up on an earlier one",
                            follow_up=True,
                        )
        return None
