"""Clicks from the redirect to the counters (SPEC 5C; 0111_click_outbox.sql).

Appender: GET /c/{token} hands its click over and waits for it to be committed to the
outbox; the clicks that arrive while appends are in flight go together in the next one
(group commit), so N concurrent redirects cost a few statements and WAL flushes, not N.
A redirect is answered only after its click is durable: a click is never lost once the 302
is out, whatever happens to this process afterwards.

Drainer: a task of each API process applies the outbox in batches (store/clicks.drain),
DRAIN_GATHER_S after an append woke it, every DRAIN_IDLE_S otherwise, and at startup (what
a killed process left).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any

from broadcaster import db
from broadcaster.domain import links
from broadcaster.domain.links import Click, Ref
from broadcaster.errors import ApiError
from broadcaster.logs import log
from broadcaster.store import campaigns, clicks

logger = logging.getLogger(__name__)
MAX_APPEND = 1000  # clicks per append statement
# Appends in flight at once, each taking every click waiting when it starts: with one at a
# time, concurrent redirects wait on each other's commit while the API idles; a few overlap
# their commits (PostgreSQL flushes them together).
MAX_APPENDING = 4
DRAIN_BATCH = 5000
DRAIN_IDLE_S = 1.0
DRAIN_GATHER_S = 0.1
DRAIN_RETRY_S = 1.0
LITERAL_CAMPAIGNS = 4096  # campaigns whose literal links this process keeps
LITERAL_RELOAD_S = 5.0  # a token that matches none of them reloads them at most this often


class ClickPipe:
    def __init__(self, pool: Any, drain_idle_s: float = DRAIN_IDLE_S) -> None:
        self.pool = pool
        self.drain_idle_s = drain_idle_s
        self._waiting: list[tuple[Click, asyncio.Future[bool]]] = []
        self._appending = 0
        self._wake = asyncio.Event()
        # (app, campaign) -> (its template's literal links, when read): a started campaign's
        # template does not change, so v3 redirects read it once per process
        self._literals: OrderedDict[tuple[int, str], tuple[tuple[str, ...], float]] = OrderedDict()

    async def _lits(self, app_id: int, cid: str, fresh: bool) -> tuple[tuple[str, ...], float]:
        key = (app_id, cid)
        got = self._literals.get(key)
        if got is not None and not (fresh and time.monotonic() - got[1] > LITERAL_RELOAD_S):
            self._literals.move_to_end(key)
            return got
        try:
            lits = links.literals((await campaigns.get(self.pool, app_id, cid))["message_template"])
        except ApiError:  # no such campaign (any more)
            lits = ()
        got = self._literals[key] = (lits, time.monotonic())
        if len(self._literals) > LITERAL_CAMPAIGNS:
            self._literals.popitem(last=False)
        return got

    async def resolve(self, ref: Ref) -> Click | None:
        """The click of a v3 token (a literal link of its campaign's template), or None."""
        lits, at = await self._lits(ref.app_id, ref.campaign_id, False)
        click = links.resolve(ref, lits)
        if click is None and time.monotonic() - at > LITERAL_RELOAD_S:  # a campaign deleted and made again
            click = links.resolve(ref, (await self._lits(ref.app_id, ref.campaign_id, True))[0])
        return click

    async def record(self, click: Click) -> bool:
        """Wait until the click is in the outbox; False when the campaign has no such
        recipient (then nothing was appended)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((click, fut))
        if self._appending < MAX_APPENDING:
            self._appending += 1
            asyncio.get_running_loop().create_task(self._append_loop())
        return await fut

    async def _append_loop(self) -> None:
        try:
            while self._waiting:
                take, self._waiting = self._waiting[:MAX_APPEND], self._waiting[MAX_APPEND:]
                try:
                    ok = await clicks.append(self.pool, [c for c, _ in take])
                except Exception as e:  # these redirects fail (500): none of them was answered
                    for _, f in take:
                        if not f.done():
                            f.set_exception(e)
                    continue
                for (_, f), good in zip(take, ok, strict=True):
                    if not f.done():
                        f.set_result(good)
                self._wake.set()
        finally:
            self._appending -= 1

    async def drain_forever(self) -> None:
        failing = False
        while True:
            try:
                async with self.pool.acquire() as conn:
                    while (n := await clicks.drain(conn, DRAIN_BATCH)) == DRAIN_BATCH:
                        pass
                failing = False
                if n is None:  # another process's drainer has the turn: look again later
                    await asyncio.sleep(self.drain_idle_s)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the outbox keeps the clicks meanwhile
                if not db.unavailable(e):
                    logger.exception("click drain failed; retrying")
                elif not failing:
                    log(logger, logging.WARNING, "PostgreSQL unreachable; clicks wait in the outbox",
                        error=f"{type(e).__name__}: {e}")
                failing = True
                await asyncio.sleep(DRAIN_RETRY_S)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.drain_idle_s)
            if self._wake.is_set():
                # let the clicks of the next moment join this drain: one click at a time
                # would otherwise cost a drain transaction each
                await asyncio.sleep(DRAIN_GATHER_S)
