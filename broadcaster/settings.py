"""Process configuration, read once from BROADCASTER_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from broadcaster.domain.links import Tracking


def _env(name: str, default: str) -> str:
    return os.environ.get(f"BROADCASTER_{name}", default)


DEFAULT_CURSOR_SECRET = "broadcaster-cursor-key"


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/broadcaster"
    redis_url: str = "redis://127.0.0.1:6379/0"
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 16 * 1024 * 1024
    pool_min: int = 2
    pool_max: int = 10
    log_level: str = "INFO"
    docs_url: str = "docs/errors.md"
    # Secret used to sign opaque pagination cursors (HMAC); per deployment. `serve` replaces
    # the built-in default by a per-installation key kept in PostgreSQL (installation.py).
    cursor_secret: str = DEFAULT_CURSOR_SECRET
    # HMAC key of click-tracking tokens (/c/<token>); empty = derived from cursor_secret.
    link_secret: str = ""
    # Base of tracked links in messages; empty = the API's own http://host:port.
    public_url: str = ""
    # arq queue name; tests give each run its own.
    queue_name: str = "broadcaster:queue"
    # Fan-out batch size (recipients per job / transaction).
    batch_size: int = 2000
    # Concurrent jobs per worker. On 2 cores, 8 concurrent batch writes mostly queue on
    # PostgreSQL's WAL and buffer locks; 6 leaves ~4 batches in flight next to the webhook
    # pump and the planner: ~15-20 % faster than 4 or 8 in back-to-back scripts/perf_fanout.py runs.
    worker_max_jobs: int = 6
    # While other apps have campaigns in progress, one app's batches run in at most this
    # share of a worker's job slots (at least one); alone, an app may use them all.
    app_slot_share: float = 0.5
    worker_metrics_port: int = 0
    webhook_timeout_s: float = 15.0
    webhook_retry_hours: float = 24.0
    # Webhooks to loopback/private/link-local addresses (webhooks/egress.py); `broadcaster dev`
    # and the tests' local receivers need it, a deployment should not.
    webhook_allow_private: bool = False
    webhook_retention_days: float = 7.0
    # Operator ceilings on what tenants may set in PATCH /app (0 = no ceiling).
    max_rate_limit_per_min: int = 0
    max_send_rate: float = 0.0
    # Refuse server tokens whose iat is older than this (and tokens without iat); 0 = off.
    max_token_age_s: float = 0.0
    # Bearer token GET /metrics requires when set.
    metrics_token: str = ""
    # Key encrypting app secrets at rest (secretbox.py) when set.
    secret_key: str = ""
    # Keep the built-in cursor key (dev, tests); otherwise `serve` uses a per-installation one.
    allow_insecure_defaults: bool = False
    # Behind a TLS-terminating proxy: its X-Forwarded-Proto: https makes dashboard cookies Secure.
    trust_forwarded_proto: bool = False
    # How often the API's click drainer looks at the outbox when no click woke it (seconds);
    # click_drainer off: this API process appends clicks but leaves applying them to others.
    click_drain_s: float = 1.0
    click_drainer: bool = True
    # How long a start call waits for its audience to be fixed before answering the campaign
    # in progress with its audience still being copied (services/planning.py); below the
    # stream-chat SDKs' 6 s client timeout.
    start_wait_s: float = 3.0
    # The API's per-statement client timeout: no request copies an audience any more, so a
    # hung PostgreSQL fails a request after this instead of after 120 s.
    api_command_timeout_s: float = 30.0
    # A campaign with more ledger or audience rows than this is deleted in the background
    # (store/purges.py) so that its delete answers within the statement timeout above.
    delete_inline_max: int = 50_000
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        d = cls()
        return cls(
            database_url=_env("DATABASE_URL", d.database_url),
            redis_url=_env("REDIS_URL", d.redis_url),
            host=_env("HOST", d.host),
            port=int(_env("PORT", str(d.port))),
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(d.max_body_bytes))),
            pool_min=int(_env("POOL_MIN", str(d.pool_min))),
            pool_max=int(_env("POOL_MAX", str(d.pool_max))),
            log_level=_env("LOG_LEVEL", d.log_level),
            docs_url=_env("DOCS_URL", d.docs_url),
            cursor_secret=_env("CURSOR_SECRET", d.cursor_secret),
            link_secret=_env("LINK_SECRET", d.link_secret),
            public_url=_env("PUBLIC_URL", d.public_url),
            queue_name=_env("QUEUE_NAME", d.queue_name),
            # a batch's message ids number its rows in 5 hex digits (ids.SEQ_MAX)
            batch_size=max(1, min(100_000, int(_env("BATCH_SIZE", str(d.batch_size))))),
            worker_max_jobs=int(_env("WORKER_MAX_JOBS", str(d.worker_max_jobs))),
            app_slot_share=max(0.0, min(1.0, float(_env("APP_SLOT_SHARE", str(d.app_slot_share))))),
            worker_metrics_port=int(_env("WORKER_METRICS_PORT", str(d.worker_metrics_port))),
            webhook_timeout_s=float(_env("WEBHOOK_TIMEOUT_S", str(d.webhook_timeout_s))),
            webhook_retry_hours=float(_env("WEBHOOK_RETRY_HOURS", str(d.webhook_retry_hours))),
            max_rate_limit_per_min=max(0, int(_env("MAX_RATE_LIMIT_PER_MIN", str(d.max_rate_limit_per_min)))),
            max_send_rate=max(0.0, float(_env("MAX_SEND_RATE", str(d.max_send_rate)))),
            max_token_age_s=max(0.0, float(_env("MAX_TOKEN_AGE_S", str(d.max_token_age_s)))),
            metrics_token=_env("METRICS_TOKEN", d.metrics_token),
            secret_key=_env("SECRET_KEY", d.secret_key),
            allow_insecure_defaults=_env("ALLOW_INSECURE_DEFAULTS", "0").strip().lower() in ("1", "true", "yes"),
            trust_forwarded_proto=_env("TRUST_FORWARDED_PROTO", "0").strip().lower() in ("1", "true", "yes"),
            webhook_allow_private=_env("WEBHOOK_ALLOW_PRIVATE", "0").strip().lower() in ("1", "true", "yes"),
            webhook_retention_days=float(_env("WEBHOOK_RETENTION_DAYS", str(d.webhook_retention_days))),
            click_drain_s=max(0.01, float(_env("CLICK_DRAIN_S", str(d.click_drain_s)))),
            click_drainer=_env("CLICK_DRAINER", "1").strip().lower() in ("1", "true", "yes"),
            start_wait_s=max(0.0, float(_env("START_WAIT_S", str(d.start_wait_s)))),
            api_command_timeout_s=max(1.0, float(_env("API_COMMAND_TIMEOUT_S", str(d.api_command_timeout_s)))),
            delete_inline_max=max(0, int(_env("DELETE_INLINE_MAX", str(d.delete_inline_max)))),
        )

    @property
    def click_secret(self) -> str:
        return self.link_secret or "click-links:" + self.cursor_secret

    @property
    def links_base(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def tracking(self) -> Tracking:
        return Tracking(self.links_base, self.click_secret)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment that makes a child process see these settings."""
        return {
            "BROADCASTER_DATABASE_URL": self.database_url,
            "BROADCASTER_REDIS_URL": self.redis_url,
            "BROADCASTER_HOST": self.host,
            "BROADCASTER_PORT": str(self.port),
            "BROADCASTER_MAX_BODY_BYTES": str(self.max_body_bytes),
            "BROADCASTER_CURSOR_SECRET": self.cursor_secret,
            "BROADCASTER_LINK_SECRET": self.link_secret,
            "BROADCASTER_PUBLIC_URL": self.public_url,
            "BROADCASTER_QUEUE_NAME": self.queue_name,
            "BROADCASTER_BATCH_SIZE": str(self.batch_size),
            "BROADCASTER_WORKER_MAX_JOBS": str(self.worker_max_jobs),
            "BROADCASTER_APP_SLOT_SHARE": str(self.app_slot_share),
            "BROADCASTER_WORKER_METRICS_PORT": str(self.worker_metrics_port),
            "BROADCASTER_WEBHOOK_TIMEOUT_S": str(self.webhook_timeout_s),
            "BROADCASTER_WEBHOOK_RETRY_HOURS": str(self.webhook_retry_hours),
            "BROADCASTER_MAX_RATE_LIMIT_PER_MIN": str(self.max_rate_limit_per_min),
            "BROADCASTER_MAX_SEND_RATE": str(self.max_send_rate),
            "BROADCASTER_MAX_TOKEN_AGE_S": str(self.max_token_age_s),
            "BROADCASTER_METRICS_TOKEN": self.metrics_token,
            "BROADCASTER_SECRET_KEY": self.secret_key,
            "BROADCASTER_ALLOW_INSECURE_DEFAULTS": "1" if self.allow_insecure_defaults else "0",
            "BROADCASTER_TRUST_FORWARDED_PROTO": "1" if self.trust_forwarded_proto else "0",
            "BROADCASTER_WEBHOOK_ALLOW_PRIVATE": "1" if self.webhook_allow_private else "0",
            "BROADCASTER_WEBHOOK_RETENTION_DAYS": str(self.webhook_retention_days),
            "BROADCASTER_LOG_LEVEL": self.log_level,
            "BROADCASTER_CLICK_DRAIN_S": str(self.click_drain_s),
            "BROADCASTER_CLICK_DRAINER": "1" if self.click_drainer else "0",
            "BROADCASTER_START_WAIT_S": str(self.start_wait_s),
            "BROADCASTER_API_COMMAND_TIMEOUT_S": str(self.api_command_timeout_s),
            "BROADCASTER_DELETE_INLINE_MAX": str(self.delete_inline_max),
        }
