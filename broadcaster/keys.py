"""Typed application keys shared by the composition root and the handlers."""

from __future__ import annotations

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

# Per-request storage.
T0 = web.RequestKey("t0", float)
