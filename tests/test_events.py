"""Durable events without a server: declaring handlers, their options, the wire details."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.js import api

from aegis_actors import DeliverPolicy, EventsSettings, ServiceActor, event
from aegis_actors._config_file import load_config
from aegis_actors._endpoints import endpoints_of
from aegis_actors._errors import ConfigError
from aegis_actors._events.context import EventContext, parse_ack_subject
from aegis_actors._events.flow import nak
from aegis_actors._events.streams import ConsumerSpec, consumer_name
from aegis_actors._telemetry.context import new_root


class TestDeclaring:
    """`@event(durable=True)` checks its options when the class is defined."""

    def test_durable_options_need_durable(self) -> None:
        with pytest.raises(ValueError, match="max_deliver, ack_wait: options of durable handlers"):
            event("events.order.*", max_deliver=3, ack_wait=5)

    def test_a_durable_pattern_names_its_domain(self) -> None:
        with pytest.raises(ValueError, match="must name its domain"):
            event("events.*.created", durable=True)
        with pytest.raises(ValueError, match="must name its domain"):
            event("events.*.>", durable=True)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"max_deliver": 0}, "max_deliver must be an int >= 1"),
            ({"backoff": ()}, "backoff must be a non-empty sequence"),
            ({"backoff": (1, -1)}, "backoff must be a non-empty sequence"),
            ({"ack_wait": 0.5}, "ack_wait must be >= 1 second"),
            ({"prefetch": 2000}, "prefetch must be an int from 1 to max_ack_pending"),
            ({"deliver": "first"}, "deliver must be one of"),
            ({"deliver": 0}, "deliver as a stream sequence must be >= 1"),
            ({"deliver": datetime(2026, 1, 1)}, "must be timezone-aware"),
        ],
    )
    def test_bad_options_say_what_is_valid(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            event("events.order.*", durable=True, **options)

    def test_dedupe_and_max_concurrency_are_checked(self) -> None:
        with pytest.raises(ValueError, match="dedupe must be a whole number"):
            event("events.order.*", dedupe=0)
        with pytest.raises(ValueError, match="max_concurrency must be an int >= 1"):
            event("events.order.*", max_concurrency=0)

    def test_the_handler_keeps_its_name_and_options(self) -> None:
        class Shop(ServiceActor):
            service_name = "shop"

            @event("events.order.*", durable=True, backoff=2, deliver="new", dedupe=30)
            async def on_order(self, payload: dict[str, Any]) -> None:
                """Count orders."""

            @event("events.price.*")
            async def on_price(self) -> None: ...

        durable, core = sorted(endpoints_of(Shop).events, key=lambda h: h.name)
        assert (durable.name, durable.description, durable.dedupe) == (
            "on_order",
            "Count orders.",
            30,
        )
        assert durable.durable is not None
        assert (durable.durable.backoff, durable.durable.deliver) == ((2,), DeliverPolicy.NEW)
        assert durable.durable.redelivery_delay(1) == durable.durable.redelivery_delay(9) == 2
        assert core.durable is None


class TestWire:
    """What travels: ack subjects, verdicts, consumer configs."""

    def test_both_forms_of_ack_subject_are_read(self) -> None:
        v1 = parse_ack_subject("$JS.ACK.events-order.shop_on_order.3.42.40.1796023792529332814.0")
        assert v1 is not None
        assert (v1.stream, v1.consumer, v1.delivered, v1.sequence) == (
            "events-order", "shop_on_order", 3, 42
        )  # fmt: skip
        v2 = parse_ack_subject("$JS.ACK.hub.ACC.events-order.shop_on_order.1.7.7.17960.0.x1")
        assert v2 is not None
        assert (v2.stream, v2.delivered, v2.sequence) == ("events-order", 1, 7)
        assert parse_ack_subject("_INBOX.abc") is None
        assert parse_ack_subject("$JS.ACK.a.b.c.d.e.f.g") is None

    def test_verdicts(self) -> None:
        assert nak(0) == b"-NAK"
        assert nak(1.5) == b'-NAK {"delay": 1500000000}'

    def test_consumer_names_and_start_positions(self) -> None:
        assert consumer_name("shop", "on_order") == "shop_on_order"
        assert consumer_name("shop", "on_order", "shop-1a2b3c4d") == "shop-1a2b3c4d_on_order"
        handler = endpoints_of(_Replaying).events[0]
        assert handler.durable is not None
        spec = ConsumerSpec(
            "events-order", "shop_on_order", "events.order.*", handler.durable, False
        )
        config = spec.config()
        assert (config.deliver_policy, config.opt_start_time) == (
            api.DeliverPolicy.BY_START_TIME, datetime(2026, 11, 1, tzinfo=UTC)
        )  # fmt: skip
        assert (config.max_deliver, config.ack_policy) == (-1, api.AckPolicy.EXPLICIT)
        resumed = spec.config(start=43)
        assert (resumed.deliver_policy, resumed.opt_start_seq) == (
            api.DeliverPolicy.BY_START_SEQUENCE, 43
        )  # fmt: skip

    def test_retry_later_is_for_durable_events(self) -> None:
        trace = new_root()
        core = EventContext("events.order.created", "on_order", None, None, trace, trace.trace_id)
        with pytest.raises(RuntimeError, match="needs a durable event"):
            core.retry_later(1)
        durable = EventContext(
            "x", "on_order", None, None, trace, trace.trace_id, stream="events-order", sequence=1
        )
        durable.retry_later(2)
        assert durable._retry_after == 2.0


class _Replaying(ServiceActor):
    service_name = "replaying"

    @event("events.order.*", durable=True, deliver=datetime(2026, 11, 1, tzinfo=UTC))
    async def on_order(self) -> None: ...


class TestSettings:
    """`[events]` in a config file: defaults, per-domain overrides, what is explicit."""

    def test_domain_limits_override_the_section_and_count_as_explicit(self) -> None:
        settings = EventsSettings(max_age=60, domains={"order": {"max_bytes": 1024}})
        limits, explicit = settings.limits("order")
        assert (limits["max_age"], limits["max_bytes"], limits["duplicate_window"]) == (
            60,
            1024,
            120,
        )
        assert explicit == {"max_age", "max_bytes"}
        assert settings.limits("price")[1] == {"max_age"}

    def test_a_config_file_section_is_read_and_checked(self, tmp_path: Path) -> None:
        path = tmp_path / "fleet.toml"
        service = '[[services]]\nclass = "aegis_actors:ManagementService"\n'
        path.write_text(
            f"[events]\nmax_age = 3600\n[events.domains.order]\nreplicas = 3\n{service}"
        )
        events = load_config(path).fleet.events
        assert (events.max_age, events.domains["order"].replicas) == (3600, 3)
        path.write_text(f'[events.domains."a.b"]\nmax_age = 1\n{service}')
        with pytest.raises(
            ConfigError, match=r"events\.domains: Value error, domain 'a\.b' must match"
        ):
            load_config(path)


class TestGrants:
    """`aegis auth`: a service with durable handlers may use its own consumers, and no other."""

    def test_a_durable_handler_gets_its_stream_and_consumer_and_no_core_subscription(
        self,
    ) -> None:
        from aegis_actors._auth import grants_of, service_role

        class Books(ServiceActor):
            service_name = "books"

            @event("events.order.*", durable=True, dedupe=60)
            async def on_order(self) -> None: ...

            @event("events.order.*", durable=True, broadcast=True)
            async def on_any(self) -> None: ...

        role = service_role(grants_of(Books), "ns")
        assert "$JS.API.CONSUMER.MSG.NEXT.ns-events-order.books_on_order" in role.publish
        assert "$JS.ACK.ns-events-order.books_on_order.>" in role.publish
        assert "$JS.API.CONSUMER.CREATE.ns-events-order.*" in role.publish  # broadcast
        assert "$JS.API.STREAM.CREATE.ns-aegis-dead-letters" in role.publish
        assert "ns.aegis.dead.books.*" in role.publish
        assert "$KV.ns-aegis-event-dedupe.>" in role.publish
        assert "ns.aegis.events.replay.books books" in role.subscribe
        assert not any(s.startswith("ns.events.") for s in role.subscribe)
