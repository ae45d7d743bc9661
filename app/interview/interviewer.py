"""The interviewer's words around each corpus question.

Offline, a line from the matching section of ``prompts/interviewer.md`` (picked from the
session seed and the turn, so a replayed session says the same thing). With an LLM, a short
conversational transition is requested and used only if it stays grounded: close to the
selected question in meaning, short, and free of the reference answer's wording.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Literal

from app.bands import Band
from app.corpus.items import InterviewItem
from app.embeddings import get_encoder
from app.errors import LLMError
from app.grading.llm_grader import fence_answer
from app.limits import MAX_PHRASING_CHARS
from app.llm import ChatModel
from app.prompts import load_prompt
from app.retrieval.selector import Decision, Selection

TransitionKind = Literal[
    "opening", "next_topic", "follow_up_gap", "follow_up_deeper", "step_down", "after_skip"
]

HINT_PENALTY = 0.5
MAX_HINTS = 2
MAX_LLM_WORDS = 150
MIN_GROUNDING = 0.55
LEAK_NGRAM = 8


_KINDS: dict[Decision, TransitionKind] = {
    Decision.OPENING: "opening",
    Decision.NEXT_TOPIC: "next_topic",
    Decision.AFTER_SKIP: "after_skip",
    Decision.FOLLOW_UP_GAP: "follow_up_gap",
    Decision.PROBE_GAP: "follow_up_gap",
    Decision.FOLLOW_UP_DEEPER: "follow_up_deeper",
    Decision.HARDER: "follow_up_deeper",
    Decision.STEP_DOWN: "step_down",
}


def transition_kind(selection: Selection) -> TransitionKind:
    """How the interviewer introduces the selected question, from the selector's decision.

    A leftover follow-up (every question of the topics asked) is introduced by how the
    previous answer went: after a skip, a strong answer, or any other.
    """
    if selection.decision is Decision.LEFTOVER_FOLLOW_UP:
        if selection.after is None:
            return "after_skip"
        return "follow_up_deeper" if selection.after is Band.STRONG else "follow_up_gap"
    return _KINDS[selection.decision]


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9_]+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class Interviewer:
    def __init__(self, prompts_dir: Path, llm: ChatModel | None = None) -> None:
        self.prompt = load_prompt(prompts_dir, "interviewer")
        self.llm = llm

    def line(self, section: str, seed: int, position: int, **values: object) -> str:
        """One variant of a template section, chosen deterministically."""
        variants = [v for v in self.prompt.render(section, **values).splitlines() if v.strip()]
        return random.Random(f"{seed}:{position}:{section}").choice(variants)

    def offline_text(
        self, selection: Selection, kind: TransitionKind, seed: int, position: int, topic: str
    ) -> str:
        transition = self.line(kind, seed, position, topic=topic)
        return f"{transition}\n\n{selection.item.question}"

    async def phrase(
        self,
        selection: Selection,
        kind: TransitionKind,
        *,
        seed: int,
        position: int,
        topic_title: str,
        previous_question: str = "",
        previous_answer: str = "",
    ) -> str:
        """What the interviewer says to ask ``selection``; never a different question."""
        offline = self.offline_text(selection, kind, seed, position, topic_title)
        if self.llm is None:
            return offline
        messages = [
            {"role": "system", "content": self.prompt.section("llm_system")},
            {
                "role": "user",
                "content": self.prompt.render(
                    "llm_user",
                    kind=kind.replace("_", " "),
                    reason=selection.reason,
                    previous_question=previous_question or "(none: this is the first question)",
                    previous_answer=fence_answer(previous_answer[:3000]) or "(none)",
                    topic=topic_title,
                    question=selection.item.question,
                ),
            },
        ]
        try:
            reply = await self.llm.complete(messages, temperature=0.4, max_tokens=220)
        except LLMError:
            return offline
        text = reply.text.strip()
        return text if self.is_grounded(text, selection.item) else offline

    @staticmethod
    def is_grounded(text: str, item: InterviewItem) -> bool:
        """Short, about the selected question, and not leaking the reference answer."""
        if not text or len(text.split()) > MAX_LLM_WORDS or len(text) > MAX_PHRASING_CHARS:
            return False
        if _ngrams(text, LEAK_NGRAM) & _ngrams(item.reference_answer, LEAK_NGRAM):
            return False
        vectors = get_encoder().encode([text, item.question])
        return float(vectors[0] @ vectors[1]) >= MIN_GROUNDING

    def hint(self, item: InterviewItem, hints_used: int, seed: int, position: int) -> str | None:
        """The next hint: the heaviest criteria first. None when the hints are used up."""
        if hints_used >= MAX_HINTS:
            return None
        criteria = sorted(item.rubric.criteria, key=lambda c: -c.weight)
        criterion = criteria[min(hints_used, len(criteria) - 1)]
        return self.line(
            "hint",
            seed,
            position * 10 + hints_used,
            penalty=f"{HINT_PENALTY:g}",
            name=criterion.name[:1].lower() + criterion.name[1:],
        )
