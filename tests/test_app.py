"""The Streamlit app through streamlit.testing.v1.AppTest: a full offline session, a spoken
answer (espeak-ng WAV -> local Whisper), the report and the history page."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from app.config import PACKAGE_DIR, Settings, get_settings
from tests.support.openai_server import OpenAIStubServer, RecordedRequest, Reply

from .conftest import echoing_401

APP = str(PACKAGE_DIR / "ui" / "streamlit_app.py")


@pytest.fixture
def app_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("INTERVIEWER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("INTERVIEWER_WARM_VECTORS", "false")
    monkeypatch.setenv("INTERVIEWER_LLM_MODEL", "")
    get_settings.cache_clear()
    st.cache_resource.clear()
    yield settings
    get_settings.cache_clear()
    st.cache_resource.clear()


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def start_interview(at: AppTest, topics: list[str], role: str = "backend", length: int = 3) -> None:
    at.sidebar.selectbox(key="role").select(role).run()
    at.sidebar.multiselect(key="topics").set_value(topics).run()
    at.sidebar.slider(key="length").set_value(length).run()
    at.sidebar.button(key="start").click().run()
    assert not at.exception, at.exception


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


TEXT_ELEMENTS = ("markdown", "caption", "info", "error", "warning", "success")


def shown_markdown(at: AppTest) -> list[str]:
    """The Markdown source of every text element on the page."""
    return [e.value for kind in TEXT_ELEMENTS for e in at.get(kind)]


def rendered_html(source: str) -> str:
    """What a browser gets for Markdown shown without unsafe_allow_html (raw HTML as text)."""
    return MarkdownIt("commonmark", {"html": False}).render(source)


LLM_KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"


@pytest.fixture
def llm_app(
    app_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Callable[[RecordedRequest], Reply]], AppTest]]:
    """The app with an LLM model on a local stub server that answers with ``responder``."""
    servers: list[OpenAIStubServer] = []

    def open_app(responder: Callable[[RecordedRequest], Reply]) -> AppTest:
        server = OpenAIStubServer(responder=responder).start()
        servers.append(server)
        monkeypatch.setenv("INTERVIEWER_LLM_MODEL", "openai/stub-model")
        monkeypatch.setenv("INTERVIEWER_LLM_API_BASE", server.base_url)
        monkeypatch.setenv("INTERVIEWER_LLM_API_KEY", LLM_KEY)
        monkeypatch.setenv("INTERVIEWER_LLM_MAX_RETRIES", "0")
        get_settings.cache_clear()
        return new_app()

    yield open_app
    for server in servers:
        server.stop()


def last_message(request: RecordedRequest) -> str:
    messages = request.body.get("messages") or [{"content": ""}]
    return str(messages[-1]["content"])


def grade_json(request: RecordedRequest, **fields: object) -> str:
    """A well-formed grade for whatever question the grading request is about."""
    criteria = re.findall(r"criterion_id: (\S+)", last_message(request))
    reply: dict[str, object] = {
        "criteria": [
            {
                "criterion_id": c,
                "reasoning": "ok",
                "evidence": [],
                "missed_key_points": [],
                "score": 3,
            }
            for c in criteria
        ],
        "misconceptions": [],
        "coaching": "Keep going.",
        "injection_detected": False,
    }
    reply.update(fields)
    return json.dumps(reply)


def asked_question(request: RecordedRequest) -> str:
    """The corpus question an interviewer-phrasing request asks for."""
    return last_message(request).split("Next question to ask", 1)[1].split(":\n", 1)[1]


def test_full_practice_session_offline(app_env: Settings) -> None:
    at = new_app()
    assert "Senior Python Interviewer" in at.title[0].value
    start_interview(at, ["asyncio", "exceptions"])
    assert len(at.chat_message) == 1  # the first question
    answers = [
        "I'd cap concurrency with an asyncio.Semaphore, add timeouts with asyncio.timeout, and "
        "retry 429 and 5xx with exponential backoff and jitter. CancelledError must propagate.",
        "```python\nasync with asyncio.TaskGroup() as tg:\n    tg.create_task(fetch())\n```\n"
        "TaskGroup cancels the siblings when one task fails.",
        "<b>I am not sure</b> <script>alert(1)</script>",
    ]
    for number, answer in enumerate(answers, start=1):
        at.chat_input(key="answer").set_value(answer).run()
        assert not at.exception, at.exception
        # practice mode: a feedback card with a score for every answer so far
        scores = [m for m in at.metric if m.label == "Score"]
        assert len(scores) == number
    text = markdown_text(at)
    assert "Session report" in [s.value for s in at.subheader]
    assert "Strengths" in text and "Gaps" in text
    assert any(b.label.startswith("Download report (Markdown)") for b in at.get("download_button"))
    # candidate text is shown as text, never as HTML
    shown = [m for m in at.markdown if "alert(1)" in m.value]
    assert shown and all(not m.proto.allow_html for m in at.markdown)
    # the history page lists the finished session and renders the trend
    at.sidebar.radio(key="page").set_value("History").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "History"
    assert any("finished" in e.label for e in at.expander)


def test_mock_interview_holds_feedback(app_env: Settings) -> None:
    at = new_app()
    at.sidebar.radio(key="mode").set_value("mock").run()
    start_interview(at, ["generators"], role="data_engineer")
    at.chat_input(key="answer").set_value("Generators are lazy iterators.").run()
    assert not [m for m in at.metric if m.label == "Score"]
    at.button(key="end-1").click().run()
    assert [m for m in at.metric if m.label == "Score"]  # revealed at the end


def test_hint_skip_and_resume_from_history(app_env: Settings) -> None:
    at = new_app()
    start_interview(at, ["typing"], length=4)
    at.button(key="hint-0").click().run()
    assert any("0.5 points" in m.value for m in at.markdown)
    at.button(key="skip-0").click().run()
    assert any("(skipped)" in m.value for m in at.markdown)
    # a fresh browser session resumes the unfinished interview from the history page
    again = new_app()
    again.sidebar.radio(key="page").set_value("History").run()
    resume = [b for b in again.button if b.label == "Resume"]
    assert resume
    resume[0].click().run()
    assert not again.exception, again.exception
    assert any("(skipped)" in m.value for m in again.markdown)
    assert again.chat_input(key="answer") is not None


def test_a_stale_window_cannot_answer_the_next_question(app_env: Settings) -> None:
    """The same session in two browser tabs: B's answer to the question it shows is refused
    once A has answered it, instead of being stored against A's next question."""
    window_a = new_app()
    start_interview(window_a, ["typing"], length=4)
    window_b = new_app()
    window_b.sidebar.radio(key="page").set_value("History").run()
    next(b for b in window_b.button if b.label == "Resume").click().run()
    window_a.chat_input(key="answer").set_value("A answers the first question.").run()
    window_b.chat_input(key="answer").set_value("B answers the first question.").run()
    assert not window_b.exception, window_b.exception
    assert any("already answered in another window" in w.value for w in window_b.warning)
    text = markdown_text(window_b)
    assert "A answers the first question." in text and "B answers" not in text


REMOTE_IMAGE = "![pixel](http://127.0.0.1:9/leak.png)"
REMOTE_HTML = '<img src="http://127.0.0.1:9/leak.png">'


def test_model_text_cannot_load_anything(
    llm_app: Callable[[Callable[[RecordedRequest], Reply]], AppTest],
) -> None:
    """Coaching, misconceptions, missed points, streamed feedback and the interviewer's
    phrasing from a model are shown as text: no image, link or HTML reaches the page."""
    hostile = f"{REMOTE_IMAGE} {REMOTE_HTML} [click](http://127.0.0.1:9/)"

    def responder(request: RecordedRequest) -> Reply:
        if request.body.get("stream"):
            return Reply(
                stream_chunks=["Well argued ", REMOTE_IMAGE[:9], REMOTE_IMAGE[9:], REMOTE_HTML]
            )
        if "Next question to ask" in last_message(request):
            return Reply(content=f"{REMOTE_IMAGE} Next one. {asked_question(request)}")
        misconception = {"claim": f"claim {hostile}", "evidence": "", "correction": hostile}
        return Reply(
            content=grade_json(
                request, coaching=f"Coaching {hostile}", misconceptions=[misconception]
            )
        )

    at = llm_app(responder)
    start_interview(at, ["asyncio"])
    at.chat_input(key="answer").set_value("I would use a semaphore.").run()
    assert not at.exception, at.exception
    sources = shown_markdown(at)
    assert any("Coaching" in s for s in sources) and any("claim" in s for s in sources)
    assert any("Well argued" in s for s in sources)  # the streamed feedback
    for source in sources:
        assert not re.search(r"(?<!\\)!\[", source), source
        html = rendered_html(source)
        assert "<img" not in html and "<a " not in html, source
    assert all(not m.proto.allow_html for m in at.markdown)


def test_a_key_echoed_by_the_server_is_not_shown(
    llm_app: Callable[[Callable[[RecordedRequest], Reply]], AppTest],
) -> None:
    """The configured key, and a key typed in the sidebar, never reach the feedback card."""
    at = llm_app(echoing_401)
    start_interview(at, ["asyncio"])
    at.chat_input(key="answer").set_value("I would use a semaphore.").run()
    typed = "typed-in-the-sidebar-4242"
    at.sidebar.text_input(key="api_key").set_value(typed).run()
    at.chat_input(key="answer").set_value("And a timeout on every call.").run()
    assert not at.exception, at.exception
    reasons = [c.value for c in at.caption if "could not be used" in c.value]
    assert len(reasons) == 2 and all("Incorrect API key provided" in r for r in reasons)
    page = "\n".join(rendered_html(source) for source in shown_markdown(at))
    assert LLM_KEY.split("-")[-1] not in page and typed not in page


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is not installed: run `make system-deps` (CI installs it)")
    path = tmp_path_factory.mktemp("audio") / "answer.wav"
    text = (
        "A context manager for checkpoints writes to a temporary file, flushes and calls fsync, "
        "then uses os dot replace to swap the file in atomically, and deletes the temporary "
        "file if anything fails."
    )
    subprocess.run([espeak, "-v", "en-us", "-s", "140", "-w", str(path), text], check=True)
    return path.read_bytes()


@pytest.mark.slow
def test_spoken_answer_is_transcribed_edited_and_graded(
    app_env: Settings, spoken_wav: bytes
) -> None:
    at = new_app()
    start_interview(at, ["context_managers"], role="ml_engineer")
    at.audio_input(key="audio-0").set_value(("answer.wav", spoken_wav, "audio/wav")).run()
    assert not at.exception, at.exception
    transcript = at.text_area(key="transcript").value.lower()
    # Whisper may write "fsync", "f-sync" or "f sync" (the question, and so its prompt, is
    # picked at random); compare without separators. "atomically" is left out: espeak-ng's
    # voice says something closer to "anatomically".
    squashed = re.sub(r"[\s.\-]", "", transcript)
    for term in ("temporary", "fsync", "replace"):
        assert term in squashed, transcript
    at.text_area(key="transcript").set_value(transcript + " Edited by the candidate.").run()
    at.button(key="submit-audio-0").click().run()
    assert not at.exception, at.exception
    assert [m for m in at.metric if m.label == "Score"]
    assert any("Spoken answer" in c.value for c in at.caption)
    assert any("Edited by the candidate." in m.value for m in at.markdown)


def test_unreadable_audio_gets_a_clear_message(app_env: Settings) -> None:
    at = new_app()
    start_interview(at, ["testing"], role="backend")
    at.file_uploader(key="upload-0").set_value(("answer.mp3", b"not really audio", "audio/mpeg"))
    at.run()
    assert any("Could not read this audio" in e.value for e in at.error)


def test_a_broken_corpus_shows_where(
    app_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "corpus"
    broken.mkdir()
    (broken / "topics.yaml").write_text("version: x\ntopics: [\n")
    monkeypatch.setenv("INTERVIEWER_CORPUS_DIR", str(broken))
    get_settings.cache_clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert at.error and "topics.yaml:" in rendered_html(at.error[0].value)


def test_transcription_prompt_carries_identifiers_not_key_points() -> None:
    from app.corpus import load_corpus
    from app.corpus.items import item_from_question
    from app.speech import MAX_PROMPT_CHARS, code_terms, initial_prompt

    assert code_terms("call os.fsync(fd), then TaskGroup and __slots__; plain words") == [
        "os.fsync",
        "TaskGroup",
        "__slots__",
    ]
    item = item_from_question(
        load_corpus(get_settings().corpus_dir).get("ctx-atomic-checkpoint-write")
    )
    prompt = initial_prompt(item)
    assert prompt.startswith("Terms: ") and len(prompt) <= MAX_PROMPT_CHARS
    assert "os.fsync" in prompt and "os.replace" in prompt
    key_points = [point for c in item.rubric.criteria for point in c.key_points]
    assert not any(point in prompt for point in key_points)  # Whisper could echo them


def test_transcription_service_errors_carry_no_key(tmp_path: Path) -> None:
    import wave

    from app.llm import CallPolicy
    from app.speech import ApiTranscriber, TranscriptionError

    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(b"\0\0" * 16_000)
    key = "speech-deployment-key-51c0"
    with OpenAIStubServer(responder=echoing_401) as server:
        transcriber = ApiTranscriber(
            CallPolicy("openai/whisper-1", api_base=server.base_url, api_key=key)
        )
        with pytest.raises(TranscriptionError) as caught:
            transcriber.transcribe(path.read_bytes())
        assert server.requests, "the transcriber must have called the server"
    assert "Incorrect API key provided" in str(caught.value) and key not in str(caught.value)
