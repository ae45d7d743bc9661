"""Run async code from sync callers (Streamlit scripts, the CLI) on one long-lived loop.

litellm and httpx cache clients per event loop; a fresh ``asyncio.run`` per call would strand
them. One daemon thread owns one loop for the whole process, and sync code submits
coroutines to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="interviewer-async", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


def run(coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coroutine`` on the background loop and wait for its result."""
    future = asyncio.run_coroutine_threadsafe(coroutine, _background_loop())
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


def iterate(stream: AsyncIterator[T]) -> Iterator[T]:
    """A sync iterator over an async one, each step run on the background loop."""
    loop = _background_loop()

    async def step() -> T:
        return await anext(stream)

    while True:
        try:
            yield asyncio.run_coroutine_threadsafe(step(), loop).result()
        except StopAsyncIteration:
            return
