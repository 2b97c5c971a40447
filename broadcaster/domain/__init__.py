"""Pure campaign logic (no aiohttp, asyncpg, redis or arq): what a batch sends."""
