"""Typed application keys shared by the composition root and the handlers."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
from aiohttp import web
from arq.connections import ArqRedis

from broadcaster.services.clickpipe import ClickPipe
from broadcaster.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", ArqRedis)
HTTP = web.AppKey("http", aiohttp.ClientSession)
CLICK_PIPE = web.AppKey("click_pipe", ClickPipe)
# The API process's audience copies in flight (services/planning.py).
PLANNERS = web.AppKey("planners", set[asyncio.Task[object]])

# Per-request storage.
T0 = web.RequestKey("t0", float)
