"""Settings: the YAML configuration file as immutable, validated models.

``load_config(path)`` reads a file, ``parse_config(data)`` takes already-parsed YAML. Both
interpolate ``${VAR}`` from the environment, read ``*_file`` secrets, validate everything
and raise one ``ConfigError`` that lists every problem by its key path, e.g.
``managers[0].password: environment variable CM_PASSWORD is not set``.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType, UnionType
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar, Union, get_args, get_origin
from urllib.parse import SplitResult, urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from monitor._interpolate import (
    Loc,
    Problem,
    format_loc,
    interpolate,
    read_secret_file,
    read_yaml,
)
from monitor.families import SOURCE_NAMES
from monitor.model import EventType

__all__ = [
    "SINK_TYPES",
    "AlertmanagerSinkSettings",
    "AnySinkSettings",
    "ConfigError",
    "HttpSettings",
    "LogSettings",
    "LogSinkSettings",
    "ManagerSettings",
    "PollSettings",
    "RetrySettings",
    "Settings",
    "SinkSettings",
    "SlackSinkSettings",
    "WebhookSinkSettings",
    "load_config",
    "parse_config",
    "redact_url",
]

MIB = 1024 * 1024
EVENT_NAMES: tuple[str, ...] = tuple(str(event) for event in EventType)
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
_PROBLEM = "config"  # pydantic error type of our own problems
_NO_MANAGERS = "at least one CipherTrust Manager is required"
_T = TypeVar("_T")


class ConfigError(Exception):
    """The configuration is unusable. ``problems`` holds every reason, one sentence each,
    prefixed by its key path; ``str(error)`` is all of them, one per line."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[str]]]:
        return type(self), (self.problems,)


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, with any path or query shown as ``/…``.

    For messages and logs: webhook URLs often carry their key in the path.
    """
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not host:
        return "<redacted>"
    shown = f"{parts.scheme}://{f'[{host}]' if ':' in host else host}"
    if port is not None:
        shown += f":{port}"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        shown += "/…"
    return shown


# --- value checks (each raises ValueError with one sentence that never quotes a secret) --


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:39] + "…")


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return value


def _check_source(value: str) -> str:
    if value not in SOURCE_NAMES:
        raise ValueError(
            f"unknown source {_show(value)}{_did_you_mean(value, SOURCE_NAMES)}; "
            f"valid sources are {', '.join(SOURCE_NAMES)}"
        )
    return value


def _check_event(value: object) -> object:
    if isinstance(value, str) and value not in EVENT_NAMES:
        raise ValueError(
            f"unknown event {_show(value)}{_did_you_mean(value, EVENT_NAMES)}; "
            f"valid events are {', '.join(EVENT_NAMES)}"
        )
    return value


def _unique(items: tuple[_T, ...]) -> tuple[_T, ...]:
    repeated = list(dict.fromkeys(item for i, item in enumerate(items) if item in items[:i]))
    if repeated:
        listed = ", ".join(_show(str(item)) for item in repeated)
        raise ValueError(f"lists {listed} more than once")
    return items


def _not_empty(value: object) -> object:
    # Before item validation: pydantic's min_length also fires when items are invalid.
    if isinstance(value, list | tuple) and not value:
        raise ValueError("must not be an empty list (leave the key out for the default)")
    return value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _split_http_url(value: str) -> SplitResult:
    if not value or any(char.isspace() for char in value):
        raise ValueError("must be an http:// or https:// URL without spaces")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("is not a valid URL (check the host and port)") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not host:
        raise ValueError("has no host name")
    return parts


def _manager_url(value: str) -> str:
    parts = _split_http_url(value)
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain a user name or password: use username and password")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    base = f"{parts.scheme.lower()}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if path.lower() == "/api":
        raise ValueError(f"must not end in /api (the monitor adds it): write {base}")
    if path:
        raise ValueError("must be scheme://host[:port] only, the part before /api, without a path")
    return base


def _alertmanager_url(value: str) -> str:
    parts = _split_http_url(value)
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    path = parts.path.rstrip("/")
    if "/api/" in f"{path}/":
        raise ValueError(
            "must be Alertmanager's base URL such as http://127.0.0.1:9093 "
            "(the monitor adds /api/v2/alerts)"
        )
    return f"{parts.scheme.lower()}://{parts.netloc}{path}"


def _secret_url(value: SecretStr) -> SecretStr:
    _split_http_url(value.get_secret_value())
    return value


def _nonempty_secret(value: SecretStr) -> SecretStr:
    if not value.get_secret_value():
        raise ValueError("must not be empty")
    return value


def _webhook_secret(value: SecretStr) -> SecretStr:
    text = _nonempty_secret(value).get_secret_value()
    if text.startswith(WEBHOOK_SECRET_PREFIX):
        try:
            key = base64.b64decode(text.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                f"is not valid base64 after the {WEBHOOK_SECRET_PREFIX} prefix"
            ) from None
        if not key:
            raise ValueError(f"has no key after the {WEBHOOK_SECRET_PREFIX} prefix")
    return value


def _split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9478"`` -> ``("127.0.0.1", 9478)``; ``"[::1]:9478"`` -> ``("::1", 9478)``."""
    if value.startswith("["):
        host, bracket_colon, port_text = value[1:].partition("]:")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("must be [IPv6 address]:port, e.g. [::1]:9478") from None
        if not bracket_colon:
            raise ValueError("must be [IPv6 address]:port, e.g. [::1]:9478")
    else:
        host, colon, port_text = value.rpartition(":")
        if not colon:
            raise ValueError("must be host:port, e.g. 127.0.0.1:9478")
        if ":" in host:
            raise ValueError("needs brackets around an IPv6 address, e.g. [::1]:9478")
        if not host:
            raise ValueError("needs a host before the port, e.g. 0.0.0.0:9478 for every interface")
        if not _HOST.fullmatch(host):
            raise ValueError("has a host that is neither a host name nor an IP address")
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError("has a port that is not a number from 0 to 65535")
    return host, int(port_text)


def _check_listen(value: str) -> str:
    _split_listen(value)
    return value


def _headers(reserved: frozenset[str]) -> AfterValidator:
    def check(headers: Mapping[str, str]) -> Mapping[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {_show(name)} is not a valid HTTP header name")
            if name.lower() in reserved:
                raise ValueError(f"header {name} is set by the monitor and cannot be overridden")
            if "\r" in value or "\n" in value:
                raise ValueError(f"the value of header {name} contains a line break")
        return MappingProxyType(dict(headers))  # frozen settings: no mutable dict inside

    return AfterValidator(check)


def _context_base_dir(context: object) -> Path:
    base = context.get("base_dir") if isinstance(context, dict) else None
    return base if isinstance(base, Path) else Path.cwd()


def _readable_file(path: Path, info: ValidationInfo) -> Path:
    path = path.expanduser()
    if not path.is_absolute():
        path = _context_base_dir(info.context) / path
    if not path.is_file():
        raise ValueError(f"{path} {'is not a file' if path.exists() else 'does not exist'}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path} is not readable")
    return path


def _state_path(path: Path) -> Path:
    path = path.expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    if path.is_dir():
        raise ValueError(f"{path} is a directory: give the database's file name")
    return path


# --- building blocks of the models ---------------------------------------------------

Name = Annotated[str, AfterValidator(_check_name)]
SourceName = Annotated[str, AfterValidator(_check_source)]
EventName = Annotated[EventType, BeforeValidator(_check_event)]
Secret = Annotated[SecretStr, AfterValidator(_nonempty_secret)]
SecretUrl = Annotated[SecretStr, AfterValidator(_secret_url)]
NonEmpty = Annotated[str, Field(min_length=1)]
_NOT_EMPTY = BeforeValidator(_not_empty)
Timeout = Annotated[float, Field(gt=0)]
SourceList = Annotated[tuple[SourceName, ...], _NOT_EMPTY, AfterValidator(_unique)]
EventList = Annotated[tuple[EventName, ...], _NOT_EMPTY, AfterValidator(_unique)]
NameList = Annotated[tuple[Name, ...], _NOT_EMPTY, AfterValidator(_unique)]
_HeaderMap = Annotated[Mapping[str, str], PlainSerializer(dict)]
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _problem(message: str) -> PydanticCustomError:
    # The message travels as context, so braces in it are never taken as a template.
    return PydanticCustomError(_PROBLEM, "{message}", {"message": message})


def _merge(title: str, errors: Iterable[ErrorDetails], problems: list[Problem]) -> ValidationError:
    """One ValidationError holding pydantic's errors and ours. Raised from a validator, it
    gets every location prefixed with the model's own place in the file."""
    details: list[InitErrorDetails] = []
    for err in errors:
        ctx = err.get("ctx", {})
        kind = _problem(ctx["message"]) if err["type"] == _PROBLEM else err["type"]
        details.append(InitErrorDetails(type=kind, loc=err["loc"], input=err["input"], ctx=ctx))
    details += [InitErrorDetails(type=_problem(msg), loc=loc, input=None) for loc, msg in problems]
    return ValidationError.from_exception_data(title, details, hide_input=True)


def _given(data: Mapping[str, Any], *keys: str) -> bool:
    return any(data.get(key) is not None for key in keys)


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        hide_input_in_errors=True,
        validate_default=True,  # defaults get the types the fields declare (3600 -> 3600.0)
    )

    _secret_files: ClassVar[tuple[str, ...]] = ()
    """Fields that may instead be read from a file named by ``<field>_file``."""

    @model_validator(mode="wrap")
    @classmethod
    def _validate_all(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self], info: ValidationInfo
    ) -> Self:
        # Checks that span fields run on the raw input, beside pydantic's field checks, so
        # that one pass reports every problem, not only those of otherwise valid models.
        problems: list[Problem] = []
        unread: set[str] = set()  # fields whose secret file failed: "missing" would be noise
        if isinstance(data, dict):
            # null means "not given" for known keys (a section with every line commented out)
            data = {k: v for k, v in data.items() if v is not None or k not in cls.model_fields}
            cls._pre_validate(data, problems)
            unread = cls._read_secret_files(data, problems, _context_base_dir(info.context))
        try:
            model = handler(data)
        except ValidationError as exc:
            if not problems:
                raise
            errors = [e for e in exc.errors() if not (e["loc"] and e["loc"][0] in unread)]
            raise _merge(cls.__name__, errors, problems) from None
        if problems:
            raise _merge(cls.__name__, (), problems)
        return model

    @classmethod
    def _pre_validate(cls, data: dict[str, Any], problems: list[Problem]) -> None:
        """Fill computed defaults and check what spans several keys, on the raw input."""

    @classmethod
    def _read_secret_files(
        cls, data: dict[str, Any], problems: list[Problem], base_dir: Path
    ) -> set[str]:
        unread: set[str] = set()
        for key in cls._secret_files:
            file_key = f"{key}_file"
            where = data.pop(file_key, None)
            if where is None:
                continue
            if data.get(key) is not None:
                problems.append(((file_key,), f"give either {key} or {file_key}, not both"))
                continue
            try:
                data[key] = read_secret_file(where, base_dir)
            except ValueError as exc:
                problems.append(((file_key,), str(exc)))
                unread.add(key)
        return unread


# --- the models ----------------------------------------------------------------------


class RetrySettings(_Model):
    """Delivery retries of one sink: exponential back-off with full jitter."""

    initial_seconds: float = Field(1, gt=0)
    max_seconds: float = Field(60, gt=0)
    max_age_seconds: float = Field(86400, gt=0)
    max_attempts: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _cap_not_below_start(self) -> Self:
        if self.max_seconds < self.initial_seconds:
            raise ValueError("max_seconds must not be less than initial_seconds")
        return self


class PollSettings(_Model):
    interval_seconds: float = Field(30, gt=0)
    page_size: int = Field(100, ge=1, le=1000)
    timeout_seconds: float = Field(10, gt=0)
    max_concurrency: int = Field(4, ge=1, le=64)
    strategy: Literal["incremental", "full"] = "incremental"
    jitter_fraction: float = Field(0.1, ge=0, le=0.5)
    max_response_bytes: int = Field(16 * MIB, ge=1024)
    max_pages: int = Field(1000, ge=1)  # one listing; a list that never ends is cut here


class HttpSettings(_Model):
    _secret_files = ("auth_token",)

    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:9478"
    auth_token: Secret | None = None

    @property
    def host(self) -> str:
        """The host to bind, IPv6 without brackets."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


class LogSettings(_Model):
    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = "info"
    format: Annotated[Literal["auto", "json", "console"], BeforeValidator(_lower)] = "auto"


class ManagerSettings(_Model):
    """One CipherTrust Manager."""

    _secret_files = ("password", "refresh_token")

    name: Name
    url: Annotated[str, AfterValidator(_manager_url)]
    username: NonEmpty | None = None
    password: Secret | None = None
    refresh_token: Secret | None = None
    domain: NonEmpty | None = None
    verify_tls: bool = True
    ca_file: Annotated[Path, AfterValidator(_readable_file)] | None = None
    sources: SourceList = SOURCE_NAMES

    @classmethod
    def _pre_validate(cls, data: dict[str, Any], problems: list[Problem]) -> None:
        with_password = _given(data, "password", "password_file")
        if not with_password and not _given(data, "refresh_token", "refresh_token_file"):
            problems.append(
                (
                    (),
                    "needs credentials: password (or password_file) or refresh_token "
                    "(or refresh_token_file)",
                )
            )
        elif with_password and not _given(data, "username"):
            problems.append((("username",), "is required with a password"))


class SinkSettings(_Model):
    """What every sink has. Filters left out (None) let every event through."""

    type: str
    name: Name = ""  # filled with the type when left out
    events: EventList | None = None
    sources: SourceList | None = None
    managers: NameList | None = None
    retry: RetrySettings = Field(default_factory=RetrySettings)
    # batches in flight at once; one job's (or source's) events still arrive in order
    max_in_flight: int = Field(4, ge=1, le=64)

    @classmethod
    def _pre_validate(cls, data: dict[str, Any], problems: list[Problem]) -> None:
        data.setdefault("name", cls.model_fields["type"].default)

    @property
    def display_url(self) -> str:
        """Where the sink sends events, safe to print."""
        return "stdout"


class LogSinkSettings(SinkSettings):
    type: Literal["log"] = "log"


class WebhookSinkSettings(SinkSettings):
    _secret_files = ("url", "secret")

    type: Literal["webhook"] = "webhook"
    url: SecretUrl
    secret: Annotated[SecretStr, AfterValidator(_webhook_secret)] | None = None
    headers: Annotated[
        _HeaderMap,
        _headers(
            frozenset(
                {
                    "webhook-id",
                    "webhook-timestamp",
                    "webhook-signature",
                    "content-type",
                    "content-length",
                    "host",
                }
            )
        ),
    ] = Field(default_factory=lambda: _NO_HEADERS, repr=False)
    timeout_seconds: Timeout = 10

    @property
    def display_url(self) -> str:
        return redact_url(self.url.get_secret_value())

    def signing_key(self) -> bytes | None:
        """The HMAC key: base64-decoded after ``whsec_``, else the secret's UTF-8 bytes."""
        if self.secret is None:
            return None
        text = self.secret.get_secret_value()
        if text.startswith(WEBHOOK_SECRET_PREFIX):
            return base64.b64decode(text.removeprefix(WEBHOOK_SECRET_PREFIX))
        return text.encode()


class SlackSinkSettings(SinkSettings):
    _secret_files = ("url",)

    type: Literal["slack"] = "slack"
    url: SecretUrl
    timeout_seconds: Timeout = 10
    # a channel is read top to bottom, and Slack takes about one message a second per
    # webhook: messages go one at a time, in outbox order, unless raised
    max_in_flight: int = Field(1, ge=1, le=64)

    @property
    def display_url(self) -> str:
        return redact_url(self.url.get_secret_value())


class AlertmanagerSinkSettings(SinkSettings):
    type: Literal["alertmanager"] = "alertmanager"
    url: Annotated[str, AfterValidator(_alertmanager_url), Field(repr=False)]
    resolve_after_seconds: float = Field(3600, gt=0)
    timeout_seconds: Timeout = 10
    headers: Annotated[
        _HeaderMap, _headers(frozenset({"content-type", "content-length", "host"}))
    ] = Field(default_factory=lambda: _NO_HEADERS, repr=False)

    @property
    def display_url(self) -> str:
        return redact_url(self.url)


AnySinkSettings = Annotated[
    LogSinkSettings | WebhookSinkSettings | SlackSinkSettings | AlertmanagerSinkSettings,
    Field(discriminator="type"),
]
SINK_TYPES: Mapping[str, type[SinkSettings]] = MappingProxyType(
    {
        str(cls.model_fields["type"].default): cls
        for cls in (
            LogSinkSettings,
            WebhookSinkSettings,
            SlackSinkSettings,
            AlertmanagerSinkSettings,
        )
    }
)


def _some_managers(value: object) -> object:
    if isinstance(value, list | tuple) and not value:
        raise ValueError(_NO_MANAGERS)
    return value


def _entries(value: object) -> list[tuple[int, object]]:
    return list(enumerate(value)) if isinstance(value, list | tuple) else []


def _value(item: object, key: str) -> object:
    if isinstance(item, dict):
        return item.get(key)
    return getattr(item, key, None) if isinstance(item, BaseModel) else None


class Settings(_Model):
    """The whole configuration file."""

    managers: Annotated[tuple[ManagerSettings, ...], BeforeValidator(_some_managers)]
    poll: PollSettings = Field(default_factory=PollSettings)
    stuck_after_seconds: float = Field(3600, gt=0)
    state_path: Annotated[Path, AfterValidator(_state_path)] = Path("monitor-state.db")
    retention_days: float = Field(7, gt=0)
    http: HttpSettings = Field(default_factory=HttpSettings)
    sinks: tuple[AnySinkSettings, ...] = Field(default_factory=lambda: (LogSinkSettings(),))
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def _pre_validate(cls, data: dict[str, Any], problems: list[Problem]) -> None:
        managers: dict[str, int] = {}
        for i, manager in _entries(data.get("managers")):
            name = _value(manager, "name")
            if not isinstance(name, str):
                continue
            if name in managers:
                problems.append(
                    (
                        ("managers", i, "name"),
                        f"{_show(name)} is already the name of managers[{managers[name]}]; "
                        "manager names must be unique",
                    )
                )
            managers.setdefault(name, i)
        sinks: dict[str, int] = {}
        for i, sink in _entries(data.get("sinks")):
            name = _value(sink, "name") or _value(sink, "type")  # a sink is named after its type
            if isinstance(name, str) and name in sinks:
                problems.append(
                    (
                        ("sinks", i, "name"),
                        f"sink name {_show(name)} is already used by sinks[{sinks[name]}]; "
                        "give each sink a distinct name",
                    )
                )
            elif isinstance(name, str):
                sinks[name] = i
            for k, ref in _entries(_value(sink, "managers")):
                if managers and isinstance(ref, str) and ref not in managers:
                    problems.append(
                        (
                            ("sinks", i, "managers", k),
                            f"{_show(ref)} is not a configured manager"
                            f"{_did_you_mean(ref, managers)}; configured managers are "
                            f"{', '.join(managers)}",
                        )
                    )


# --- loading -------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, interpolate and validate the YAML file at ``path``; raise ``ConfigError``.

    ``environ`` (default ``os.environ``) feeds ``${VAR}``; relative ``*_file`` paths are
    taken from the file's directory.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: the configuration file does not exist"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{file}: the configuration file is not UTF-8 text"]) from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError([f"{file}: cannot read the configuration file: {reason}"]) from None
    try:
        data = read_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "syntax error"
        raise ConfigError([f"{file}{where}: invalid YAML: {what}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}: invalid YAML: {exc}"]) from None
    return _build(data, environ, file.absolute().parent, str(file))


def parse_config(
    data: object,
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Settings:
    """Like ``load_config`` for already-parsed YAML; relative ``*_file`` paths are taken
    from ``base_dir`` (default: the current directory)."""
    return _build(data, environ, base_dir or Path.cwd(), "configuration")


def _build(
    data: object, environ: Mapping[str, str] | None, base_dir: Path, origin: str
) -> Settings:
    if data is None:
        raise ConfigError([f"{origin}: is empty; it needs at least a managers list"])
    if not isinstance(data, dict):
        raise ConfigError(
            [
                f"{origin}: the top level must be a mapping of keys such as managers, poll and "
                f"sinks, not a {'list' if isinstance(data, list) else type(data).__name__}"
            ]
        )
    problems: list[Problem] = []
    tree = interpolate(data, os.environ if environ is None else environ, (), problems)
    try:
        settings = Settings.model_validate(tree, context={"base_dir": base_dir.absolute()})
    except ValidationError as exc:
        # A value whose ${VAR} failed fails validation too: one sentence about it is enough.
        failed = [loc for loc, _ in problems]
        for err in exc.errors(include_url=False, include_input=False):
            loc, message = _explain(err)
            if not any(loc[: len(done)] == done for done in failed):
                problems.append((loc, message))
    if problems:
        # in the file's order: a model's cross-key problems come after its keys' problems
        order = {key: i for i, key in enumerate(data)}
        problems.sort(key=lambda problem: _position(problem[0], order))
        raise ConfigError(f"{format_loc(loc) or origin}: {message}" for loc, message in problems)
    return settings


def _position(loc: Loc, order: Mapping[object, int]) -> tuple[int, int]:
    """Sort key: the top-level key's place in the file, then the list index under it."""
    top = order.get(loc[0], -1) if loc else -1
    index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else -1
    return top, index


# --- pydantic's errors, in our words ---------------------------------------------------

_PLAIN = {
    "missing": "is required",
    "string_type": "must be text (quote it if YAML reads it as a number, date or true/false)",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of keys to values",
    "mapping_type": "must be a mapping of keys to values",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "string_too_short": "must not be empty",
    "path_type": "must be a file path",
}
_BOUNDS = {
    "greater_than": ("gt", "must be greater than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}


def _explain(err: ErrorDetails) -> Problem:
    loc, owner = _walk(err["loc"])
    kind, ctx = err["type"], err.get("ctx", {})
    if kind == _PROBLEM:
        return loc, str(ctx["message"])
    if kind == "value_error":
        return loc, str(ctx["error"])
    if loc == ("managers",) and kind == "missing":
        return loc, _NO_MANAGERS
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = [*owner.model_fields, *(f"{f}_file" for f in owner._secret_files)] if owner else []
        hint = _did_you_mean(key, known)
        if not hint and known:
            hint = f" (valid keys here: {', '.join(known)})"
        return loc, f"unknown key{hint}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):  # only sinks are a union
        types = ", ".join(SINK_TYPES)
        if kind == "union_tag_not_found":
            return (*loc, "type"), f"is required: one of {types}"
        return (
            *loc,
            "type",
        ), f"unknown sink type {_show(str(ctx['tag']))}; valid types are {types}"
    if kind in ("literal_error", "enum"):
        return loc, f"must be {ctx['expected']}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        bound = ctx[key]
        return loc, f"{words} {int(bound) if float(bound).is_integer() else bound}"
    if kind in _PLAIN:
        return loc, _PLAIN[kind]
    message = err["msg"]
    return loc, message[:1].lower() + message[1:]


def _walk(loc: Loc) -> tuple[Loc, type[_Model] | None]:
    """Pydantic's error location -> the user's key path, and the model owning its last key.

    The sinks union puts the chosen type's tag into the location; the user never wrote
    it, so it is dropped.
    """
    path: list[str | int] = []
    annotation: Any = Settings
    owner: type[_Model] | None = None
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, _Model):
            owner = annotation
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field else None
        elif get_origin(annotation) in (Union, UnionType) and part in SINK_TYPES:
            annotation = SINK_TYPES[str(part)]
            continue
        elif get_origin(annotation) is tuple and isinstance(part, int):
            owner, annotation = None, get_args(annotation)[0]
        else:
            owner, annotation = None, None
        path.append(part)
    return tuple(path), owner


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated[...]`` and ``| None`` down to the type underneath."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (Union, UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation
