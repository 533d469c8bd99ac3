"""Pure functions for restart timing: exponential backoff and the OTP restart window.

Kept free of clocks and randomness sources so they can be tested exhaustively
(the supervisor passes `time.monotonic()` and `random.random()` in).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter.

    The n-th consecutive retry (n = 0, 1, ...) waits `min(cap, base * factor**n)`
    shortened by up to `jitter` of itself, so that many failing peers do not
    retry in lock step.
    """

    base: float = 0.05
    cap: float = 5.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError(f"backoff base and cap must be >= 0, got {self.base}, {self.cap}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter must be within [0, 1], got {self.jitter}")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        # Cap the exponent first: factor**attempt overflows a float near 1024.
        raw = self.cap if attempt >= 64 else min(self.cap, self.base * self.factor**attempt)
        return raw * (1.0 - self.jitter * rand())


def add_restart(
    restarts: tuple[float, ...], now: float, max_restarts: int, within_seconds: float
) -> tuple[tuple[float, ...], bool]:
    """Record a restart at `now` in the sliding window; say whether the limit is passed.

    Returns the restarts still inside `(now - within_seconds, now]` including
    this one, and True when they are more than `max_restarts` (OTP's
    `add_restart/1`: a supervisor allows `max_restarts` restarts in any
    window of `within_seconds`, and gives up on the next one).
    """
    window_start = now - within_seconds
    kept = (*(t for t in restarts if t > window_start), now)
    return kept, len(kept) > max_restarts
