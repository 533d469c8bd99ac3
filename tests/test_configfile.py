"""Config files: valid ones load; every kind of mistake names the file, the key and why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aegis_actors import ConfigError, Strategy
from aegis_actors._config_file import ENV_OVERRIDES, load_config
from aegis_actors._runtime import plan_fleet

HELLO = '[[services]]\nclass = "tests.fleet_services:Hello"\n'


Write = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def write(text: str) -> Path:
        path = tmp_path / "fleet.toml"
        path.write_text(text)
        return path

    return write


class TestValidFiles:
    """A valid file becomes frozen models, with every class imported and checked."""

    def test_a_minimal_file_takes_the_defaults(self, write: Write) -> None:
        config = load_config(write(HELLO), environ={})
        fleet = config.fleet
        assert fleet.name == "fleet"
        assert fleet.embedded_server
        assert fleet.supervisor.strategy is Strategy.ONE_FOR_ONE
        (service,) = config.services
        assert service.name == "hello"
        assert service.config.instances == 1
        assert service.config.heartbeat.ttl == 30

    def test_a_full_file(self, write: Write) -> None:
        path = write(
            """
name = "trading"
namespace = "staging"

[nats]
url = ["nats://a:4222", "nats://b:4222"]
token = "secret"

[supervisor]
strategy = "rest_for_one"
max_restarts = 10
within_seconds = 60

[[services]]
class = "tests.fleet_services:Hello"
instances = 3
version = "2.0.0"
[services.heartbeat]
ttl = 5
interval = 1

[[services]]
class = "tests.fleet_services:Configured"
[services.settings]
max_quantity = 7
"""
        )
        config = load_config(path, environ={})
        assert config.fleet.supervisor.strategy is Strategy.REST_FOR_ONE
        assert config.connection().servers == ["nats://a:4222", "nats://b:4222"]
        plans = plan_fleet(config)
        assert [len(p) for p in plans.values()] == [3, 1]
        hello = plans["hello"][0]
        assert hello.version == "2.0.0"
        assert hello.settings.namespace == "staging"
        assert hello.settings.heartbeat.interval == 1
        assert plans["configured"][0].service_settings.max_quantity == 7
        assert len({p.instance_id for p in plans["hello"]}) == 3

    def test_a_sticky_active_group_with_its_leadership_timing(self, write: Write) -> None:
        path = write(
            '[nats]\nurl = "nats://x:4222"\n'
            + HELLO
            + 'instances = 2\nsticky_active_group = "eu-1"\n'
            + "[services.leadership]\nttl = 5\ninterval = 1.5\nmargin = 1\n"
        )
        plans = plan_fleet(load_config(path, environ={}))["hello"]
        assert [p.sticky_active_group for p in plans] == ["eu-1", "eu-1"]
        assert plans[0].instance.sticky_active_group == "eu-1"
        leadership = plans[0].settings.leadership
        assert (leadership.ttl, leadership.interval, leadership.margin) == (5, 1.5, 1.0)

    def test_environment_overrides_the_file(self, write: Write) -> None:
        path = write('namespace = "file"\n[nats]\nurl = "nats://file:4222"\n' + HELLO)
        env = {"AEGIS_NATS_URL": "nats://x:1, nats://y:2", "AEGIS_NAMESPACE": "env"}
        config = load_config(path, environ=env)
        assert config.connection().servers == ["nats://x:1", "nats://y:2"]
        assert config.fleet.namespace == "env"
        assert not config.fleet.embedded_server

    def test_a_trailing_comma_in_the_url_variable_leaves_one_url(self, write: Write) -> None:
        config = load_config(write(HELLO), environ={"AEGIS_NATS_URL": " nats://x:1, "})
        assert config.fleet.nats.url == "nats://x:1"
        assert config.connection().servers == ["nats://x:1"]

    def test_blanks_between_commas_are_dropped(self, write: Write) -> None:
        config = load_config(write(HELLO), environ={"AEGIS_NATS_URL": "nats://x:1,,nats://y:2,"})
        assert config.connection().servers == ["nats://x:1", "nats://y:2"]

    def test_a_comma_separated_url_in_the_file_is_a_list_of_servers(self, write: Write) -> None:
        path = write('[nats]\nurl = "nats://x:1, nats://y:2,"\n' + HELLO)
        config = load_config(path, environ={})
        assert config.connection().servers == ["nats://x:1", "nats://y:2"]
        path = write('[nats]\nurl = ["nats://x:1", " "]\n' + HELLO)
        assert load_config(path, environ={}).connection().servers == ["nats://x:1"]


class TestMistakes:
    """Each mistake is a ConfigError with the file, the key and what was expected."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("name = [", "not valid TOML"),
            ("bogus = 1\n" + HELLO, "bogus: Extra inputs are not permitted"),
            ("", "services: Field required"),
            ("services = []", "services: List should have at least 1 item"),
            (
                HELLO + "instances = 0\n",
                "services[0].instances: Input should be greater than or equal to 1 (got 0)",
            ),
            (
                HELLO + 'instances = "two"\n',
                "services[0].instances: Input should be a valid integer",
            ),
            (HELLO + "colour = 1\n", "services[0].colour: Extra inputs are not permitted"),
            (
                HELLO + 'version = "1.0"\n',
                "services[0].version: Value error, version must be MAJOR.MINOR.PATCH",
            ),
            (
                '[[services]]\nclass = "no colon"\n',
                "services[0].class: String should match pattern",
            ),
            (
                '[[services]]\nclass = "no.such.module:X"\n',
                "services[0].class: cannot import 'no.such.module'",
            ),
            ('[[services]]\nclass = "tests.fleet_services:Nope"\n', "has no 'Nope'"),
            (
                '[[services]]\nclass = "tests.fleet_services:NotAService"\n',
                "is not a ServiceActor subclass",
            ),
            (HELLO + HELLO, "services[1].class: service 'hello' is already run by services[0]"),
            (
                HELLO + "[services.heartbeat]\nttl = 5\ninterval = 5\n",
                "services[0].heartbeat: Value error, heartbeat interval",
            ),
            (
                HELLO + 'sticky_active_group = "eu.west"\n',
                "services[0].sticky_active_group: Value error, sticky-active group 'eu.west'",
            ),
            (
                HELLO + "[services.leadership]\nttl = 2\ninterval = 1\n",
                "services[0].leadership: Value error, leadership interval (1 s) plus margin",
            ),
            (
                '[[services]]\nclass = "tests.fleet_services:Configured"\n[services.settings]\nmax_quantity = 0\n',
                "services[0].settings.max_quantity: Input should be greater than 0 (got 0)",
            ),
            (
                '[supervisor]\nstrategy = "all_at_once"\n' + HELLO,
                "supervisor.strategy: Input should be",
            ),
            ('namespace = "Has Space"\n' + HELLO, "namespace: Value error, namespace"),
            (
                '[nats]\nurl = "nats://x"\npassword = "p"\n' + HELLO,
                "nats: Value error, password needs user",
            ),
            ('[nats]\nurl = " , "\n' + HELLO, "nats.url: Value error, needs at least one"),
            (
                '[[services]]\nclass = "tests.fleet_services:Configured"\n[services.settings]\n'
                "max_quantity = 5\nmax_quantiy = 7\n",
                "services[0].settings.max_quantiy: not a setting of Limits (its settings: "
                "max_quantity)",
            ),
            (
                "[embedded]\nport = 70000\n" + HELLO,
                "embedded.port: Input should be less than or equal to 65535",
            ),
        ],
    )
    def test_mistake(self, write: Write, text: str, expected: str) -> None:
        path = write(text)
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
        message = str(info.value)
        assert message.startswith(f"{path}: ")
        assert expected in message

    @pytest.mark.parametrize("variable", [v for v, keys in ENV_OVERRIDES.items() if len(keys) > 1])
    @pytest.mark.parametrize("nats", ['"nats://file:4222"', '["nats://file:4222"]', "4222"])
    def test_a_nats_key_that_is_no_table_is_reported_with_an_override_set(
        self, write: Write, variable: str, nats: str
    ) -> None:
        path = write(f"nats = {nats}\n" + HELLO)
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={variable: "nats://env:4222"})
        assert str(info.value).startswith(f"{path}: nats: Input should be a valid dictionary")

    def test_a_url_variable_with_no_url_in_it_is_named(self, write: Write) -> None:
        with pytest.raises(ConfigError, match=r"AEGIS_NATS_URL: no URL in ' , '"):
            load_config(write(HELLO), environ={"AEGIS_NATS_URL": " , "})

    def test_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="no such file"):
            load_config(tmp_path / "nope.toml")

    def test_every_mistake_is_reported_at_once(self, write: Write) -> None:
        path = write("[supervisor]\nmax_restarts = -1\n" + HELLO + "instances = 0\n")
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
        lines = str(info.value).splitlines()
        assert len(lines) == 2
        assert all(line.startswith(str(path)) for line in lines)


class TestShippedConfigs:
    """Every config file under config/ validates, classes imported."""

    @pytest.mark.parametrize(
        "path",
        sorted((Path(__file__).parent.parent / "config").glob("*.toml")),
        ids=lambda p: p.name,
    )
    def test_ships_valid(self, path: Path) -> None:
        config = load_config(path, environ={})
        assert config.services
