"""Playwright's sync API on a thread of its own, used from the test's thread as if local.

Sync Playwright marks its thread as running an asyncio loop for as long as it lives, and the
suite's fixtures call asyncio.run() (databases, apps) in the test thread. So Playwright gets
a thread, and `Remote` forwards every attribute read and call on a Playwright object to it
(callbacks it runs, such as a dialog handler, call straight through on that thread)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class _Thread:
    def __init__(self) -> None:
        self.jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="playwright", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (job := self.jobs.get()) is not None:
            fn, fut = job
            try:
                fut.set_result(fn())
            except BaseException as e:  # handed to the caller, raised there
                fut.set_exception(e)

    def run(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is self.thread:
            return fn()
        fut: Future[Any] = Future()
        self.jobs.put((fn, fut))
        return fut.result()

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(30)


_T: _Thread | None = None


def _run(fn: Callable[[], Any]) -> Any:
    assert _T is not None, "the Playwright thread is not running"
    return _T.run(fn)


def _wrap(v: Any) -> Any:
    if type(v).__module__.startswith("playwright."):
        return Remote(v)
    if isinstance(v, list):
        return [_wrap(x) for x in v]
    return v


def _unwrap(v: Any) -> Any:
    if isinstance(v, Remote):
        return object.__getattribute__(v, "_obj")
    if isinstance(v, list | tuple):
        return type(v)(_unwrap(x) for x in v)
    if isinstance(v, dict):
        return {k: _unwrap(x) for k, x in v.items()}
    if callable(v):  # a callback gets raw objects on the Playwright thread; wrapping is harmless
        return lambda *a, **k: v(*(_wrap(x) for x in a), **k)
    return v


class Remote:
    """A Playwright object living on the Playwright thread."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        object.__setattr__(self, "_obj", obj)

    def __getattr__(self, name: str) -> Any:
        obj = object.__getattribute__(self, "_obj")
        attr = _run(lambda: getattr(obj, name))
        if callable(attr) and not type(attr).__module__.startswith("playwright."):
            def call(*a: Any, **k: Any) -> Any:
                return _wrap(_run(lambda: attr(*_unwrap(a), **_unwrap(k))))
            return call
        return _wrap(attr)

    def __repr__(self) -> str:
        return f"Remote({object.__getattribute__(self, '_obj')!r})"


def start() -> tuple[Any, Any]:
    """(playwright, expect) as Remote objects; call stop() at the end."""
    global _T
    _T = _Thread()

    def boot() -> Any:
        from playwright.sync_api import sync_playwright

        return sync_playwright().start()

    return Remote(_T.run(boot)), None


def expect(actual: Any, message: str | None = None) -> Any:
    from playwright.sync_api import expect as _expect

    return Remote(_run(lambda: _expect(_unwrap(actual), message)))


def set_expect_timeout(ms: float) -> None:
    from playwright.sync_api import expect as _expect

    _run(lambda: _expect.set_options(timeout=ms))


def stop(pw: Any) -> None:
    global _T
    if _T is None:
        return
    _run(lambda: _unwrap(pw).stop())
    _T.stop()
    _T = None
