"""``interviewer chat``: the same interview in the terminal, typed answers.

An answer may span several lines and ends with an empty line (or end of input). Commands on
a line of their own: ``/hint``, ``/repeat``, ``/skip``, ``/end``. Works with piped input, so
scripted sessions are easy to test.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from typing import TextIO

from app.errors import EngineError
from app.interview.engine import InterviewEngine, InterviewSetup, SessionView

COMMANDS = {"/hint", "/repeat", "/skip", "/end"}


def _say(out: TextIO, speaker: str, text: str) -> None:
    body = "\n".join(textwrap.fill(p, 96) if p.strip() else "" for p in text.splitlines())
    out.write(f"\n{speaker}: {body}\n")
    out.flush()


def _answers(lines: Iterator[str]) -> Iterator[str]:
    """Group input lines into answers (blank-line separated) and single-line commands."""
    buffer: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if not buffer and line.strip() in COMMANDS:
            yield line.strip()
            continue
        if line.strip() == "" and buffer:
            yield "\n".join(buffer)
            buffer = []
        elif line.strip() or buffer:
            buffer.append(line)
    if buffer:
        yield "\n".join(buffer)


def _show_feedback(out: TextIO, view: SessionView, position: int) -> None:
    turn = next(t for t in view.turns if t.position == position)
    evaluation = turn.evaluation
    if evaluation is None:
        return
    lines = [f"Score {evaluation.overall:.1f}/5 ({evaluation.level_label})"]
    for criterion in evaluation.criteria:
        bar = "#" * round(criterion.score) + "." * (5 - round(criterion.score))
        lines.append(f"  [{bar}] {criterion.name} {criterion.score:.1f}")
    for found in evaluation.misconceptions:
        label = "Misconception" if found.verified else "Possible misconception (not scored)"
        lines.append(f"  {label}: {found.claim}")
    lines.append(evaluation.coaching)
    _say(out, "Feedback", "\n".join(lines))


def run_chat(
    engine: InterviewEngine,
    setup: InterviewSetup | None,
    resume: str | None = None,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> str:
    """Run an interview; returns the session id (resumable if input ends early)."""
    if resume:
        view = engine.view(resume)
    else:
        assert setup is not None
        view = engine.start(setup)
    session_id = view.session.id
    _say(
        out,
        "Interviewer",
        f"Session {session_id}. Answer, then an empty line. /hint /repeat /skip /end",
    )
    shown = None
    inputs = _answers(iter(stdin.readline, ""))
    while not view.finished:
        current = view.current
        if current is None:
            break
        if shown != current.position:
            _say(out, "Interviewer", current.interviewer_text)
            shown = current.position
        out.write("> ")
        out.flush()
        entry = next(inputs, None)
        if entry is None:
            _say(out, "Interviewer", f"Paused. Resume with: interviewer chat --resume {session_id}")
            return session_id
        position = current.position
        try:
            if entry == "/hint":
                _say(out, "Interviewer", engine.hint(session_id, position=position))
                continue
            if entry == "/repeat":
                _say(out, "Interviewer", engine.repeat(session_id))
                continue
            if entry == "/skip":
                view = engine.skip(session_id, position=position)
                continue
            if entry == "/end":
                view = engine.finish(session_id)
                break
            view = engine.submit_answer(session_id, entry, position=position)
        except EngineError as exc:  # e.g. answered in another window: show where it is now
            _say(out, "Interviewer", str(exc))
            view = engine.view(session_id)
            continue
        if view.show_feedback:
            _show_feedback(out, view, current.position)
    if view.closing_text:
        _say(out, "Interviewer", view.closing_text)
    out.write("\n" + engine.report(session_id).to_markdown())
    out.flush()
    return session_id
