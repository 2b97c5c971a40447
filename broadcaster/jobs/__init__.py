"""arq job functions, one module per resource; each exposes FUNCTIONS and CRON lists."""

from __future__ import annotations

from typing import Any

from broadcaster.jobs import campaigns, purges, recurring, segments, triggered, webhooks

JOB_MODULES = (segments, campaigns, webhooks, recurring, triggered, purges)


def functions() -> list[Any]:
    return [f for m in JOB_MODULES for f in m.FUNCTIONS]


def cron_jobs() -> list[Any]:
    return [c for m in JOB_MODULES for c in m.CRON]
