"""How many requests a receiver gets at once (pure): AIMD with a latency signal.

A receiver starts with START requests in flight. While its answers come back promptly, the
window grows: by one per prompt answer below the slow-start threshold (doubling each round
trip), by one per window's worth of answers above it. "Prompt" is relative to the fastest
answer seen lately (the base latency), so a receiver that always takes 2 s is not mistaken for
an overloaded one, while a queue building up in a small server (its latency climbing
towards the timeout) stops the growth and then cuts the window before anything times out.
Growth needs a window in use (as many in flight as it allows) and waits COOL_S after a cut:
a connection dropped by a full listen backlog (5 in Python's http.server) is only seen when
the SYN is sent again a second later. Doubling stops at SLOW_START_TO.
A timeout, connection error, 429 or 5xx halves the window, at most once per round trip (the
answers to requests sent before the cut do not cut again). After DOWN_AFTER rounds of
timeouts or connection errors with no success (a receiver answering 5xx is up, just
unhappy), it is down: one probe request at a time, PROBE_FIRST_S apart,
doubling up to PROBE_CAP_S; the first success ends that and slow start begins again from
START, so a backlog drains at the rate the receiver takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K")

START = 2.0
MAX_WINDOW = 256.0
SLOW_START_TO = 8.0  # doubling per round trip only this far; then +1 per round trip
PROMPT_FACTOR = 2.0  # an answer within 2x base latency + PROMPT_SLACK_S is prompt
PROMPT_SLACK_S = 0.02
SLOW_FACTOR = 4.0  # beyond 4x base + SLOW_SLACK_S (or half the timeout): cut as for a failure
SLOW_SLACK_S = 0.25
COOL_S = 1.0  # no growth this long after a cut (a dropped SYN shows up a second late)
DOWN_AFTER = 5
PROBE_FIRST_S = 1.0
PROBE_CAP_S = 15.0


@dataclass
class Window:
    timeout_s: float
    size: float = START
    threshold: float = SLOW_START_TO
    inflight: int = 0
    base_s: float | None = None
    cut_at: float = -1e18  # when the window was last cut (monotonic seconds)
    failures: int = 0  # in a row, since the last success
    down: bool = False
    probe_at: float = 0.0
    probe_wait_s: float = 0.0

    def free(self, now: float) -> int:
        """How many more requests may start now."""
        if self.down:
            return 1 if self.inflight == 0 and now >= self.probe_at else 0
        return max(0, int(self.size) - self.inflight)

    def started(self, n: int = 1) -> None:
        self.inflight += n

    def returned(self, n: int = 1) -> None:
        """Taken slots given back without a request (rows that could not be sent)."""
        self.inflight = max(0, self.inflight - n)

    def answered(self, ok: bool, latency_s: float, sent_at: float, now: float,
                 reached: bool = True) -> None:
        """One request finished: ok = 2xx (or a final 4xx: the receiver is up and answering);
        otherwise a 429 or 5xx (reached) or a timeout or connection error (not reached)."""
        self.inflight = max(0, self.inflight - 1)
        if ok:
            self.failures = 0
            if self.down:
                self.down, self.probe_wait_s = False, 0.0
                self.size, self.threshold = START, SLOW_START_TO
                self.cut_at = now
            base = self.base_s
            if base is None or latency_s < base:
                self.base_s = base = latency_s
            else:  # drift up slowly so that a faster past does not hold the window down forever
                self.base_s = base = base + (latency_s - base) * 0.01
            slow = max(base * SLOW_FACTOR + SLOW_SLACK_S, 0.0)
            if latency_s > min(slow, self.timeout_s / 2):
                self._cut(sent_at, now)
            elif (latency_s <= base * PROMPT_FACTOR + PROMPT_SLACK_S
                  and self.inflight + 1 >= int(self.size)  # only a window in use has shown it fits
                  and now - self.cut_at >= max(COOL_S, 2 * latency_s)):
                grow = 1.0 if self.size < self.threshold else 1.0 / self.size
                self.size = min(MAX_WINDOW, self.size + grow)
            return
        fresh = sent_at >= self.cut_at  # a burst of failures from one window counts once
        self._cut(sent_at, now)
        if reached:
            self.failures = 0
            if self.down:  # it answers again
                self.down, self.probe_wait_s = False, 0.0
                self.size = 1.0
            return
        if fresh:
            self.failures += 1
        if self.down:  # a failed probe: wait longer before the next one
            self.probe_wait_s = min(PROBE_CAP_S, max(PROBE_FIRST_S, self.probe_wait_s * 2))
            self.probe_at = now + self.probe_wait_s
        elif self.failures >= DOWN_AFTER:
            self.down = True
            self.probe_wait_s = PROBE_FIRST_S
            self.probe_at = now + PROBE_FIRST_S

    def _cut(self, sent_at: float, now: float) -> None:
        if sent_at < self.cut_at:  # sent before the last cut: that cut accounted for it
            return
        self.size = max(1.0, self.size / 2)
        self.threshold = self.size
        self.cut_at = now


def window_for(windows: dict[K, Window], key: K, timeout_s: float, keep: int = 100_000) -> Window:
    """The window of `key`, made on first use; past `keep` windows, idle ones are dropped."""
    w = windows.get(key)
    if w is None:
        if len(windows) > keep:
            for k in [k for k, v in windows.items() if not v.inflight][:keep // 2]:
                del windows[k]
        w = windows[key] = Window(timeout_s)
    return w
