"""The Streamlit app: setup in the sidebar, the interview as a chat, history and reports.

Every action calls the engine and re-renders what it returns. The only UI state is which
session and page are open, an edited transcript, and an API key typed by the user, which
lives in this browser session's memory and is never written anywhere. Actions run in widget
callbacks, which Streamlit executes before the page is drawn again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import streamlit as st

from app import services
from app.config import get_settings
from app.errors import InterviewerError, SessionNotFoundError
from app.interview.engine import InterviewEngine, InterviewSetup, Mode
from app.services import Foundation, build_engine, shared_foundation
from app.ui.components import render_conversation, render_report
from app.ui.safe import as_text

DEFAULT_TOPICS = ["asyncio", "concurrency", "context_managers", "exceptions", "memory"]
AUDIO_TYPES = ["wav", "mp3", "m4a", "ogg", "webm", "flac"]
PAGES = ["Interview", "History"]


@st.cache_resource(show_spinner="Loading the question corpus and index...")
def foundation() -> Foundation:
    return shared_foundation(get_settings())


def engine() -> InterviewEngine:
    """An engine for the model chosen in the sidebar (offline when the field is empty)."""
    state = st.session_state
    model = str(state.get("model", "")).strip()
    key = state.get("api_key") or None
    base = str(state.get("api_base", "")).strip()
    signature = hashlib.sha256(f"{model}|{base}|{key}".encode()).hexdigest()
    if state.get("_engine") is None or state.get("_engine_signature") != signature:
        state["_engine"] = build_engine(foundation(), model=model, api_key=key, api_base=base)
        state["_engine_signature"] = signature
    built: InterviewEngine = state["_engine"]
    return built


def notify(message: str) -> None:
    st.session_state["_notice"] = message


def error_text(error: BaseException | str) -> str:
    """An error for the page: without any key (the one typed in the sidebar too), as text."""
    typed = str(st.session_state.get("api_key") or "")
    return as_text(services.shown_error(get_settings(), error, typed))


# -- callbacks: each changes state through the engine, then Streamlit redraws -------------
def on_start() -> None:
    state = st.session_state
    setup = InterviewSetup(
        role=str(state["role"]),
        topics=list(state["topics"]),
        difficulty=int(state["difficulty"]),
        length=int(state["length"]),
        mode=Mode(state["mode"]),
        seed=int(time.time()) % 100_000,
    )
    try:
        view = engine().start(setup)
    except InterviewerError as exc:
        notify(str(exc))
        return
    state["session_id"] = view.session.id
    state["page"] = "Interview"
    clear_transcript()


def on_open(session_id: str) -> None:
    st.session_state["session_id"] = session_id
    st.session_state["page"] = "Interview"
    clear_transcript()


def on_delete(session_id: str) -> None:
    engine().delete(session_id)
    if st.session_state.get("session_id") == session_id:
        st.session_state.pop("session_id", None)


def on_action(action: str, session_id: str, position: int) -> None:
    current = engine()
    try:
        if action == "hint":
            current.hint(session_id, position=position)
        elif action == "repeat":
            st.session_state["_repeat"] = current.repeat(session_id)
        elif action == "skip":
            current.skip(session_id, position=position)
            clear_transcript()
        elif action == "end":
            current.finish(session_id)
    except InterviewerError as exc:
        notify(str(exc))


def submit(session_id: str, position: int, text: str, audio_seconds: float | None = None) -> None:
    current = engine()
    try:
        with st.spinner("Grading your answer..."):
            view = current.submit_answer(
                session_id,
                text,
                position=position,
                transcript=text if audio_seconds is not None else None,
                audio_seconds=audio_seconds,
            )
    except InterviewerError as exc:
        notify(str(exc))
        return
    clear_transcript()
    graded = [t for t in view.turns if t.status == "graded"]
    if view.show_feedback and graded and current.streams_feedback:
        st.session_state["_stream_turn"] = graded[-1].position


def on_typed(session_id: str, position: int) -> None:
    text = st.session_state.get("answer")
    if text is not None:
        submit(session_id, position, str(text))


def on_spoken(session_id: str, position: int) -> None:
    state = st.session_state
    submit(
        session_id,
        position,
        str(state.get("transcript", "")),
        float(state.get("_audio_seconds", 0.0)),
    )


def clear_transcript() -> None:
    for key in ("transcript", "_audio_digest", "_audio_seconds"):
        st.session_state.pop(key, None)


# -- drawing ------------------------------------------------------------------------------
def sidebar(found: Foundation) -> None:
    settings = found.settings
    with st.sidebar:
        st.header("New interview")
        role_labels = dict(services.roles())
        role = st.selectbox(
            "Role", list(role_labels), format_func=lambda r: role_labels[r], key="role"
        )
        titles = dict(services.topics_for_role(found, role))
        available = list(titles)
        default = [t for t in DEFAULT_TOPICS if t in available] or available[:3]
        st.multiselect(
            "Topics",
            available,
            default=default,
            format_func=lambda t: titles[t],
            key="topics",
        )
        st.slider("Difficulty", 1, 5, 3, key="difficulty")
        st.slider("Questions", 3, 15, 5, key="length")
        st.radio(
            "Mode",
            [Mode.PRACTICE.value, Mode.MOCK.value],
            format_func=lambda m: (
                "Practice: feedback after each answer"
                if m == Mode.PRACTICE.value
                else "Mock interview: feedback at the end"
            ),
            key="mode",
        )
        with st.expander("Model (optional)"):
            st.text_input(
                "LLM model (any litellm model string; empty = offline)",
                value=settings.llm_model,
                key="model",
                placeholder="openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, ollama/llama3.1",
            )
            st.text_input("API base (optional)", value=settings.llm_api_base or "", key="api_base")
            st.text_input(
                "API key (kept in this browser session only)", type="password", key="api_key"
            )
        st.button(
            "Start interview",
            type="primary",
            key="start",
            on_click=on_start,
            disabled=not st.session_state.get("topics"),
        )
        if found.index_error:
            st.caption(f"Semantic follow-ups are off: {error_text(found.index_error)}")
        st.divider()
        st.radio("Page", PAGES, key="page")


def voice_answer(
    found: Foundation, current: InterviewEngine, session_id: str, position: int
) -> None:
    with st.expander("Answer by voice"):
        recording = st.audio_input("Record your answer", key=f"audio-{position}")
        upload = st.file_uploader(
            "or upload a recording", type=AUDIO_TYPES, key=f"upload-{position}"
        )
        audio = recording or upload
        if audio is None:
            return
        audio_bytes = audio.getvalue()
        digest = hashlib.sha256(audio_bytes).hexdigest()
        if st.session_state.get("_audio_digest") != digest:
            try:
                with st.spinner("Transcribing..."):
                    result = services.transcribe_answer(found, current, session_id, audio_bytes)
            except InterviewerError as exc:
                st.error(error_text(exc))
                return
            st.session_state["_audio_digest"] = digest
            st.session_state["transcript"] = result.text
            st.session_state["_audio_seconds"] = result.duration_s
        st.text_area("Transcript: edit it, then submit", key="transcript", height=160)
        st.button(
            "Submit spoken answer",
            key=f"submit-audio-{position}",
            on_click=on_spoken,
            args=(session_id, position),
        )


def interview_page(found: Foundation) -> None:
    session_id = st.session_state.get("session_id")
    if not session_id:
        st.title("Senior Python Interviewer")
        st.markdown(
            "Practise a senior Python interview. Pick a role and topics in the sidebar and press "
            "**Start interview**. Answer by typing (code blocks welcome) or by voice. Every "
            "answer is graded against a rubric, with evidence quoted from your answer, what you "
            "missed, and coaching. Everything runs on this machine unless you configure an LLM."
        )
        st.caption(f"{services.corpus_summary(found)}.")
        return
    current = engine()
    try:
        view = current.view(session_id)
    except SessionNotFoundError:
        st.session_state.pop("session_id", None)
        st.warning("That session no longer exists.")
        return
    session = view.session
    titles = ", ".join(services.topic_title(found, t) for t in session.topics)
    st.caption(
        f"{services.role_label(session.role)} · {titles} · {session.mode} · "
        f"question {min(view.answered + 1, session.length)} of {session.length}"
    )
    render_conversation(view.turns, view.show_feedback)
    stream_turn = st.session_state.pop("_stream_turn", None)
    if stream_turn is not None:
        received: list[str] = []

        def shown(deltas: Iterator[str]) -> Iterator[str]:
            for delta in deltas:
                received.append(delta)
                yield as_text(delta)

        with st.chat_message("assistant"):
            st.write_stream(shown(current.stream_feedback(session_id, stream_turn)))
        current.record_feedback(session_id, stream_turn, "".join(received))
    if view.finished:
        if view.closing_text:
            with st.chat_message("assistant"):
                st.markdown(view.closing_text)
        render_report(current.report(session_id))
        return
    turn = view.current
    if turn is None:
        return
    repeat = st.session_state.pop("_repeat", None)
    if repeat:
        with st.chat_message("assistant"):
            st.markdown(repeat)
    columns = st.columns(4)
    for column, (action, label) in zip(
        columns,
        [("hint", "Hint (-0.5)"), ("repeat", "Repeat"), ("skip", "Skip"), ("end", "End interview")],
        strict=True,
    ):
        column.button(
            label,
            key=f"{action}-{turn.position}",
            on_click=on_action,
            args=(action, session_id, turn.position),
        )
    voice_answer(found, current, session_id, turn.position)
    st.chat_input(
        "Type your answer (Markdown and ``` code blocks welcome)",
        key="answer",
        on_submit=on_typed,
        args=(session_id, turn.position),
    )


def history_page(found: Foundation) -> None:
    st.title("History")
    current = engine()
    sessions = current.sessions()
    if not sessions:
        st.info("No interviews yet.")
        return
    trend = services.score_trend(found, current)
    if trend.sessions:
        chart: dict[str, list[Any]] = {"session": trend.sessions, **trend.by_topic}
        st.subheader("Score trend by topic")
        if len(trend.sessions) > 1:
            st.line_chart(chart, x="session", y_label="mean score (0-5)")
        else:  # a line needs two sessions; one session would draw an empty chart
            st.bar_chart(chart, x="session", y_label="mean score (0-5)", stack=False)
    st.subheader("Sessions")
    for session in sessions:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(session.created_at))
        label = (
            f"{started} · {services.role_label(session.role)} · {session.status} · {session.grader}"
        )
        with st.expander(label):
            st.markdown(f"Topics: {', '.join(session.topics)} · mode: {session.mode}")
            columns = st.columns(3)
            columns[0].button(
                "Open", key=f"open-{session.id}", on_click=on_open, args=(session.id,)
            )
            if session.status == "active":
                columns[1].button(
                    "Resume", key=f"resume-{session.id}", on_click=on_open, args=(session.id,)
                )
            columns[2].button(
                "Delete", key=f"delete-{session.id}", on_click=on_delete, args=(session.id,)
            )


def main() -> None:
    st.set_page_config(page_title="Senior Python Interviewer", page_icon=":snake:", layout="wide")
    try:
        found = foundation()
    except InterviewerError as exc:  # a broken corpus or unreadable database: what and where
        st.error(f"The app could not start: {error_text(exc)}")
        st.stop()
    sidebar(found)
    notice = st.session_state.pop("_notice", None)
    if notice:
        st.warning(error_text(notice))
    if st.session_state.get("page", "Interview") == "History":
        history_page(found)
    else:
        interview_page(found)
