"""Which question comes next, and why: the interview's adaptive path through the corpus.

UI-free and deterministic for a given seed. The engine calls :meth:`Selector.first` and then
:meth:`Selector.next` with what happened so far; every pick is a :class:`Selection` carrying a
structured :class:`Decision`, from which its display reason (and the interviewer's wording)
is made.

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
from enum import StrEnum
from typing import Any

from app.bands import Band, band
from app.corpus.items import InterviewItem, item_from_follow_up, item_from_question
from app.corpus.models import Corpus, Kind, Question, Role
from app.embeddings import get_encoder
from app.errors import SelectionError
from app.retrieval.index import QuestionIndex
from app.retrieval.plan import InterviewSetup

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


@dataclass(frozen=True)
class AskedTurn:
    """What the selector needs to know about one asked item and its answer."""

    item: InterviewItem
    score: float | None  # None: skipped, or graded later (mock mode)
    answer: str = ""
    missed_criteria: Sequence[str] = ()
    missed_key_points: Sequence[str] = ()


class Decision(StrEnum):
    """Why a question was chosen."""

    OPENING = "opening"  # the first question of the session
    NEXT_TOPIC = "next_topic"  # a fresh question, from the least-covered topic
    AFTER_SKIP = "after_skip"  # a fresh question after a skipped one
    FOLLOW_UP_GAP = "follow_up_gap"  # a declared follow-up on a missed criterion
    FOLLOW_UP_DEEPER = "follow_up_deeper"  # a declared follow-up after a strong answer
    PROBE_GAP = "probe_gap"  # the question nearest to the missed key points
    HARDER = "harder"  # a harder neighbour in the same topic
    STEP_DOWN = "step_down"  # an easier question in the same topic after a weak answer
    LEFTOVER_FOLLOW_UP = "leftover_follow_up"  # every question asked: an inline follow-up


FOLLOW_UPS = frozenset(
    {
        Decision.FOLLOW_UP_GAP,
        Decision.FOLLOW_UP_DEEPER,
        Decision.PROBE_GAP,
        Decision.HARDER,
        Decision.LEFTOVER_FOLLOW_UP,
    }
)
_NEXT_TOPIC_AFTER: dict[Band | None, str] = {
    Band.WEAK: "Moving on after a weak answer",
    Band.STRONG: "Next topic, one level up after a strong answer",
}


@dataclass(frozen=True)
class Selection:
    """The chosen item and why; :attr:`reason` is made from the decision, never parsed."""

    item: InterviewItem
    decision: Decision
    after: Band | None = None  # the band of the answer it follows; None: first, or a skip
    topic_title: str = ""
    gap: str = ""  # the missed criteria a declared follow-up targets
    probes: str = ""  # what a declared follow-up probes
    similarity: float | None = None  # of a gap probe to the missed points

    @property
    def follow_up(self) -> bool:
        return self.decision in FOLLOW_UPS

    @property
    def reason(self) -> str:
        """The short explanation shown with the question."""
        where = f"{self.topic_title}, difficulty {self.item.difficulty}"
        match self.decision:
            case Decision.OPENING:
                return f"Opening question: {where}"
            case Decision.AFTER_SKIP:
                return f"Moving on to a new topic: {where}"
            case Decision.NEXT_TOPIC:
                return f"{_NEXT_TOPIC_AFTER.get(self.after, 'Next topic')}: {where}"
            case Decision.FOLLOW_UP_GAP:
                return f"Follow-up on a gap ({self.gap}): {self.probes}"
            case Decision.FOLLOW_UP_DEEPER:
                return f"Going deeper after a strong answer: {self.probes}"
            case Decision.PROBE_GAP:
                return (
                    "Probing the gap: closest question to the missed points "
                    f"(similarity {self.similarity or 0.0:.2f})"
                )
            case Decision.HARDER:
                return f"Going harder in the same area (difficulty {self.item.difficulty})"
            case Decision.STEP_DOWN:
                return (
                    f"Stepping down to difficulty {self.item.difficulty} in {self.item.topic} "
                    "after a weak answer"
                )
            case Decision.LEFTOVER_FOLLOW_UP:
                return (
                    f"All questions on {self.topic_title} were asked; a follow-up on an earlier one"
                )


@dataclass
class _State:
    plan: InterviewSetup
    history: Sequence[AskedTurn]
    asked: set[str] = field(default_factory=set)
    per_topic: Counter[str] = field(default_factory=Counter)

    @property
    def last(self) -> AskedTurn:
        return self.history[-1]

    @property
    def after(self) -> Band | None:
        """The band of the last answer; None before the first, or after a skip."""
        if not self.history or self.last.score is None:
            return None
        return band(self.last.score)

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
            if band(turn.score) is Band.STRONG:
                level += 1
            elif band(turn.score) is Band.WEAK:
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
    def check_plan(self, plan: InterviewSetup) -> InterviewSetup:
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
    def first(self, plan: InterviewSetup) -> Selection:
        plan = self.check_plan(plan)
        state = _State(plan, [])
        selection = self._next_topic(state, plan.difficulty, Decision.OPENING)
        if selection is None:  # pragma: no cover - check_plan guarantees a pool
            raise SelectionError("nothing to ask for this plan")
        return selection

    def next(self, plan: InterviewSetup, history: Sequence[AskedTurn]) -> Selection | None:
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
        if state.after is None:
            return self._next_topic(state, target, Decision.AFTER_SKIP)
        if state.after is Band.WEAK:
            return (
                (depth_left and self._declared(state, targeted=True))
                or (depth_left and self._probe_gap(state))
                or (state.has_room(last.item.topic) and self._step_down(state))
                or self._next_topic(state, target, Decision.NEXT_TOPIC)
            )
        if state.after is Band.STRONG:
            return (
                (depth_left and self._declared(state, targeted=False, harder=True))
                or (depth_left and self._harder_neighbour(state))
                or self._next_topic(state, target, Decision.NEXT_TOPIC)
            )
        return (
            depth_left and last.missed_criteria and self._declared(state, targeted=True)
        ) or self._next_topic(state, target, Decision.NEXT_TOPIC)

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
        return random.Random(f"{state.plan.rng_seed}:{len(state.history)}:{salt}")

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
            names = (
                ", ".join(root.rubric.criterion(c).name for c in follow_up.targets if c in missed)
                if targeted
                else ""
            )
            return Selection(
                item,
                Decision.FOLLOW_UP_GAP if targeted else Decision.FOLLOW_UP_DEEPER,
                after=state.after,
                gap=names,
                probes=follow_up.probes,
            )
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
                    Decision.PROBE_GAP,
                    after=state.after,
                    similarity=similarity,
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
                    Decision.HARDER,
                    after=state.after,
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
        return Selection(item_from_question(choice), Decision.STEP_DOWN, after=state.after)

    def _next_topic(self, state: _State, difficulty: int, decision: Decision) -> Selection | None:
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
            return Selection(
                item_from_question(rng.choice(ties)),
                decision,
                after=state.after,
                topic_title=self.corpus.topics[topic].title,
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
                            Decision.LEFTOVER_FOLLOW_UP,
                            after=state.after,
                            topic_title=self.corpus.topics[topic].title,
                        )
        return None
