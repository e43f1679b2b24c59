"""monitor.config: loading, interpolation, secret files, validation and its messages."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from monitor.config import (
    AlertmanagerSinkSettings,
    ConfigError,
    LogSinkSettings,
    ManagerSettings,
    Settings,
    SlackSinkSettings,
    WebhookSinkSettings,
    load_config,
    parse_config,
    redact_url,
)
from monitor.families import SOURCE_NAMES
from monitor.model import EventType

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "pw-Zq8-never-print"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/slack-key-never-print"
HOOK_URL = "https://hooks.example.com/cckm/hook-key-never-print"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def manager(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "prod",
        "url": "https://cm.example.com",
        "username": "admin",
        "password": PASSWORD,
    }
    entry.update(overrides)
    return {key: value for key, value in entry.items() if value is not ...}


def config(**top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"managers": [manager()]}
    data.update(top)
    return data


def load(data: object, environ: dict[str, str] | None = None, **kwargs: Any) -> Settings:
    return parse_config(data, environ=environ or {}, **kwargs)


def problems_of(data: object, environ: dict[str, str] | None = None, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(data, environ, **kwargs)
    return info.value.problems


def problem_at(data: object, path: str, environ: dict[str, str] | None = None, **kw: Any) -> str:
    """The one problem reported at exactly ``path``."""
    problems = problems_of(data, environ, **kw)
    found = [p for p in problems if p.startswith(f"{path}: ")]
    assert len(found) == 1, f"no single problem at {path}: {problems}"
    return found[0]


# --- defaults ---------------------------------------------------------------------------


def test_defaults_are_applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load(config())
    cm = settings.managers[0]
    assert cm.url == "https://cm.example.com"
    assert cm.password == SecretStr(PASSWORD)
    assert (cm.refresh_token, cm.domain, cm.ca_file) == (None, None, None)
    assert cm.verify_tls is True
    assert cm.sources == SOURCE_NAMES
    poll = settings.poll
    assert (poll.interval_seconds, poll.page_size, poll.timeout_seconds) == (30, 100, 10)
    assert (poll.max_concurrency, poll.strategy, poll.jitter_fraction) == (4, "incremental", 0.1)
    assert poll.max_response_bytes == 16 * 1024 * 1024
    assert settings.stuck_after_seconds == 3600
    assert isinstance(settings.stuck_after_seconds, float)
    assert settings.state_path == tmp_path / "monitor-state.db"
    assert settings.retention_days == 7
    assert settings.http.listen == "127.0.0.1:9478"
    assert (settings.http.host, settings.http.port, settings.http.auth_token) == (
        "127.0.0.1",
        9478,
        None,
    )
    assert (settings.log.level, settings.log.format) == ("info", "auto")
    (sink,) = settings.sinks
    assert isinstance(sink, LogSinkSettings)
    assert (sink.name, sink.events, sink.sources, sink.managers) == ("log", None, None, None)
    retry = sink.retry
    assert (retry.initial_seconds, retry.max_seconds, retry.max_age_seconds) == (1, 60, 86400)
    assert retry.max_attempts is None


def test_null_value_means_the_default() -> None:
    settings = load(config(poll=None, sinks=None, http={"listen": None}))
    assert settings.poll.interval_seconds == 30
    assert settings.http.listen == "127.0.0.1:9478"
    assert [s.type for s in settings.sinks] == ["log"]


def test_empty_sinks_list_means_no_sinks() -> None:
    assert load(config(sinks=[])).sinks == ()


def test_relative_state_path_resolves_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load(config(state_path="data/x.db")).state_path == tmp_path / "data" / "x.db"
    assert load(config(state_path="/var/lib/m.db")).state_path == Path("/var/lib/m.db")


def test_state_path_that_is_a_directory(tmp_path: Path) -> None:
    assert "is a directory" in problem_at(config(state_path=str(tmp_path)), "state_path")


# --- whole-file problems ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (None, "is empty"),
        ([1, 2], "top level must be a mapping"),
        ("text", "top level must be a mapping"),
        ({}, "managers: at least one CipherTrust Manager is required"),
        ({"managers": []}, "managers: at least one CipherTrust Manager is required"),
    ],
)
def test_empty_or_shapeless_configuration(data: object, words: str) -> None:
    (problem,) = problems_of(data)
    assert words in problem


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [f"{path}: the configuration file does not exist"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(tmp_path, environ={})


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing but a comment\n")
    with pytest.raises(ConfigError, match=r"empty\.yaml: is empty"):
        load_config(path, environ={})


def test_yaml_syntax_error_has_a_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("managers:\n  - name: prod\n    url: [unclosed\npoll: {\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}, line ")
    assert "invalid YAML" in problem


def test_yaml_error_line_is_the_right_one(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("poll:\n  interval_seconds: 3\n  page_size: : 4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml, line 3, column \d+: invalid YAML"):
        load_config(path, environ={})


def test_duplicate_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("poll:\n  interval_seconds: 3\n  interval_seconds: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [
        f"{path}, line 3, column 3: invalid YAML: "
        "the key 'interval_seconds' appears twice in one mapping"
    ]


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "managers:\n"
        "  - &base {name: a, url: 'https://a.example', refresh_token: t}\n"
        "  - <<: *base\n"
        "    name: b\n"
    )
    settings = load_config(path, environ={})
    assert [(m.name, m.url) for m in settings.managers] == [
        ("a", "https://a.example"),
        ("b", "https://a.example"),
    ]


def problems_of_file(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    return info.value.problems


# --- unknown keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "hint"),
    [
        ({**config(), "manager": []}, "manager", "did you mean managers?"),
        (config(poll={"intervall_seconds": 5}), "poll.intervall_seconds", "interval_seconds"),
        ({"managers": [manager(passwrd="x")]}, "managers[0].passwrd", "did you mean password?"),
        (
            {"managers": [manager(password=..., password_fil="/x")]},
            "managers[0].password_fil",
            "did you mean password_file?",
        ),
        (config(http={"listne": "1.2.3.4:1"}), "http.listne", "did you mean listen?"),
        (
            config(sinks=[{"type": "log"}, {"type": "slack", "url": SLACK_URL, "urll": "x"}]),
            "sinks[1].urll",
            "did you mean url?",
        ),
        (
            config(sinks=[{"type": "log", "retry": {"max_second": 5}}]),
            "sinks[0].retry.max_second",
            "did you mean max_seconds?",
        ),
    ],
)
def test_unknown_key_names_its_path_with_a_hint(data: object, path: str, hint: str) -> None:
    problem = problem_at(data, path)
    assert problem.startswith(f"{path}: unknown key")
    assert hint in problem


def test_unknown_key_without_close_match_lists_valid_keys() -> None:
    problem = problem_at(config(poll={"zzz": 1}), "poll.zzz")
    assert "valid keys here: interval_seconds, page_size" in problem


def test_secret_file_keys_exist_only_where_documented() -> None:
    data = config(sinks=[{"type": "alertmanager", "url": "http://am:9093", "secret_file": "x"}])
    assert "unknown key" in problem_at(data, "sinks[0].secret_file")


# --- interpolation ----------------------------------------------------------------------


def test_variable_is_read_from_the_given_environment() -> None:
    data = {"managers": [manager(password="${CM_PASSWORD}", username="${CM_USER}")]}
    settings = load(data, {"CM_PASSWORD": "from-env", "CM_USER": "ops"})
    assert settings.managers[0].password == SecretStr("from-env")
    assert settings.managers[0].username == "ops"


def test_missing_variable_names_the_variable_and_the_path() -> None:
    data = {"managers": [manager(password="${CM_PASSWORD}")]}
    assert problems_of(data) == [
        "managers[0].password: environment variable CM_PASSWORD is not set"
    ]


def test_several_missing_variables_in_one_value() -> None:
    data = {"managers": [manager(url="https://${CM_HOST}:${CM_PORT}")]}
    assert problems_of(data) == [
        "managers[0].url: environment variables CM_HOST, CM_PORT are not set"
    ]


def test_interpolation_inside_a_longer_string_and_in_lists() -> None:
    data = {"managers": [manager(url="https://${HOST}:8443", sources=["${SRC}", "gcp"])]}
    settings = load(data, {"HOST": "cm.local", "SRC": "aws"})
    assert settings.managers[0].url == "https://cm.local:8443"
    assert settings.managers[0].sources == ("aws", "gcp")


def test_dollar_dollar_brace_is_a_literal() -> None:
    data = {"managers": [manager(password="a$${NOT_A_VAR}b$c")]}
    assert load(data).managers[0].password == SecretStr("a${NOT_A_VAR}b$c")


def test_default_applies_when_unset_or_empty() -> None:
    data = config(poll={"interval_seconds": "${POLL:-7}"})
    assert load(data).poll.interval_seconds == 7
    assert load(data, {"POLL": ""}).poll.interval_seconds == 7
    assert load(data, {"POLL": "12"}).poll.interval_seconds == 12


def test_empty_default_is_allowed() -> None:
    data = {"managers": [manager(domain="${CM_DOMAIN:-}root")]}
    assert load(data).managers[0].domain == "root"


def test_variable_values_never_change_the_structure() -> None:
    tricky = "x\nsinks: [{type: webhook}]\n${OTHER}"
    settings = load({"managers": [manager(password="${P}")]}, {"P": tricky})
    assert settings.managers[0].password == SecretStr(tricky)  # not re-interpolated either
    assert [s.type for s in settings.sinks] == ["log"]


@pytest.mark.parametrize("value", ["${}", "${1X}", "${A B}", "ab${unterminated", "${A:-${B}}"])
def test_malformed_reference_is_an_error_that_does_not_quote_the_value(value: str) -> None:
    problem = problem_at({"managers": [manager(password=value)]}, "managers[0].password")
    assert "$${" in problem
    assert value not in problem


def test_numbers_and_booleans_from_variables_are_converted() -> None:
    data = {
        "managers": [manager(verify_tls="${TLS}")],
        "poll": {"page_size": "${PAGE}"},
    }
    settings = load(data, {"TLS": "false", "PAGE": "250"})
    assert settings.managers[0].verify_tls is False
    assert settings.poll.page_size == 250


# --- secret files -----------------------------------------------------------------------


def test_secret_files_are_read_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-password\n")
    (tmp_path / "rt").write_text("refresh-token\r\n\n")
    data = {"managers": [manager(password=..., password_file=str(tmp_path / "pw"))]}
    assert load(data).managers[0].password == SecretStr("file-password")
    data = {"managers": [manager(password=..., username=..., refresh_token_file="rt")]}
    assert load(data, base_dir=tmp_path).managers[0].refresh_token == SecretStr("refresh-token")


def test_secret_file_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cm").write_text("pw-from-file\n")
    (tmp_path / "secrets" / "hook").write_text(WHSEC + "\n")
    (tmp_path / "secrets" / "slack").write_text(SLACK_URL + "\n")
    (tmp_path / "secrets" / "token").write_text("tok\n")
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "managers:\n"
        "  - {name: prod, url: 'https://cm', username: admin, password_file: secrets/cm}\n"
        "http: {auth_token_file: secrets/token}\n"
        "sinks:\n"
        f"  - {{type: webhook, url: '{HOOK_URL}', secret_file: secrets/hook}}\n"
        "  - {type: slack, url_file: secrets/slack}\n"
    )
    settings = load_config(path, environ={})
    assert settings.managers[0].password == SecretStr("pw-from-file")
    assert settings.http.auth_token == SecretStr("tok")
    webhook, slack = settings.sinks
    assert isinstance(webhook, WebhookSinkSettings)
    assert isinstance(slack, SlackSinkSettings)
    assert webhook.secret == SecretStr(WHSEC)
    assert slack.url == SecretStr(SLACK_URL)


def test_missing_secret_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-secret"
    data = {"managers": [manager(password=..., password_file=str(missing))]}
    problems = problems_of(data)
    assert problems == [
        f"managers[0].password_file: cannot read {missing}: no such file or directory"
    ]


def test_missing_url_file_is_one_problem_not_two(tmp_path: Path) -> None:
    data = config(sinks=[{"type": "slack", "url_file": str(tmp_path / "gone")}])
    (problem,) = problems_of(data)
    assert problem.startswith("sinks[0].url_file: cannot read")


def test_empty_secret_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    data = {"managers": [manager(password=..., password_file="pw")]}
    problem = problem_at(data, "managers[0].password_file", base_dir=tmp_path)
    assert "is empty" in problem


def test_value_and_file_together_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x")
    data = {"managers": [manager(password_file=str(tmp_path / "pw"))]}
    problem = problem_at(data, "managers[0].password_file")
    assert "either password or password_file, not both" in problem


def test_secret_file_content_is_not_interpolated(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("${NOT_A_VAR}")
    data = {"managers": [manager(password=..., password_file=str(tmp_path / "pw"))]}
    assert load(data).managers[0].password == SecretStr("${NOT_A_VAR}")


# --- managers ---------------------------------------------------------------------------


def test_url_trailing_slash_is_removed() -> None:
    settings = load({"managers": [manager(url="https://cm.example.com:8443/")]})
    assert settings.managers[0].url == "https://cm.example.com:8443"


def test_url_ending_in_api_gets_a_hint() -> None:
    problem = problem_at(
        {"managers": [manager(url="https://cm.example.com/api/")]}, "managers[0].url"
    )
    assert "must not end in /api" in problem
    assert "https://cm.example.com" in problem


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("cm.example.com", "must start with http:// or https://"),
        ("ftp://cm.example.com", "must start with http:// or https://"),
        ("https://", "has no host name"),
        ("https://cm.example.com/prefix", "without a path"),
        ("https://cm.example.com:99999", "not a valid URL"),
        ("https://admin:pw@cm.example.com", "must not contain a user name or password"),
        ("https://cm.example.com?x=1", "query"),
        ("https://cm example.com", "without spaces"),
    ],
)
def test_bad_manager_url(url: str, words: str) -> None:
    assert words in problem_at({"managers": [manager(url=url)]}, "managers[0].url")


def test_ipv6_manager_url() -> None:
    assert load({"managers": [manager(url="https://[::1]:8443")]}).managers[0].url == (
        "https://[::1]:8443"
    )


@pytest.mark.parametrize("name", ["", "has space", "-dash-first", "a" * 65, "ünï", "a\nb"])
def test_bad_manager_name(name: str) -> None:
    assert "must be 1 to 64 letters" in problem_at(
        {"managers": [manager(name=name)]}, "managers[0].name"
    )


def test_manager_names_must_be_unique() -> None:
    data = {"managers": [manager(), manager(url="https://other.example.com")]}
    problem = problem_at(data, "managers[1].name")
    assert "'prod' is already the name of managers[0]" in problem


def test_unknown_source_lists_valid_names() -> None:
    problem = problem_at({"managers": [manager(sources=["aws", "gpc"])]}, "managers[0].sources[1]")
    assert "unknown source 'gpc' (did you mean gcp?)" in problem
    assert "valid sources are " + ", ".join(SOURCE_NAMES) in problem


def test_duplicate_sources() -> None:
    problem = problem_at(
        {"managers": [manager(sources=["aws", "dsm", "aws"])]}, "managers[0].sources"
    )
    assert "'aws' more than once" in problem


def test_empty_sources_list() -> None:
    problem = problem_at({"managers": [manager(sources=[])]}, "managers[0].sources")
    assert "must not be an empty list" in problem


def test_credentials_are_required() -> None:
    data = {"managers": [manager(username=..., password=...)]}
    problem = problem_at(data, "managers[0]")
    assert "password (or password_file) or refresh_token (or refresh_token_file)" in problem


def test_username_is_required_with_a_password() -> None:
    problem = problem_at({"managers": [manager(username=...)]}, "managers[0].username")
    assert problem == "managers[0].username: is required with a password"


def test_refresh_token_alone_is_enough() -> None:
    data = {"managers": [manager(username=..., password=..., refresh_token="rt")]}
    assert load(data).managers[0].refresh_token == SecretStr("rt")


def test_empty_password_is_an_error() -> None:
    data = {"managers": [manager(password="${EMPTY}")]}
    problem = problem_at(data, "managers[0].password", {"EMPTY": ""})
    assert "must not be empty" in problem


def test_numeric_password_must_be_quoted() -> None:
    problem = problem_at({"managers": [manager(password=1234)]}, "managers[0].password")
    assert "quote it" in problem
    assert "1234" not in problem


def test_verify_tls_false_loads() -> None:
    assert load({"managers": [manager(verify_tls=False)]}).managers[0].verify_tls is False


def test_ca_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    problem = problem_at({"managers": [manager(ca_file=str(missing))]}, "managers[0].ca_file")
    assert problem == f"managers[0].ca_file: {missing} does not exist"


def test_ca_file_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load({"managers": [manager(ca_file="ca.pem")]}, base_dir=tmp_path)
    assert settings.managers[0].ca_file == tmp_path / "ca.pem"


def test_ca_file_that_is_a_directory(tmp_path: Path) -> None:
    problem = problem_at({"managers": [manager(ca_file=str(tmp_path))]}, "managers[0].ca_file")
    assert "is not a file" in problem


# --- poll, http, log, top-level numbers -------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "words"),
    [
        ("poll", "interval_seconds", 0, "must be greater than 0"),
        ("poll", "interval_seconds", "soon", "must be a number"),
        ("poll", "page_size", 0, "must be at least 1"),
        ("poll", "page_size", 1001, "must be at most 1000"),
        ("poll", "page_size", 2.5, "must be a whole number"),
        ("poll", "timeout_seconds", -1, "must be greater than 0"),
        ("poll", "max_concurrency", 0, "must be at least 1"),
        ("poll", "max_concurrency", 65, "must be at most 64"),
        ("poll", "strategy", "Full", "must be 'incremental' or 'full'"),
        ("poll", "jitter_fraction", 0.6, "must be at most 0.5"),
        ("poll", "jitter_fraction", -0.1, "must be at least 0"),
        ("poll", "max_response_bytes", 10, "must be at least 1024"),
        ("log", "level", "verbose", "must be 'debug', 'info', 'warning' or 'error'"),
        ("log", "format", "xml", "must be 'auto', 'json' or 'console'"),
        ("http", "auth_token", "", "must not be empty"),
    ],
)
def test_section_value_rules(section: str, key: str, value: object, words: str) -> None:
    problem = problem_at(config(**{section: {key: value}}), f"{section}.{key}")
    assert words in problem


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("stuck_after_seconds", 0, "must be greater than 0"),
        ("retention_days", -1, "must be greater than 0"),
        ("retention_days", float("inf"), "must be a finite number"),
        ("poll", [1], "must be a mapping"),
        ("sinks", {"type": "log"}, "must be a list"),
    ],
)
def test_top_level_value_rules(key: str, value: object, words: str) -> None:
    assert words in problem_at(config(**{key: value}), key)


def test_log_level_is_case_insensitive() -> None:
    settings = load(config(log={"level": "DEBUG", "format": "Json"}))
    assert (settings.log.level, settings.log.format) == ("debug", "json")


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:9478", "127.0.0.1", 9478),
        ("0.0.0.0:80", "0.0.0.0", 80),
        ("localhost:0", "localhost", 0),
        ("[::1]:9478", "::1", 9478),
        ("[::]:9100", "::", 9100),
    ],
)
def test_http_listen(listen: str, host: str, port: int) -> None:
    http = load(config(http={"listen": listen})).http
    assert (http.listen, http.host, http.port) == (listen, host, port)


@pytest.mark.parametrize(
    ("listen", "words"),
    [
        ("9478", "must be host:port"),
        ("::1:9478", "needs brackets around an IPv6 address"),
        (":9478", "needs a host"),
        ("host:http", "not a number from 0 to 65535"),
        ("host:70000", "not a number from 0 to 65535"),
        ("[::1]9478", "must be [IPv6 address]:port"),
        ("[nope]:9478", "must be [IPv6 address]:port"),
        ("bad_host!:1", "neither a host name nor an IP address"),
    ],
)
def test_bad_http_listen(listen: str, words: str) -> None:
    assert words in problem_at(config(http={"listen": listen}), "http.listen")


# --- sinks ------------------------------------------------------------------------------


def all_sinks() -> list[dict[str, Any]]:
    return [
        {"type": "log"},
        {"type": "webhook", "url": HOOK_URL, "secret": WHSEC, "headers": {"X-Team": "a"}},
        {"type": "slack", "url": SLACK_URL},
        {"type": "alertmanager", "url": "http://127.0.0.1:9093/"},
    ]


def test_discriminated_union_picks_the_right_class() -> None:
    sinks = load(config(sinks=all_sinks())).sinks
    assert [type(s) for s in sinks] == [
        LogSinkSettings,
        WebhookSinkSettings,
        SlackSinkSettings,
        AlertmanagerSinkSettings,
    ]
    assert [s.name for s in sinks] == ["log", "webhook", "slack", "alertmanager"]
    log, webhook, slack, am = sinks
    assert isinstance(webhook, WebhookSinkSettings)
    assert webhook.url == SecretStr(HOOK_URL)
    assert dict(webhook.headers) == {"X-Team": "a"}
    assert webhook.timeout_seconds == 10
    assert isinstance(am, AlertmanagerSinkSettings)
    assert am.url == "http://127.0.0.1:9093"
    assert am.resolve_after_seconds == 3600
    assert dict(am.headers) == {}
    assert log.display_url == "stdout"
    assert webhook.display_url == "https://hooks.example.com/…"
    assert slack.display_url == "https://hooks.slack.com/…"
    assert am.display_url == "http://127.0.0.1:9093"


def test_unknown_sink_type() -> None:
    problem = problem_at(config(sinks=[{"type": "pager"}]), "sinks[0].type")
    assert "unknown sink type 'pager'; valid types are log, webhook, slack, alertmanager" in problem


def test_sink_without_type() -> None:
    problem = problem_at(config(sinks=[{"name": "x"}]), "sinks[0].type")
    assert "is required" in problem
    assert "log, webhook, slack, alertmanager" in problem


def test_sink_errors_do_not_show_the_union_tag() -> None:
    problem = problem_at(config(sinks=[{"type": "slack"}]), "sinks[0].url")
    assert problem == "sinks[0].url: is required"


def test_two_unnamed_sinks_of_one_type_clash_naming_both() -> None:
    sinks = [
        {"type": "log"},
        {"type": "webhook", "url": HOOK_URL},
        {"type": "webhook", "url": HOOK_URL},
    ]
    problem = problem_at(config(sinks=sinks), "sinks[2].name")
    assert "sink name 'webhook' is already used by sinks[1]" in problem


def test_explicit_sink_names_must_be_unique() -> None:
    sinks = [{"type": "log", "name": "ops"}, {"type": "slack", "name": "ops", "url": SLACK_URL}]
    assert "already used by sinks[0]" in problem_at(config(sinks=sinks), "sinks[1].name")


def test_sink_filters_are_validated() -> None:
    sink = {
        "type": "log",
        "events": ["job.failed", "job.fialed"],
        "sources": ["aws", "s3"],
        "managers": ["prod", "prd"],
    }
    problems = problems_of(config(sinks=[sink]))
    assert len(problems) == 3
    event, source, manager_ref = problems
    assert event.startswith(
        "sinks[0].events[1]: unknown event 'job.fialed' (did you mean job.failed?)"
    )
    assert "valid events are job.started, job.completed" in event
    assert source.startswith("sinks[0].sources[1]: unknown source 's3'")
    assert manager_ref == (
        "sinks[0].managers[1]: 'prd' is not a configured manager (did you mean prod?); "
        "configured managers are prod"
    )


def test_sink_filters_are_kept() -> None:
    sink = {"type": "log", "events": ["job.failed", "source.down"], "sources": ["aws"]}
    (log,) = load(config(sinks=[sink])).sinks
    assert log.events == (EventType.JOB_FAILED, EventType.SOURCE_DOWN)
    assert log.sources == ("aws",)
    assert log.managers is None


@pytest.mark.parametrize("key", ["events", "sources", "managers"])
def test_empty_sink_filter_is_an_error(key: str) -> None:
    problem = problem_at(config(sinks=[{"type": "log", key: []}]), f"sinks[0].{key}")
    assert "must not be an empty list" in problem


def test_duplicate_sink_filter_entries() -> None:
    problem = problem_at(
        config(sinks=[{"type": "log", "events": ["job.stuck", "job.stuck"]}]), "sinks[0].events"
    )
    assert "more than once" in problem


def test_retry_settings() -> None:
    sink = {"type": "log", "retry": {"initial_seconds": 2, "max_seconds": 30, "max_attempts": 5}}
    (log,) = load(config(sinks=[sink])).sinks
    assert (log.retry.initial_seconds, log.retry.max_seconds, log.retry.max_attempts) == (2, 30, 5)


@pytest.mark.parametrize(
    ("retry", "path", "words"),
    [
        (
            {"initial_seconds": 10, "max_seconds": 5},
            "sinks[0].retry",
            "max_seconds must not be less",
        ),
        ({"initial_seconds": 0}, "sinks[0].retry.initial_seconds", "must be greater than 0"),
        ({"max_age_seconds": 0}, "sinks[0].retry.max_age_seconds", "must be greater than 0"),
        ({"max_attempts": 0}, "sinks[0].retry.max_attempts", "must be at least 1"),
    ],
)
def test_bad_retry(retry: dict[str, Any], path: str, words: str) -> None:
    assert words in problem_at(config(sinks=[{"type": "log", "retry": retry}]), path)


def test_webhook_secret_must_be_base64_after_prefix() -> None:
    sink = {"type": "webhook", "url": HOOK_URL, "secret": "whsec_not*base64"}
    problem = problem_at(config(sinks=[sink]), "sinks[0].secret")
    assert problem == "sinks[0].secret: is not valid base64 after the whsec_ prefix"


def test_webhook_signing_key() -> None:
    sinks = [
        {"type": "webhook", "name": "a", "url": HOOK_URL, "secret": WHSEC},
        {"type": "webhook", "name": "b", "url": HOOK_URL, "secret": "plain text key"},
        {"type": "webhook", "name": "c", "url": HOOK_URL},
    ]
    keys = [
        s.signing_key()
        for s in load(config(sinks=sinks)).sinks
        if isinstance(s, WebhookSinkSettings)
    ]
    assert keys == [b"0123456789abcdef0123456789abcdef", b"plain text key", None]


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"webhook-signature": "x"}, "set by the monitor"),
        ({"Content-Type": "text/plain"}, "set by the monitor"),
        ({"Bad Header": "x"}, "not a valid HTTP header name"),
        ({"X-Ok": "a\r\nInjected: yes"}, "contains a line break"),
        ({"X-Num": 5}, "must be text"),
    ],
)
def test_bad_webhook_headers(headers: dict[str, Any], words: str) -> None:
    sink = {"type": "webhook", "url": HOOK_URL, "headers": headers}
    problems = problems_of(config(sinks=[sink]))
    assert len(problems) == 1
    assert problems[0].startswith("sinks[0].headers")
    assert words in problems[0]


@pytest.mark.parametrize("sink_type", ["webhook", "slack"])
def test_bad_secret_url_is_never_printed(sink_type: str) -> None:
    url = "hooks.example.com/T0/B0/secret-path-key"
    problem = problem_at(config(sinks=[{"type": sink_type, "url": url}]), "sinks[0].url")
    assert "must start with http:// or https://" in problem
    assert "secret-path-key" not in problem


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("127.0.0.1:9093", "must start with http:// or https://"),
        ("http://am:9093/api/v2/alerts", "base URL"),
        ("http://am:9093/?x=1", "query"),
    ],
)
def test_bad_alertmanager_url(url: str, words: str) -> None:
    assert words in problem_at(config(sinks=[{"type": "alertmanager", "url": url}]), "sinks[0].url")


def test_alertmanager_url_may_have_a_route_prefix() -> None:
    (am,) = load(
        config(sinks=[{"type": "alertmanager", "url": "https://am.example/alertmanager/"}])
    ).sinks
    assert isinstance(am, AlertmanagerSinkSettings)
    assert am.url == "https://am.example/alertmanager"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T/B/X", "https://hooks.slack.com/…"),
        ("http://127.0.0.1:9093", "http://127.0.0.1:9093"),
        ("http://127.0.0.1:9093/", "http://127.0.0.1:9093"),
        ("https://user:pw@example.com/x?token=1", "https://example.com/…"),
        ("https://example.com?token=1", "https://example.com/…"),
        ("http://[::1]:8080/p", "http://[::1]:8080/…"),
        ("not a url", "<redacted>"),
        ("http://[::1", "<invalid url>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --- secrets stay secret ----------------------------------------------------------------


def secretive_config() -> dict[str, Any]:
    return {
        "managers": [manager(password="${CM_PASSWORD}", refresh_token="refresh-never-print")],
        "http": {"auth_token": "token-never-print"},
        "sinks": [
            {
                "type": "webhook",
                "url": HOOK_URL,
                "secret": WHSEC,
                "headers": {"Authorization": "Bearer hdr-never-print"},
            },
            {"type": "slack", "url": "${SLACK_WEBHOOK_URL}"},
            {"type": "alertmanager", "url": "https://am-user:am-pass-never-print@am.example"},
        ],
    }


SECRETS = [
    PASSWORD,
    "refresh-never-print",
    "token-never-print",
    "hook-key-never-print",
    WHSEC,
    "hdr-never-print",
    "slack-key-never-print",
    "am-pass-never-print",
]


def test_secrets_never_appear_in_repr_or_str_of_settings() -> None:
    settings = load(secretive_config(), {"CM_PASSWORD": PASSWORD, "SLACK_WEBHOOK_URL": SLACK_URL})
    texts = [repr(settings), str(settings), *(repr(s) for s in settings.sinks)]
    texts += [repr(settings.managers[0]), str(settings.managers[0]), repr(settings.http)]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_secrets_never_appear_in_config_errors() -> None:
    data = secretive_config()
    data["poll"] = {"interval_seconds": 0}  # one real problem beside the secrets
    data["managers"][0]["verify_tls"] = "maybe"
    data["sinks"][0]["secret"] = "whsec_" + "hdr-never-print"  # invalid base64
    data["sinks"][1]["url"] = "ftp://slack-key-never-print"
    with pytest.raises(ConfigError) as info:
        load(data, {"CM_PASSWORD": PASSWORD, "SLACK_WEBHOOK_URL": SLACK_URL})
    text = str(info.value)
    assert len(info.value.problems) == 4
    for secret in SECRETS:
        assert secret not in text


# --- all problems, together -------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "managers": [
            manager(
                url="https://cm.example.com/api", password="${CM_PASSWORD}", sources=["aws", "nope"]
            ),
            manager(ca_file="/nonexistent/ca.pem", colour="blue"),
        ],
        "poll": {"page_size": 0, "intervall_seconds": 5},
        "sinks": [{"type": "webhook", "url": HOOK_URL, "events": ["job.nope"]}, {"type": "pager"}],
    }
    problems = problems_of(data)
    paths = [p.split(": ", 1)[0] for p in problems]
    assert paths == [
        "managers[0].password",
        "managers[0].url",
        "managers[0].sources[1]",
        "managers[1].ca_file",
        "managers[1].colour",
        "managers[1].name",
        "poll.page_size",
        "poll.intervall_seconds",
        "sinks[0].events[0]",
        "sinks[1].type",
    ]
    assert str(ConfigError(problems)) == "\n".join(problems)


def test_config_error_survives_pickling() -> None:
    error = ConfigError(["a: one", "b: two"])
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == ["a: one", "b: two"]
    assert str(copy) == "a: one\nb: two"


# --- immutability, direct construction --------------------------------------------------


def test_settings_are_immutable() -> None:
    settings = load(config(sinks=all_sinks()))
    with pytest.raises(ValidationError):
        settings.poll = settings.poll  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.managers[0].url = "https://elsewhere"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.sinks[0].name = "other"  # type: ignore[misc]
    assert isinstance(settings.managers, tuple)
    assert isinstance(settings.managers[0].sources, tuple)
    webhook = settings.sinks[1]
    assert isinstance(webhook, WebhookSinkSettings)
    with pytest.raises(TypeError):
        webhook.headers["X-New"] = "x"  # type: ignore[index]


def test_settings_serialise() -> None:
    dumped = load(config(sinks=all_sinks())).model_dump(mode="json")
    assert dumped["sinks"][1]["headers"] == {"X-Team": "a"}
    assert dumped["managers"][0]["password"] == "**********"


def test_direct_construction_checks_across_keys_too() -> None:
    prod = ManagerSettings.model_validate(manager())
    with pytest.raises(ValidationError) as info:
        Settings(managers=(prod, prod))
    assert any(err["loc"] == ("managers", 1, "name") for err in info.value.errors())
    assert LogSinkSettings().name == "log"


# --- the shipped configurations ---------------------------------------------------------


def test_example_config_loads() -> None:
    environ = {
        "CM_PASSWORD": "example-password",
        "WEBHOOK_SECRET": WHSEC,
        "SLACK_WEBHOOK_URL": SLACK_URL,
    }
    settings = load_config(REPO / "config" / "monitor.example.yaml", environ=environ)
    assert [m.name for m in settings.managers] == ["prod"]
    assert settings.managers[0].password == SecretStr("example-password")
    assert [(s.type, s.name) for s in settings.sinks] == [
        ("log", "log"),
        ("webhook", "ops"),
        ("slack", "team"),
        ("alertmanager", "am"),
    ]


def test_example_config_reports_its_variables_when_unset() -> None:
    problems = problems_of_file(REPO / "config" / "monitor.example.yaml")
    assert problems == [
        "managers[0].password: environment variable CM_PASSWORD is not set",
        "sinks[1].secret: environment variable WEBHOOK_SECRET is not set",
        "sinks[2].url: environment variable SLACK_WEBHOOK_URL is not set",
    ]


def test_demo_config_loads(tmp_path: Path) -> None:
    settings = load_config(REPO / "config" / "demo.yaml", environ={})
    (demo,) = settings.managers
    assert (demo.name, demo.url, demo.username) == ("demo", "http://127.0.0.1:8443", "admin")
    assert demo.password == SecretStr("admin")
    assert settings.poll.interval_seconds == 2
    assert settings.stuck_after_seconds == 120
    assert settings.state_path.name == "demo-state.db"
    assert settings.http.listen == "127.0.0.1:9478"
    assert [s.type for s in settings.sinks] == ["log"]
    environ = {"CCKM_SIM_PORT": "9001", "CCKM_DEMO_STATE": str(tmp_path / "s.db")}
    settings = load_config(REPO / "config" / "demo.yaml", environ=environ)
    assert settings.managers[0].url == "http://127.0.0.1:9001"
    assert settings.state_path == tmp_path / "s.db"
