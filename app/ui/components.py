"""Rendering pieces of the Streamlit app. They draw engine data; they change nothing."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from app.bands import PASS, STRENGTH, UNEVIDENCED_SCORE_CAP, WEAK
from app.interview.engine import Evaluation, Report, TurnView
from app.ui.safe import as_text, safe_markdown


def score_colour(score: float) -> str:
    """Green for a strength, red for a weak answer, orange between."""
    return "green" if score >= STRENGTH else "orange" if score >= WEAK else "red"


def render_evaluation(evaluation: Evaluation, reference_answer: str | None, key: str) -> None:
    """The feedback card: score, criteria with evidence, misses, misconceptions, coaching."""
    with st.container(border=True, key=f"feedback-{key}"):
        left, right = st.columns([1, 3])
        left.metric("Score", f"{evaluation.overall:.1f} / 5")
        right.markdown(
            f"**:{score_colour(evaluation.overall)}[{evaluation.level_label}]**  \n"
            f"{evaluation.level_description}"
        )
        if evaluation.is_fallback:
            st.caption(
                "Graded by the offline grader because the LLM could not be used "
                f"({as_text(evaluation.grader.fallback_reason or '')})."
            )
        for criterion in evaluation.criteria:
            st.progress(
                min(1.0, criterion.score / 5),
                text=f"{criterion.name}: {criterion.score:.1f}/5 (weight {criterion.weight:g})",
            )
            for quote in criterion.evidence[:2]:
                st.markdown(f":green-background[\u201c{as_text(quote, one_line=True)}\u201d]")
        if evaluation.missed_key_points:
            st.markdown("**Missed:**")
            st.markdown(
                "\n".join(
                    f"- {as_text(p, one_line=True)}" for p in evaluation.missed_key_points[:6]
                )
            )
        for found in evaluation.misconceptions:
            evidence = (
                f" You said: \u201c{as_text(found.evidence, one_line=True)}\u201d."
                if found.evidence
                else ""
            )
            claim, correction = as_text(found.claim), as_text(found.correction or "")
            if found.verified:
                st.error(f"Misconception: {claim}.{evidence} {correction}")
            else:  # not the question's, and not quoted from the answer: no points taken
                st.warning(f"Possible misconception (not scored): {claim}. {correction}")
        if "injection_attempt" in evaluation.flags:
            st.warning("Text addressed to the grader was ignored.")
        if "unverified_scores" in evaluation.flags:
            st.caption(
                "A criterion the grader backed with no quote from your answer counts "
                f"{UNEVIDENCED_SCORE_CAP:g}/5 at most."
            )
        st.info(as_text(evaluation.coaching))
        if reference_answer:
            with st.expander("Model answer"):
                st.markdown(reference_answer)
        grader = evaluation.grader
        st.caption(
            f"Graded by {grader.grader}"
            + (f" ({as_text(grader.model)})" if grader.model else "")
            + f" in {grader.latency_ms:.0f} ms, prompt {grader.prompt_version}"
        )


def render_turn(turn: TurnView, show_feedback: bool) -> None:
    with st.chat_message("assistant"):
        st.markdown(safe_markdown(turn.interviewer_text))
        if turn.reason:
            st.caption(turn.reason)
        for hint in turn.hints:
            st.markdown(f"*{hint}*")
    if turn.status == "skipped":
        with st.chat_message("user"):
            st.markdown("*(skipped)*")
        return
    if turn.answer_text is None:
        return
    with st.chat_message("user"):
        if turn.audio_seconds is not None:
            st.caption(
                f"Spoken answer, {turn.audio_seconds:.0f} s (transcript, edited before grading)"
            )
        st.markdown(safe_markdown(turn.answer_text) or "*(empty answer)*")
    if show_feedback and turn.evaluation is not None:
        with st.chat_message("assistant"):
            render_evaluation(turn.evaluation, turn.reference_answer, key=str(turn.position))


def render_report(report: Report) -> None:
    st.subheader("Session report")
    columns = st.columns(3)
    columns[0].metric("Overall", "n/a" if report.overall is None else f"{report.overall:.1f} / 5")
    columns[1].metric("Answered", report.answered)
    columns[2].metric("Skipped", report.skipped)
    if report.per_topic:
        st.bar_chart(
            {
                "topic": [t.title for t in report.per_topic],
                "score": [t.mean for t in report.per_topic],
            },
            x="topic",
            y="score",
            y_label="mean score (0-5)",
        )
    st.markdown("**Strengths**")
    st.markdown("\n".join(f"- {s}" for s in report.strengths) or "- Keep practising: none yet.")
    st.markdown("**Gaps**")
    if not report.gaps:
        st.markdown(f"- None: every answer scored {PASS:g} or more.")
    for gap in report.gaps:
        score = "skipped" if gap.score is None else f"{gap.score:.1f}/5"
        st.markdown(f"- {as_text(gap.question, one_line=True)} ({score})")
        for point in gap.missed_key_points[:3]:
            st.markdown(f"    - missed: {as_text(point, one_line=True)}")
    if report.practise_next:
        st.markdown("**Practise next**")
        st.markdown("\n".join(f"- {p.question} *({p.why})*" for p in report.practise_next))
    downloads = [
        ("Markdown", "md", "text/markdown", report.to_markdown()),
        ("JSON", "json", "application/json", report.to_json()),
    ]
    for column, (label, suffix, mime, data) in zip(st.columns(2), downloads, strict=True):
        column.download_button(
            f"Download report ({label})",
            data,
            file_name=f"interview-{report.session_id}.{suffix}",
            mime=mime,
            key=f"{suffix}-{report.session_id}",
        )


def render_conversation(turns: Sequence[TurnView], show_feedback: bool) -> None:
    for turn in turns:
        render_turn(turn, show_feedback)
