"""Bad option values are usage errors: exit 2 and a message naming the option, no traceback."""

from __future__ import annotations

import pytest

from aegis_actors.cli import build_parser
from aegis_actors.cli._client import connection_settings

# Every command that takes the client options, with its positional arguments.
CLIENT_COMMANDS = [
    ["services", "list"],
    ["services", "get", "svc"],
    ["instances", "list"],
    ["apps", "list"],
    ["configs", "list"],
    ["call", "order-service", "create_order"],
    ["top", "--once"],
]


@pytest.fixture(autouse=True)
def no_client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults of --url and --namespace come from these: only a test sets them."""
    monkeypatch.delenv("AEGIS_NATS_URL", raising=False)
    monkeypatch.delenv("AEGIS_NAMESPACE", raising=False)


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Parse `argv` as `aegis` does; assert argparse refused it; return its message."""
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


class TestClientOptions:
    """--timeout, --namespace and --url are checked by argparse, for every client command."""

    @pytest.mark.parametrize("command", CLIENT_COMMANDS, ids=" ".join)
    @pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
    def test_a_timeout_that_is_not_a_positive_number_of_seconds(
        self, capsys: pytest.CaptureFixture[str], command: list[str], value: str
    ) -> None:
        err = usage_error(capsys, *command, "--timeout", value)
        assert "argument --timeout:" in err

    @pytest.mark.parametrize("command", CLIENT_COMMANDS, ids=" ".join)
    def test_a_namespace_the_subjects_would_refuse(
        self, capsys: pytest.CaptureFixture[str], command: list[str]
    ) -> None:
        err = usage_error(capsys, *command, "--namespace", "Bad NS")
        assert "argument --namespace: namespace 'Bad NS' must be empty or match" in err

    def test_a_bad_namespace_from_the_environment_says_where_it_came_from(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AEGIS_NAMESPACE", "Bad NS")
        err = usage_error(capsys, "services", "list")
        assert "argument --namespace: namespace 'Bad NS'" in err
        assert "(from $AEGIS_NAMESPACE)" in err

    def test_a_url_option_without_a_url(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert "argument --url: no URL in ' , '" in usage_error(
            capsys, "services", "list", "--url", " , "
        )

    def test_good_values_pass(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AEGIS_NAMESPACE", "team-a")
        args = build_parser().parse_args(["services", "list", "--timeout", "0.5"])
        assert (args.timeout, args.namespace) == (0.5, "team-a")


class TestUrls:
    """A comma-separated URL list loses its blanks; one URL left is one URL."""

    def test_a_trailing_comma_in_the_environment_leaves_one_url(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AEGIS_NATS_URL", "nats://127.0.0.1:4222, ")
        settings = connection_settings(build_parser().parse_args(["services", "list"]))
        assert settings.url == "nats://127.0.0.1:4222"

    def test_several_urls_stay_a_cluster(self) -> None:
        argv = ["services", "list", "--url", "nats://a:1, ,nats://b:2,"]
        settings = connection_settings(build_parser().parse_args(argv))
        assert settings.servers == ["nats://a:1", "nats://b:2"]


class TestOtherOptions:
    """The options of single commands, and the global ones."""

    @pytest.mark.parametrize("value", ["bogus", "verbose"])
    def test_an_unknown_log_level(self, capsys: pytest.CaptureFixture[str], value: str) -> None:
        err = usage_error(capsys, "--log-level", value, "server")
        assert "argument --log-level: invalid choice" in err

    def test_a_log_level_in_capitals_is_taken(self) -> None:
        assert build_parser().parse_args(["--log-level", "DEBUG", "server"]).log_level == "debug"

    @pytest.mark.parametrize("value", ["0", "-1"])
    def test_a_top_interval_that_is_not_positive(
        self, capsys: pytest.CaptureFixture[str], value: str
    ) -> None:
        assert "argument --interval:" in usage_error(capsys, "top", "--once", "--interval", value)

    @pytest.mark.parametrize("value", ["-1", "65536"])
    def test_a_server_port_out_of_range(
        self, capsys: pytest.CaptureFixture[str], value: str
    ) -> None:
        assert "argument --port: must be from 0 to 65535" in usage_error(
            capsys, "server", "--port", value
        )

    @pytest.mark.parametrize("group", ["services", "apps", "configs"])
    @pytest.mark.parametrize("value", ["0", "1001"])
    def test_a_page_limit_out_of_range(
        self, capsys: pytest.CaptureFixture[str], group: str, value: str
    ) -> None:
        err = usage_error(capsys, group, "list", "--limit", value)
        assert "argument --limit: must be from 1 to 1000" in err
