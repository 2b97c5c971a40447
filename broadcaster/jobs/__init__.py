"""arq job functions, one module per resource; each exposes FUNCTIONS and CRON lists."""

from __future__ import annotations

import importlib
from typing import Any

JOB_MODULES = ("broadcaster.jobs.segments", "broadcaster.jobs.campaigns", "broadcaster.jobs.webhooks",
               "broadcaster.jobs.recurring")


def _modules() -> list[Any]:
    out = []
    for name in JOB_MODULES:
        try:
            out.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
    return out


def functions() -> list[Any]:
    return [f for m in _modules() for f in getattr(m, "FUNCTIONS", [])]


def cron_jobs() -> list[Any]:
    return [c for m in _modules() for c in getattr(m, "CRON", [])]
