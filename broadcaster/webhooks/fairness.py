"""Pure scheduling between apps: each app with events gets its share of a routing or claim
round, and an app whose campaign batches are writing (broadcaster.pressure) gets only a
trickle, paced per app: fan-out first is that app's concern, never another app's wait."""

from __future__ import annotations

from collections.abc import Collection, Iterable

TRICKLE_RATE = 250.0  # events/s per app while its fan-out writes, all pumps together
TRICKLE_EVENTS = 250  # at most this many per round for such an app (a batch row is never split)


class Trickle:
    """Per app: when it may take its next trickle (only apps marked busy are paced)."""

    def __init__(self, rate: float = TRICKLE_RATE, burst: int = TRICKLE_EVENTS) -> None:
        self.rate, self.burst = rate, burst
        self._next: dict[int, float] = {}

    def budgets(self, apps: Iterable[int], busy: Collection[int], total: int, now: float) -> dict[int, int]:
        """Events each app may take this round: an even share of `total` for the apps not
        busy, `burst` for a busy app whose pace allows it, nothing for one that must wait."""
        apps = list(apps)
        free = [a for a in apps if a not in busy]
        share = max(1, total // max(1, len(free))) if free else 0
        out: dict[int, int] = {a: share for a in free}
        for a in apps:
            if a in busy and self._next.get(a, 0.0) <= now:
                out[a] = self.burst
        return out

    def spent(self, app: int, n: int, busy: Collection[int], now: float) -> None:
        """A busy app took n events: its next trickle is due once they are paid for."""
        if app in busy and n > 0:
            self._next[app] = max(self._next.get(app, 0.0), now) + n / self.rate
        if len(self._next) > 10_000:
            self._next = {a: t for a, t in self._next.items() if t > now}

    def wait(self, apps: Iterable[int], now: float) -> float:
        """Seconds until the first of these apps may trickle again (0 if one may now)."""
        times = [self._next.get(a, 0.0) - now for a in apps]
        return max(0.0, min(times)) if times else 0.0
