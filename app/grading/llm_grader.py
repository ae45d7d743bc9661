"""Rubric grading by any language model (a :class:`ChatModel`), with a fallback grader
(the offline one, see :mod:`app.grading.registry`) as the safety net.

The model proposes criterion scores with reasoning, verbatim quotes, missed points and
misconceptions; :func:`app.grading.base.assemble` checks the quotes and computes the overall
score. An invalid reply gets one repair round with the validation error; a second failure, or
a model that cannot be reached after retries, hands the answer to the fallback grader and
the evaluation records why.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from functools import reduce
from operator import add
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ValidationError

from app import limits
from app.bands import UNEVIDENCED_SCORE_CAP
from app.corpus.items import InterviewItem
from app.errors import GradingError, LLMError
from app.grading.base import Grader, GraderContext, ProposedCriterion, assemble
from app.grading.injection import scrub_injection
from app.grading.models import DetectedMisconception, Evaluation, GraderCapabilities, GraderIdentity
from app.limits import at_most, capped
from app.llm import ChatModel, ChatReply, Message, Usage
from app.prompts import Prompt, load_prompt
from app.text import split_sentences

ANSWER_TAG = "candidate_answer"
_TAG = re.compile(rf"<\s*(/?)\s*{ANSWER_TAG}\s*>", re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_PROMPT_CRITERION = re.compile(r"criterion_id: (\S+)")
_FENCED_ANSWER = re.compile(rf"<{ANSWER_TAG}>\n(.*)\n</{ANSWER_TAG}>", re.DOTALL)
MOCK_SCORE = 2.5  # the mock model's criterion score: the middle of the scale


class LLMCriterionReply(BaseModel):
    criterion_id: str
    reasoning: Annotated[str, capped(limits.MAX_JUSTIFICATION_CHARS)]
    evidence: Annotated[list[limits.Quote], at_most(limits.MAX_QUOTES)]
    missed_key_points: Annotated[
        list[Annotated[str, capped(limits.MAX_MISSED_POINT_CHARS)]],
        at_most(limits.MAX_MISSED_POINTS),
    ]
    score: float


class LLMMisconceptionReply(BaseModel):
    claim: Annotated[str, capped(limits.MAX_CLAIM_CHARS)]
    evidence: limits.Quote
    correction: Annotated[str, capped(limits.MAX_CORRECTION_CHARS)]


class LLMGradeReply(BaseModel):
    """What the model must return (also sent as the JSON schema where supported). Every
    text field is cut at its cap in :mod:`app.limits` as it is read."""

    criteria: list[LLMCriterionReply]
    misconceptions: Annotated[list[LLMMisconceptionReply], at_most(limits.MAX_MISCONCEPTIONS)]
    coaching: Annotated[str, capped(limits.MAX_COACHING_CHARS)]
    injection_detected: bool

    @classmethod
    def mock_reply(cls, messages: Sequence[Message]) -> Self:
        """What the mock model answers to a grading request (:mod:`app.llm.mock`): every
        criterion of the prompt at a mid score with the answer's first sentence as its
        evidence, no misconceptions, and coaching that says it is a mock."""
        prompt = str(messages[-1].get("content", "")) if messages else ""
        fenced = _FENCED_ANSWER.search(prompt)
        sentences = split_sentences(fenced.group(1)) if fenced else []
        evidence = sentences[:1]
        return cls(
            criteria=[
                LLMCriterionReply(
                    criterion_id=criterion_id,
                    reasoning="Mock grade: the same mid score for every criterion.",
                    evidence=evidence,
                    missed_key_points=[],
                    score=MOCK_SCORE,
                )
                for criterion_id in dict.fromkeys(_PROMPT_CRITERION.findall(prompt))
            ],
            misconceptions=[],
            coaching="This grade comes from the mock language model, not a real one.",
            injection_detected=False,
        )


class ReplyError(GradingError):
    """The model's reply is not a usable grade."""


def fence_answer(answer: str) -> str:
    """The answer with our delimiter tags neutralised, so it cannot close its own fence."""
    return _TAG.sub(lambda m: f"[{m.group(1)}{ANSWER_TAG}]", answer)


def parse_reply(text: str, item: InterviewItem) -> LLMGradeReply:
    """Validate a reply: JSON (optionally inside prose or a code fence) with every criterion."""
    candidate = text.strip()
    if not candidate.startswith("{"):
        match = _JSON_OBJECT.search(candidate)
        if match is None:
            raise ReplyError("the reply contains no JSON object")
        candidate = match.group(0)
    try:
        reply = LLMGradeReply.model_validate_json(candidate)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ReplyError(f"the JSON does not match the schema ({problems})") from exc
    expected = {c.id for c in item.rubric.criteria}
    got = {c.criterion_id for c in reply.criteria}
    if got != expected:
        missing = sorted(expected - got)
        unknown = sorted(got - expected)
        raise ReplyError(
            f"criteria must be exactly {sorted(expected)}; missing {missing}, unknown {unknown}"
        )
    return reply


def _render_criteria(item: InterviewItem) -> str:
    lines = []
    for criterion in item.rubric.criteria:
        lines.append(
            f"- criterion_id: {criterion.id} (weight {criterion.weight:g}) {criterion.name}: "
            f"{criterion.description}"
        )
        lines.extend(f"    key point: {point}" for point in criterion.key_points)
    return "\n".join(lines)


def _render_misconceptions(item: InterviewItem) -> str:
    if not item.misconceptions:
        return "(none listed)"
    return "\n".join(f"- {m.claim} (correction: {m.correction})" for m in item.misconceptions)


def _is_listed(claim: str, item: InterviewItem) -> DetectedMisconception | None:
    wanted = claim.strip().lower()
    for listed in item.misconceptions:
        if listed.claim.strip().lower() == wanted:
            return DetectedMisconception(claim=listed.claim, correction=listed.correction)
    return None


class LLMGrader(Grader):
    """Grades with a language model; never raises for a bad reply or an unreachable model."""

    name = "llm"
    capabilities = GraderCapabilities(streams_feedback=True, quotes_evidence=True, costs_money=True)

    def __init__(self, chat: ChatModel, prompts_dir: Path, fallback: Grader) -> None:
        self.chat = chat
        self.prompt: Prompt = load_prompt(prompts_dir, "grader")
        self.feedback_prompt: Prompt = load_prompt(prompts_dir, "feedback")
        self.fallback = fallback

    @classmethod
    def from_context(cls, context: GraderContext, fallback: Grader) -> LLMGrader:
        return cls(context.chat_model(), context.settings.prompts_dir, fallback)

    @property
    def identity(self) -> GraderIdentity:
        return GraderIdentity(self.name, self.chat.name, self.prompt.version)

    def messages(self, item: InterviewItem, answer: str) -> list[Message]:
        scrubbed = scrub_injection(answer)
        return [
            {"role": "system", "content": self.prompt.section("system")},
            {
                "role": "user",
                "content": self.prompt.render(
                    "user",
                    item_id=item.id,
                    topic=item.topic,
                    question=item.question,
                    reference_answer=item.reference_answer,
                    criteria=_render_criteria(item),
                    misconceptions=_render_misconceptions(item),
                    scrub_note=self.prompt.section("scrub_note") + "\n" if scrubbed.found else "",
                    answer=fence_answer(scrubbed.text),
                ),
            },
        ]

    async def grade(self, item: InterviewItem, answer: str) -> Evaluation:
        started = time.perf_counter()
        messages = self.messages(item, answer)
        attempts = 0
        replies: list[ChatReply] = []
        try:
            reply = await self.chat.complete(messages, schema=LLMGradeReply)
            replies.append(reply)
            attempts += reply.attempts
            try:
                parsed = parse_reply(reply.text, item)
            except ReplyError as error:
                repair = self.prompt.render(
                    "repair",
                    error=str(error),
                    criterion_ids=", ".join(c.id for c in item.rubric.criteria),
                )
                retry_messages = [
                    *messages,
                    {"role": "assistant", "content": reply.text[:4000]},
                    {"role": "user", "content": repair},
                ]
                reply = await self.chat.complete(retry_messages, schema=LLMGradeReply)
                replies.append(reply)
                attempts += reply.attempts
                parsed = parse_reply(reply.text, item)
        except (LLMError, ReplyError) as error:
            attempts += getattr(error, "attempts", 0)
            return await self._fallback(item, answer, f"{type(error).__name__}: {error}", attempts)
        return self._evaluation(item, answer, parsed, replies, attempts, started)

    async def _fallback(
        self, item: InterviewItem, answer: str, reason: str, attempts: int
    ) -> Evaluation:
        evaluation = await self.fallback.grade(item, answer)
        run = evaluation.grader.model_copy(
            update={
                "fallback_reason": limits.cap(self.chat.redact(reason), limits.MAX_ERROR_CHARS),
                "attempts": max(attempts, 1),
            }
        )
        return evaluation.model_copy(
            update={"grader": run, "flags": [*evaluation.flags, "llm_fallback"]}
        )

    def _evaluation(
        self,
        item: InterviewItem,
        answer: str,
        parsed: LLMGradeReply,
        replies: list[ChatReply],
        attempts: int,
        started: float,
    ) -> Evaluation:
        proposed = [
            ProposedCriterion(
                criterion_id=c.criterion_id,
                score=c.score,
                justification=c.reasoning,
                evidence=c.evidence,
                missed_key_points=c.missed_key_points,
            )
            for c in parsed.criteria
        ]
        misconceptions = []
        for found in parsed.misconceptions:
            listed = _is_listed(found.claim, item)
            base = listed or DetectedMisconception(
                claim=found.claim, correction=found.correction, from_corpus=False
            )
            misconceptions.append(base.model_copy(update={"evidence": found.evidence}))
        flags = (
            ["injection_attempt"]
            if parsed.injection_detected or scrub_injection(answer).found
            else []
        )
        run = self.identity.run(
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            attempts=attempts,
            usage=reduce(add, (r.usage for r in replies), Usage()),
            model=replies[-1].model,
        )
        return assemble(
            item,
            answer,
            proposed,
            misconceptions,
            parsed.coaching,
            run,
            flags,
            evidence_cap=UNEVIDENCED_SCORE_CAP,
        )

    async def stream_feedback(
        self, item: InterviewItem, evaluation: Evaluation
    ) -> AsyncIterator[str]:
        """Conversational feedback, streamed; the evaluation's coaching if the model fails,
        or if the fallback grader graded this answer."""
        if evaluation.is_fallback:
            yield evaluation.coaching
            return
        criteria = "; ".join(f"{c.name}: {c.score:.0f}/5" for c in evaluation.criteria)
        messages: list[Message] = [
            {"role": "system", "content": self.feedback_prompt.section("system")},
            {
                "role": "user",
                "content": self.feedback_prompt.render(
                    "user",
                    question=item.question,
                    overall=f"{evaluation.overall:.1f}",
                    level_label=evaluation.level_label,
                    criteria=criteria,
                    missed=json.dumps(evaluation.missed_key_points[:5]),
                    misconceptions=json.dumps(
                        [m.claim for m in evaluation.misconceptions if m.verified]
                    ),
                    coaching=evaluation.coaching,
                ),
            },
        ]
        sent = 0
        try:
            async with aclosing(self.chat.stream(messages)) as deltas:
                async for delta in deltas:
                    room = limits.MAX_FEEDBACK_CHARS - len(limits.TRUNCATION_MARK) - sent
                    if len(delta) > room:  # cut at the cap, and stop reading
                        yield delta[: max(room, 0)] + limits.TRUNCATION_MARK
                        return
                    sent += len(delta)
                    yield delta
        except LLMError as error:
            if not sent:
                yield evaluation.coaching
            elif error.partial and not error.partial.rstrip().endswith((".", "!", "?")):
                yield "..."
