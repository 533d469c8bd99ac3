"""The roles, the pieces that find denials, redaction and credentials: no server needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis_actors import ConnectionSettings, InstanceSettings, ServiceActor, Subjects, event, rpc
from aegis_actors._auth import (
    Credential,
    ServiceGrants,
    admin_role,
    client_role,
    fleet_roles,
    grants_of,
    render,
    service_role,
    viewer_role,
)
from aegis_actors._config_file import load_config
from aegis_actors._connection import redact
from aegis_actors._denials import Violation, parse_violation
from aegis_actors._mgmt.actor import VERBS
from aegis_actors._subjects import matcher, subject_matches
from tests.secure_support import nkey_seed


class Ledger(ServiceActor):
    service_name = "ledger-service"
    published_events = ("events.ledger.*",)
    own_buckets = ("ledger",)

    @event("events.order.created")
    async def on_order(self, payload: object) -> None: ...

    @event("events.pricing.>", broadcast=True)
    async def on_price(self, payload: object) -> None: ...

    @rpc
    async def post(self, params: object) -> None: ...


class TestRoles:
    """Each role gets the subjects the code uses, from the builders, in the namespace."""

    def test_a_service_writes_only_its_own_registry_and_leadership_keys(self) -> None:
        role = service_role(grants_of(Ledger), "ns1")
        writes = [s for s in role.publish if s.startswith("$KV.ns1-service-registry.")]
        assert writes == [
            "$KV.ns1-service-registry.service-instances.ledger-service.*",
            "$KV.ns1-service-registry.service-leadership.ledger-service.*",
        ]

    def test_a_service_serves_only_its_own_subjects(self) -> None:
        role = service_role(grants_of(Ledger), "ns1")
        assert role.subscribe == (
            "ns1.aegis.rpc.ledger-service.* ledger-service",
            "ns1.aegis.inst.ledger-service.*.*",
            "$SRV.PING", "$SRV.PING.ledger-service", "$SRV.PING.ledger-service.*",
            "$SRV.INFO", "$SRV.INFO.ledger-service", "$SRV.INFO.ledger-service.*",
            "$SRV.STATS", "$SRV.STATS.ledger-service", "$SRV.STATS.ledger-service.*",
            "ns1.events.order.created ledger-service",
            "ns1.events.pricing.>",
        )  # fmt: skip

    def test_a_service_publishes_the_events_it_declares_and_uses_its_own_buckets(
        self, tmp_path: Path
    ) -> None:
        role = service_role(grants_of(Ledger), "ns1")
        assert "ns1.events.ledger.*" in role.publish
        assert not any(s.startswith("ns1.events.") and "ledger" not in s for s in role.publish)
        assert "$KV.ns1-ledger.>" in role.publish
        assert "$JS.API.STREAM.CREATE.KV_ns1-ledger" in role.publish
        # No other bucket is written, and the config bucket is not read without a binding.
        kv = {s.split(".")[1] for s in role.publish if s.startswith("$KV.")}
        assert kv == {"ns1-service-registry", "ns1-ledger"}
        assert not any("aegis-config" in s for s in role.publish)

    def test_a_name_only_service_gets_no_events_or_buckets(self) -> None:
        role = service_role(ServiceGrants("audit-service"))
        assert not any(s.startswith("events.") for s in (*role.publish, *role.subscribe))

    def test_the_viewer_sends_only_read_verbs_and_the_admin_every_verb(self) -> None:
        subjects = Subjects("")
        every = {subjects.mgmt(r, v) for r, verbs in VERBS.items() for v in verbs}
        viewer = {s for s in viewer_role().publish if s.startswith("aegis.mgmt.")}
        admin = {s for s in admin_role().publish if s.startswith("aegis.mgmt.")}
        assert admin == every
        assert viewer == {s for s in every if s.rsplit(".", 1)[1] in ("get", "list", "history")}
        assert "aegis.rpc.>" not in viewer_role().publish

    def test_no_role_but_a_service_subscribes_beyond_its_inbox_or_writes_a_key(self) -> None:
        for role in (admin_role(), viewer_role(), client_role()):
            permissions = role.permissions()
            assert permissions.subscribe == (f"_INBOX.{role.user}.>",)
            assert not any(s.startswith("$KV.") for s in permissions.publish)
            assert not any(
                s.startswith("_INBOX") and role.user not in s for s in permissions.publish
            )

    def test_an_nkey_user_has_its_inbox_under_its_public_key(self) -> None:
        permissions = client_role().permissions("UABC")
        assert "_INBOX.UABC.>" in permissions.subscribe

    def test_a_service_named_like_a_role_is_refused(self) -> None:
        with pytest.raises(ValueError, match="name of a role"):
            fleet_roles([ServiceGrants("viewer")])

    def test_the_block_holds_no_secret_by_default(self) -> None:
        text = render(fleet_roles([grants_of(Ledger)]))
        assert "password: $AEGIS_PASSWORD_LEDGER_SERVICE" in text
        assert '"$JS.API.STREAM.INFO.KV_service-registry"' in text  # quoted: not a variable
        nkey = render([client_role()], {"client": Credential(nkey="UXYZ")})
        assert 'nkey: "UXYZ"' in nkey
        assert "_INBOX.UXYZ.>" in nkey


class TestDenials:
    """The server's violation text (as nats-py lowercases it) is read back."""

    @pytest.mark.parametrize(
        ("text", "violation"),
        [
            (
                'nats: permissions violation for publish to "aegis.mgmt.services.delete"',
                Violation("publish", "aegis.mgmt.services.delete"),
            ),
            (
                'nats: permissions violation for subscription to "a.b" using queue "q"',
                Violation("subscribe", "a.b", "q"),
            ),
            ("nats: authorization violation", None),
        ],
    )
    def test_parse(self, text: str, violation: Violation | None) -> None:
        assert parse_violation(text) == violation

    @pytest.mark.parametrize(
        ("pattern", "subject", "matches"),
        [
            ("a.*.c", "a.b.c", True),
            ("a.*.c", "a.b.c.d", False),
            ("a.>", "a.b.c", True),
            ("a.>", "a", False),
            ("a.b", "a.b", True),
            ("a.b", "a.c", False),
            ("x.a-*.c", "x.a-1.c", False),  # a wildcard is a whole token, as in NATS
        ],
    )
    def test_subject_matching(self, pattern: str, subject: str, matches: bool) -> None:
        assert subject_matches(pattern, subject) is matches
        assert matcher(pattern)(subject) is matches


class TestSecretsAreNeverShown:
    """Passwords and tokens in URLs are redacted wherever a URL is shown."""

    @pytest.mark.parametrize(
        ("text", "shown"),
        [
            ("nats://admin:pw@host:4222", "nats://admin:***@host:4222"),
            ("tls://t0ken@host", "tls://***@host"),
            (
                "at nats://a:b@h1, nats://c:d@h2: refused",
                "at nats://a:***@h1, nats://c:***@h2: refused",
            ),
            ("nats://host:4222", "nats://host:4222"),
        ],
    )
    def test_redact(self, text: str, shown: str) -> None:
        assert redact(text) == shown

    def test_reprs_and_validation_errors_hide_them(self) -> None:
        settings = ConnectionSettings(url="nats://admin:S3cretPw@host")
        instance = InstanceSettings(nats=settings)
        for text in (repr(settings), str(settings), repr(instance)):
            assert "S3cretPw" not in text
            assert "admin:***@host" in text
        with pytest.raises(ValueError, match="not several") as info:
            ConnectionSettings(user="u", password="S3cretPw", token="T0kenXyz")
        assert "S3cretPw" not in str(info.value)
        assert "T0kenXyz" not in str(info.value)


class TestIdentity:
    """Who a connection is, as messages name it, and the private inbox it uses."""

    def test_user_nkey_token_and_nothing(self, tmp_path: Path) -> None:
        seed, public = nkey_seed(tmp_path, "viewer")
        user = ConnectionSettings(user="viewer", password="x")
        assert (user.identity(), user.inbox()) == ("user viewer", "_INBOX.viewer")
        from_url = ConnectionSettings(url="nats://viewer:x@h")
        assert (from_url.identity(), from_url.inbox()) == ("user viewer", "_INBOX.viewer")
        nkey = ConnectionSettings(nkey_seed=seed)
        assert (nkey.identity(), nkey.inbox()) == (f"nkey {public} (viewer.nk)", f"_INBOX.{public}")
        token = ConnectionSettings(token="x")
        assert (token.identity(), token.inbox()) == ("token", "_INBOX")
        assert ConnectionSettings().identity() == "no credentials"
        assert ConnectionSettings(user="a", inbox_prefix="_INBOX_A").inbox() == "_INBOX_A"


class TestConfigFile:
    """`[services.nats]` replaces the fleet's credential for that service only."""

    def test_a_service_credential_replaces_the_fleets(self, tmp_path: Path) -> None:
        seed, _ = nkey_seed(tmp_path, "pricing")
        path = tmp_path / "fleet.toml"
        path.write_text(
            '[nats]\nurl = "nats://h:4222"\nuser = "admin"\npassword = "pw"\n'
            '[[services]]\nclass = "services.trading.pricing:PricingService"\n'
            f'nats = {{ nkey_seed = "{seed}" }}\n'
            '[[services]]\nclass = "services.trading.risk:RiskService"\n'
        )
        config = load_config(path, environ={})
        pricing, risk = (s.instance_settings(config.connection(), "") for s in config.services)
        assert (pricing.nats.user, pricing.nats.nkey_seed, pricing.nats.url) == (
            None, seed, "nats://h:4222",
        )  # fmt: skip
        assert (risk.nats.user, risk.nats.nkey_seed) == ("admin", None)

    def test_missing_key_files_are_named_with_their_keys(self, tmp_path: Path) -> None:
        path = tmp_path / "fleet.toml"
        path.write_text(
            f'[embedded]\nauth = "{tmp_path}/auth.conf"\n'
            '[[services]]\nclass = "services.trading.pricing:PricingService"\n'
            f'nats = {{ nkey_seed = "{tmp_path}/pricing.nk" }}\n'
        )
        config = load_config(path, environ={})  # loads: `aegis auth` reads it to write them
        assert config.missing_files() == [
            f"{tmp_path}/auth.conf (embedded.auth)",
            f"{tmp_path}/pricing.nk (services[0].nats.nkey_seed)",
        ]


class TestPublishedEvents:
    """A service that declares its events may publish no other."""

    async def test_publish_outside_the_declaration_is_refused(self) -> None:
        ledger = Ledger.__new__(Ledger)
        with pytest.raises(ValueError, match="published_events"):
            await ledger.publish_event("events.order.created", {})

    def test_a_bad_declaration_fails_at_class_creation(self) -> None:
        with pytest.raises(ValueError, match="event"):

            class Bad(ServiceActor):
                service_name = "bad-service"
                published_events = ("orders.created",)
