"""The interview as a state machine; every state change goes through here.

    setup -> question -> answer -> evaluation -> (follow-up | next question) ... -> summary

Each step is written to the store before it is reported back, so the UI (Streamlit, the
terminal) only renders :class:`SessionView` snapshots and a crash at any point loses nothing
that was submitted: :meth:`InterviewEngine.view` finishes any step left half-done (an answer
saved but not yet graded, a graded answer with no next question yet).

No Streamlit here, and no UI state: the engine is driven by session ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from app import aio
from app.bands import PASS
from app.corpus.items import InterviewItem, resolve_item
from app.corpus.models import Corpus, Role
from app.errors import EngineError, SelectionError, StoreError
from app.grading.base import Grader
from app.grading.models import Evaluation
from app.interview.interviewer import HINT_PENALTY, Interviewer, transition_kind
from app.interview.report import Report, build_report
from app.retrieval.plan import InterviewSetup, Mode
from app.retrieval.selector import AskedTurn, Selection, Selector
from app.store import SessionRecord, Store, TurnRecord


class TurnView(BaseModel):
    """One exchange as the candidate sees it (evaluation hidden in mock mode until the end)."""

    model_config = ConfigDict(frozen=True)

    position: int
    item_id: str
    topic: str
    difficulty: int
    interviewer_text: str
    reason: str
    follow_up: bool
    status: str
    answer_text: str | None
    transcript: str | None
    audio_seconds: float | None
    evaluation: Evaluation | None
    score: float | None
    hints: list[str]
    reference_answer: str | None  # shown with the feedback, once graded


class SessionView(BaseModel):
    model_config = ConfigDict(frozen=True)

    session: SessionRecord
    turns: list[TurnView]
    finished: bool
    show_feedback: bool
    closing_text: str | None = None

    @property
    def current(self) -> TurnView | None:
        """The question awaiting an answer, if any."""
        for turn in self.turns:
            if turn.status == "asked":
                return turn
        return None

    @property
    def answered(self) -> int:
        return sum(1 for t in self.turns if t.status in ("graded", "skipped"))


def turn_score(evaluation: Evaluation, hints: int) -> float:
    """The score a turn counts for: the evaluation minus what the hints cost."""
    return round(max(0.0, evaluation.overall - HINT_PENALTY * hints), 2)


class InterviewEngine:
    def __init__(
        self,
        corpus: Corpus,
        selector: Selector,
        grader: Grader,
        interviewer: Interviewer,
        store: Store,
        default_seed: int = 7,
    ) -> None:
        self.corpus = corpus
        self.selector = selector
        self.grader = grader
        self.interviewer = interviewer
        self.store = store
        self.default_seed = default_seed

    # -- reading ------------------------------------------------------------------------
    def _item(self, turn: TurnRecord) -> InterviewItem:
        item = resolve_item(self.corpus, turn.item_id)
        if turn.parent_id and item.parent_id != turn.parent_id:
            item = item.model_copy(update={"parent_id": turn.parent_id})
        return item

    def _setup(self, session: SessionRecord) -> InterviewSetup:
        return InterviewSetup(
            role=Role(session.role),
            topics=session.topics,
            difficulty=session.difficulty,
            length=session.length,
            mode=Mode(session.mode),
            seed=session.seed,
        )

    def _history(self, turns: list[TurnRecord]) -> list[AskedTurn]:
        history = []
        for turn in turns:
            if turn.status not in ("graded", "skipped"):
                continue
            evaluation = turn.evaluation
            history.append(
                AskedTurn(
                    item=self._item(turn),
                    score=turn.score if turn.status == "graded" else None,
                    answer=turn.answer_text or "",
                    missed_criteria=[c.criterion_id for c in evaluation.criteria if c.score < PASS]
                    if evaluation
                    else [],
                    missed_key_points=evaluation.missed_key_points if evaluation else [],
                )
            )
        return history

    def view(self, session_id: str) -> SessionView:
        """The session as it stands, after completing any step a crash left half-done."""
        session = self.store.get_session(session_id)
        turns = self.store.turns(session_id)
        for turn in turns:
            if turn.status == "answered":  # saved, then the process died before grading
                self._grade(session, turn)
        turns = self.store.turns(session_id)
        if session.status == "active" and not any(t.status == "asked" for t in turns):
            self._advance(session, turns)
            session = self.store.get_session(session_id)
            turns = self.store.turns(session_id)
        return self._snapshot(session, turns)

    def _snapshot(self, session: SessionRecord, turns: list[TurnRecord]) -> SessionView:
        finished = session.status == "finished"
        show = finished or session.mode == Mode.PRACTICE
        hints: dict[int, list[str]] = {}
        for event in self.store.events(session.id):
            if event.kind == "hint" and event.turn_position is not None:
                hints.setdefault(event.turn_position, []).append(event.text)
        views = []
        for turn in turns:
            graded = turn.status == "graded"
            views.append(
                TurnView(
                    position=turn.position,
                    item_id=turn.item_id,
                    topic=turn.topic,
                    difficulty=turn.difficulty,
                    interviewer_text=turn.question_text,
                    reason=turn.reason,
                    follow_up=turn.follow_up,
                    status=turn.status,
                    answer_text=turn.answer_text,
                    transcript=turn.transcript,
                    audio_seconds=turn.audio_seconds,
                    evaluation=turn.evaluation if show else None,
                    score=turn.score if show else None,
                    hints=hints.get(turn.position, []),
                    reference_answer=self._item(turn).reference_answer if show and graded else None,
                )
            )
        closing = self.interviewer.line("closing", session.seed, len(turns)) if finished else None
        return SessionView(
            session=session,
            turns=views,
            finished=finished,
            show_feedback=show,
            closing_text=closing,
        )

    # -- actions ------------------------------------------------------------------------
    @property
    def streams_feedback(self) -> bool:
        """Whether :meth:`stream_feedback` says more than the evaluation's coaching."""
        return self.grader.capabilities.streams_feedback

    def start(self, setup: InterviewSetup) -> SessionView:
        """Create a session and ask the first question. The session records the grader's
        name and model."""
        seed = setup.seed if setup.seed is not None else self.default_seed
        plan = self.selector.check_plan(setup.model_copy(update={"seed": seed}))
        identity = self.grader.identity
        session = self.store.create_session(
            role=plan.role.value,
            topics=plan.topics,
            difficulty=plan.difficulty,
            length=plan.length,
            mode=plan.mode.value,
            seed=seed,
            grader=identity.name,
            model=identity.model,
        )
        self._ask(session, self.selector.first(plan), [])
        return self.view(session.id)

    def _current(
        self, session_id: str, position: int | None = None
    ) -> tuple[SessionRecord, TurnRecord]:
        """The session and its waiting question, which must be the one at ``position`` when
        given: the same session may be open in another window that has moved on."""
        session = self.store.get_session(session_id)
        if session.status == "finished":
            raise EngineError("this interview is finished")
        for turn in self.store.turns(session_id):
            if turn.status == "asked":
                if position is not None and position != turn.position:
                    raise EngineError(
                        f"question {position + 1} was already answered in another window; "
                        f"reload to see question {turn.position + 1}"
                        if position < turn.position
                        else f"question {position + 1} has not been asked yet"
                    )
                return session, turn
        raise EngineError("no question is waiting for an answer")

    def _refused(self, session_id: str, position: int, exc: StoreError) -> EngineError:
        """Why the store refused a write: another window acted on the question first."""
        try:
            self._current(session_id, position)
        except EngineError as clear:
            return clear
        return EngineError(str(exc))

    def submit_answer(
        self,
        session_id: str,
        answer: str,
        *,
        position: int,
        transcript: str | None = None,
        audio_seconds: float | None = None,
    ) -> SessionView:
        """Save the answer to the question at ``position``, grade it, then ask the next
        question (or finish). An answer to a question already answered is refused."""
        session, turn = self._current(session_id, position)
        try:
            self.store.record_answer(
                session_id,
                turn.position,
                answer,
                transcript=transcript,
                audio_seconds=audio_seconds,
            )
        except StoreError as exc:
            raise self._refused(session_id, position, exc) from exc
        self._grade(session, self.store.get_turn(session_id, turn.position))
        return self.view(session_id)

    def skip(self, session_id: str, *, position: int) -> SessionView:
        _session, turn = self._current(session_id, position)
        try:
            self.store.record_skip(session_id, turn.position)
        except StoreError as exc:
            raise self._refused(session_id, position, exc) from exc
        return self.view(session_id)

    def hint(self, session_id: str, *, position: int) -> str:
        """A hint for the question at ``position``; each one costs :data:`HINT_PENALTY`."""
        session, turn = self._current(session_id, position)
        text = self.interviewer.hint(self._item(turn), turn.hints, session.seed, turn.position)
        if text is None:
            return self.interviewer.line("no_more_hints", session.seed, turn.position)
        try:
            self.store.record_hint(session_id, turn.position, text)
        except StoreError as exc:
            raise self._refused(session_id, position, exc) from exc
        return text

    def repeat(self, session_id: str) -> str:
        session, turn = self._current(session_id)
        self.store.record_event(session_id, turn.position, "repeat", "")
        intro = self.interviewer.line("repeat", session.seed, turn.position)
        return f"{intro}\n\n{self._item(turn).question}"

    def finish(self, session_id: str) -> SessionView:
        """End early: the unanswered question is dropped from the report."""
        self.store.finish_session(session_id)
        return self.view(session_id)

    def current_item(self, session_id: str) -> InterviewItem:
        """The item behind the question awaiting an answer (e.g. to prompt a transcriber)."""
        _session, turn = self._current(session_id)
        return self._item(turn)

    def record_feedback(self, session_id: str, position: int, text: str) -> None:
        """Keep streamed conversational feedback with the session."""
        self.store.record_event(session_id, position, "feedback", text)

    def sessions(self, limit: int = 200) -> list[SessionRecord]:
        return self.store.list_sessions(limit)

    def delete(self, session_id: str) -> bool:
        return self.store.delete_session(session_id)

    def score_trend(self) -> list[dict[str, Any]]:
        """Per graded turn: session id, session start time, topic, score (oldest first)."""
        return self.store.score_history()

    def report(self, session_id: str) -> Report:
        session = self.store.get_session(session_id)
        return build_report(self.corpus, session, self.store.turns(session_id))

    def stream_feedback(self, session_id: str, position: int) -> Iterator[str]:
        """Conversational feedback for a graded turn, as the grader streams it (by default
        the evaluation's coaching)."""
        turn = self.store.get_turn(session_id, position)
        if turn.evaluation is None:
            return iter(())
        return aio.iterate(self.grader.stream_feedback(self._item(turn), turn.evaluation))

    # -- internals ----------------------------------------------------------------------
    def _grade(self, session: SessionRecord, turn: TurnRecord) -> None:
        evaluation = aio.run(self.grader.grade(self._item(turn), turn.answer_text or ""))
        self.store.record_evaluation(
            session.id, turn.position, evaluation, turn_score(evaluation, turn.hints)
        )

    def _advance(self, session: SessionRecord, turns: list[TurnRecord]) -> None:
        done = [t for t in turns if t.status in ("graded", "skipped")]
        if len(done) >= session.length:
            self.store.finish_session(session.id)
            return
        try:
            selection = self.selector.next(self._setup(session), self._history(turns))
        except SelectionError:
            selection = None
        if selection is None:  # every allowed question has been asked
            self.store.finish_session(session.id)
            return
        self._ask(session, selection, turns)

    def _ask(self, session: SessionRecord, selection: Selection, turns: list[TurnRecord]) -> None:
        previous = turns[-1] if turns else None
        kind = transition_kind(selection)
        item = selection.item
        text = aio.run(
            self.interviewer.phrase(
                selection,
                kind,
                seed=session.seed,
                position=len(turns),
                topic_title=self.corpus.topics[item.topic].title,
                previous_question=self._item(previous).question if previous else "",
                previous_answer=(previous.answer_text or "") if previous else "",
            )
        )
        self.store.add_turn(
            session.id,
            item_id=item.id,
            parent_id=item.parent_id,
            topic=item.topic,
            difficulty=item.difficulty,
            question_text=text,
            reason=selection.reason,
            follow_up=selection.follow_up,
        )


# The view types the UI and the terminal render, all importable from here.
__all__ = [
    "EngineError",
    "Evaluation",
    "InterviewEngine",
    "InterviewSetup",
    "Mode",
    "Report",
    "SessionView",
    "TurnView",
]
