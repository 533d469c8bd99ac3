"""Pure restart timing: backoff delays and the OTP restart window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegis_actors._backoff import Backoff, add_restart


class TestBackoff:
    """Delays double per attempt up to the cap, shortened by at most `jitter` of themselves."""

    def test_delays_double_until_the_cap_without_jitter(self) -> None:
        backoff = Backoff(base=0.1, cap=1.0, jitter=0.0)
        assert [backoff.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])

    @given(
        attempt=st.integers(0, 5000),
        rand=st.floats(0.0, 1.0, exclude_max=True),
        jitter=st.floats(0.0, 1.0),
    )
    def test_delay_stays_within_the_jitter_band(
        self, attempt: int, rand: float, jitter: float
    ) -> None:
        backoff = Backoff(base=0.05, cap=5.0, jitter=jitter)
        full = min(5.0, 0.05 * 2.0 ** min(attempt, 64))
        delay = backoff.delay(attempt, lambda: rand)
        assert full * (1 - jitter) - 1e-12 <= delay <= full + 1e-12

    @pytest.mark.parametrize(
        "kwargs",
        [{"base": -1}, {"cap": -1}, {"factor": 0.5}, {"jitter": 1.5}, {"jitter": -0.1}],
    )
    def test_bad_settings_are_refused(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(ValueError, match="backoff"):
            Backoff(**kwargs)

    def test_negative_attempt_is_refused(self) -> None:
        with pytest.raises(ValueError, match="attempt"):
            Backoff().delay(-1)


def _brute_force_exceeded(times: list[float], max_restarts: int, within: float) -> bool:
    """Model: after the last restart, more than max_restarts lie in (last - within, last]."""
    last = times[-1]
    return sum(1 for t in times if t > last - within) > max_restarts


class TestRestartWindow:
    """add_restart keeps a sliding window and says when the intensity is passed."""

    def test_fourth_restart_within_the_window_passes_a_limit_of_three(self) -> None:
        window: tuple[float, ...] = ()
        results = []
        for now in (0.0, 1.0, 2.0, 3.0):
            window, exceeded = add_restart(window, now, 3, 5.0)
            results.append(exceeded)
        assert results == [False, False, False, True]

    def test_old_restarts_leave_the_window(self) -> None:
        window, _ = add_restart((), 0.0, 1, 5.0)
        window, exceeded = add_restart(window, 5.0, 1, 5.0)
        assert not exceeded
        assert window == (5.0,)

    def test_zero_max_restarts_gives_up_at_the_first(self) -> None:
        assert add_restart((), 1.0, 0, 5.0)[1]

    @given(
        gaps=st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=40),
        max_restarts=st.integers(0, 6),
        within=st.floats(0.01, 20.0, allow_nan=False),
    )
    def test_matches_the_brute_force_model_at_every_step(
        self, gaps: list[float], max_restarts: int, within: float
    ) -> None:
        window: tuple[float, ...] = ()
        now = 0.0
        history: list[float] = []
        for gap in gaps:
            now += gap
            history.append(now)
            window, exceeded = add_restart(window, now, max_restarts, within)
            assert exceeded == _brute_force_exceeded(history, max_restarts, within)
            assert all(now - within < t <= now for t in window)
