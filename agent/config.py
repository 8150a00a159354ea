"""Settings for a run: CLI flag > environment > config file > default (DESIGN 7).

Each setting is declared once, as a field of ``Settings`` made by ``setting()``: its type,
default, bounds, flag, environment variable, config section and help. The CLI options
(``settings_options``), the config file's validation (``FileConfig``), ``--help`` and the
README's configuration table (``settings_table``, checked by a test) all come from it.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agent.errors import ConfigError
from agent.llm.redact import register

if TYPE_CHECKING:  # this module stays light: `run --help` imports it
    from pydantic import BaseModel

    from agent.prefilter import Filters
    from agent.sources.base import SourceOptions, Window

CONFIG_FILE = "paper-agent.toml"
# A source spec's kind, two letters at least ("C:" is a drive): `liked = "zotero:users/1"`.
_SPEC_PREFIX = re.compile(r"[a-z][a-z0-9-]+:")
DEFAULT_MODEL = "gpt-4o-mini"
LLM = ("run", "digest", "post")  # the commands that may call the LLM (--highlights)
DIGEST_SORTS = ("relevance", "tag", "upvotes")
DEFAULT_TOP = 15  # what fits one Slack screen with room for the per-tag lines
# How fast a slow server writes an LLM answer: llama.cpp on a CPU core gives 2-20 tokens/s,
# and the answer arrives whole, so a long one may take minutes before its first byte.
SLOW_TOKENS_PER_SECOND = 5.0


@dataclass(frozen=True)
class Spec:
    """How one setting is given: its flag, environment variable, config key and help."""

    kind: type
    help: str
    flag: str | None = None
    env: str | None = None
    section: str | None = None  # a [section] of the config file; None: the top level
    config: bool = True  # may appear in the config file
    commands: tuple[str, ...] = ("run",)
    choices: tuple[str, ...] = ()
    bounds: dict[str, float] = field(default_factory=dict)  # ge / le / gt
    shown: str | None = None  # the default as --help and the README show it
    negate: bool = False  # a flag that turns the setting off (--no-cache)
    many: bool = False  # a repeatable flag and a list in the config file
    # What the config file may hold, when it differs from ``kind``: a type, or "module:name"
    # of one, imported only when a config file is read (this module stays light).
    config_kind: Any = None


def setting(default: Any = None, help: str = "", kind: type = str, **spec: Any) -> Any:
    """A ``Settings`` field with its ``Spec`` (``default_factory`` for a callable default)."""
    meta = {"spec": Spec(kind=kind, help=help, **spec)}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """The state dir: ``PAPER_AGENT_HOME`` or the platform cache dir."""
    env = os.environ if env is None else env
    if env.get("PAPER_AGENT_HOME"):
        return Path(env["PAPER_AGENT_HOME"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("paper-agent"))


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one run."""

    backend: str = setting(
        "auto",
        "Backend: the LLM (openai), offline (local), or auto: the LLM when a key or base URL "
        "is set",
        flag="--backend",
        choices=("auto", "openai", "local"),
    )
    model: str = setting(
        DEFAULT_MODEL, "Model name", flag="--model", env="PAPER_AGENT_MODEL", commands=LLM
    )
    base_url: str | None = setting(
        None,
        "OpenAI-compatible endpoint",
        flag="--base-url",
        env="OPENAI_BASE_URL",
        commands=LLM,
        shown="https://api.openai.com/v1",
    )
    api_key_env: str = setting(
        "OPENAI_API_KEY", "Name of the environment variable that holds the API key"
    )
    api_key: str | None = field(default=None, repr=False)  # read from $api_key_env, never a file
    taxonomy: Path | None = setting(
        None,
        "Taxonomy TOML file (replaces the bundled one)",
        Path,
        flag="--taxonomy",
        commands=("run", "digest", "post"),
        shown="bundled ML taxonomy (20 tags)",
    )
    max_tags: int | None = setting(
        None,
        "Most tags per paper",
        int,
        flag="--max-tags",
        bounds={"ge": 1, "le": 20},
        shown="taxonomy's max_tags, else 3",
    )
    summary_words: int = setting(
        40, "Word limit of a summary", int, flag="--summary-words", bounds={"ge": 5, "le": 200}
    )
    semantic: bool = setting(
        False,
        "Offline backend: also score tags with a bundled sentence-embedding model (needs "
        "pip install 'paper-agent[semantic]'; better tags, about 25 papers/s)",
        bool,
        flag="--semantic",
        shown="off",
    )
    concurrency: int = setting(
        8,
        "Most requests in flight (fewer while the server answers 429)",
        int,
        flag="--concurrency",
        bounds={"ge": 1, "le": 256},
    )
    rpm: float | None = setting(
        None,
        "Client-side limit of requests per minute",
        float,
        flag="--rpm",
        bounds={"gt": 0},
        shown="none",
    )
    tpm: float | None = setting(
        None,
        "Client-side limit of tokens per minute (prompt characters / 4 + max_tokens)",
        float,
        flag="--tpm",
        bounds={"gt": 0},
        shown="none",
    )
    papers_per_request: int = setting(
        1,
        "Papers one LLM request annotates: fewer prompt tokens, a little less care per paper",
        int,
        flag="--papers-per-request",
        bounds={"ge": 1, "le": 32},
    )
    prompts_dir: Path | None = setting(
        None,
        "Directory with system.j2 and user.j2 to use instead of the bundled ones",
        Path,
        flag="--prompts-dir",
        commands=LLM,
        shown="bundled prompts/",
    )
    use_cache: bool = setting(
        True,
        "Neither read nor write the answer cache",
        bool,
        flag="--no-cache",
        negate=True,
        config=False,
        commands=LLM,
        shown="cache on",
    )
    timeout: float = setting(
        60.0,
        f"Seconds per request; an LLM answer gets its max_tokens at {SLOW_TOKENS_PER_SECOND:g} "
        "tokens/s more (slow local servers)",
        float,
        bounds={"gt": 0},
    )
    max_attempts: int = setting(
        8,
        "Attempts per request, retries included",
        int,
        bounds={"ge": 1, "le": 20},
    )
    max_repairs: int = setting(2, "Re-asks after an invalid answer", int, bounds={"ge": 0, "le": 5})
    batch_api: bool = setting(
        False,
        "Send the papers through OpenAI's Batch API: half the price, answers within 24 h",
        bool,
        flag="--batch-api",
        shown="off",
    )
    batch_poll_seconds: float = setting(
        30.0,
        "First wait between Batch API status checks (grows to 10 min)",
        float,
        bounds={"gt": 0},
    )
    temperature: float = setting(0.0, "Sampling temperature", float, bounds={"ge": 0, "le": 2})
    max_tokens: int | None = setting(
        None,
        "Answer token limit (0: send no limit)",
        int,
        bounds={"ge": 0},
        shown="sized to the answer; none for models that want max_completion_tokens",
    )
    response_format: str = setting(
        "json_schema",
        "json_schema, or json_object for servers without it",
        choices=("json_schema", "json_object"),
    )
    max_consecutive_failures: int = setting(
        10,
        "Server failures in a row that stop launching papers (0: never)",
        int,
        bounds={"ge": 0},
    )
    max_abstract_chars: int = setting(
        12_000, "Longer abstracts are cut at a sentence end", int, bounds={"ge": 200}
    )
    max_cost: float | None = setting(
        None,
        "Stop launching requests before the estimated spend in USD would pass this",
        float,
        flag="--max-cost",
        bounds={"gt": 0},
        shown="none",
    )
    prices: dict[str, dict[str, float]] = setting(
        {},
        'USD per 1M tokens for a model: [prices."MODEL"] with input, output, cached_input, '
        "batch_discount",
        dict,
        config_kind="agent.llm.cost:PriceTables",
        commands=(),
        shown="OpenAI list prices of common models (agent/llm/cost.py)",
    )
    arxiv_api_url: str = setting(
        "https://export.arxiv.org/api/query",
        "arXiv export API",
        env="PAPER_AGENT_ARXIV_API_URL",
        commands=(),
    )
    arxiv_rss_url: str = setting(
        "https://rss.arxiv.org/rss",
        "arXiv RSS feeds",
        env="PAPER_AGENT_ARXIV_RSS_URL",
        commands=(),
    )
    hf_api_url: str = setting(
        "https://huggingface.co/api/daily_papers",
        "Hugging Face Daily Papers API",
        env="PAPER_AGENT_HF_API_URL",
        commands=(),
    )
    zotero_api_url: str = setting(
        "https://api.zotero.org",
        "Zotero web API (liked papers from zotero:users/ID)",
        env="PAPER_AGENT_ZOTERO_API_URL",
        commands=(),
    )
    arxiv_delay: float = setting(
        3.0,  # arXiv's terms ask for at least 3 s
        "Seconds between two arXiv requests",
        float,
        bounds={"ge": 0},
        commands=(),
    )
    criteria: list[str | dict[str, str]] = setting(
        [],
        "What the team cares about, one criterion each (repeatable)",
        flag="--interest",
        section="interests",
        many=True,
        config_kind=list[str | dict[str, str]],
        commands=("run",),
        shown="none",
    )
    liked: Path | None = setting(
        None,
        "Papers the team liked: any input format, a BibTeX, RIS or CSL JSON library, or "
        "zotero:users/ID[/collections/KEY]; similar papers rank up",
        Path,
        flag="--liked",
        section="interests",
        shown="none",
    )
    min_relevance: float | None = setting(
        None,
        "Leave papers below this relevance (0-10) out of the digest",
        float,
        flag="--min-relevance",
        section="interests",
        bounds={"ge": 0, "le": 10},
        commands=("run", "digest", "post"),
        shown="none",
    )
    include: list[str] = setting(
        [],
        "Keep only papers that mention one of these keywords (repeatable)",
        flag="--include",
        section="filters",
        many=True,
        shown="none",
    )
    exclude: list[str] = setting(
        [],
        "Drop papers that mention any of these keywords (repeatable)",
        flag="--exclude",
        section="filters",
        many=True,
        shown="none",
    )
    match: str = setting(
        "any",
        "--include keeps papers with any keyword, or all of them",
        flag="--match",
        section="filters",
        choices=("any", "all"),
    )
    authors: list[str] = setting(
        [],
        "Always keep papers by these authors (repeatable)",
        flag="--author",
        section="filters",
        many=True,
        shown="none",
    )
    categories: list[str] = setting(
        [],
        "Keep only papers in these arXiv categories, e.g. cs.LG or cs (repeatable)",
        flag="--category",
        section="filters",
        many=True,
        shown="none",
    )
    site_url: str | None = setting(
        None,
        "Public URL the archive site is served from: its feed's links are made absolute",
        flag="--base-url",
        env="PAPER_AGENT_SITE_URL",
        section="site",
        commands=("site",),
        shown="none",
    )
    home: Path = setting(
        state_dir,
        "State dir: the answer cache and the library (papers, runs, seen, deliveries)",
        Path,
        env="PAPER_AGENT_HOME",
        config=False,
        commands=(),
        shown="platform cache dir",
    )

    def files_read(self, config_path: Path | None = None) -> list[Path]:
        """Every file these settings make a run read: config, taxonomy, prompt templates."""
        config = config_path or Path(CONFIG_FILE)
        files = [config] if config.is_file() else []
        files += [path for path in (self.taxonomy, self.liked) if path is not None]
        if self.prompts_dir is not None and self.prompts_dir.is_dir():
            files.extend(sorted(self.prompts_dir.glob("*.j2")))
        return files

    def source_options(
        self, window: Window, max_papers: int, announce: frozenset[str] | None = None
    ) -> SourceOptions:
        """What the sources need from these settings, for one fetch."""
        from agent.sources.base import SourceOptions

        extra = {"announce": announce} if announce is not None else {}
        return SourceOptions(
            window=window,
            max_papers=max_papers,
            arxiv_api_url=self.arxiv_api_url,
            arxiv_rss_url=self.arxiv_rss_url,
            hf_api_url=self.hf_api_url,
            arxiv_delay=self.arxiv_delay,
            **extra,
        )

    def filters(self) -> Filters | None:
        """The prefilters these settings ask for, or None (every paper is kept)."""
        if not (self.include or self.exclude or self.authors or self.categories):
            return None
        from agent.prefilter import Filters

        try:
            return Filters(
                include=self.include,
                exclude=self.exclude,
                match=self.match,
                authors=self.authors,
                categories=self.categories,
            )
        except ValueError as exc:  # pydantic's ValidationError: a blank keyword, say
            raise ConfigError(f"filters: {exc.errors()[0]['msg']}") from None  # type: ignore[attr-defined]

    def resolved_backend(self) -> str:
        """``auto`` becomes ``openai`` when a key or base URL is configured, else ``local``."""
        if self.backend != "auto":
            return self.backend
        return "openai" if (self.api_key or self.base_url) else "local"


def specs() -> list[tuple[str, Spec, Any]]:
    """(name, spec, default) of every declared setting, in declaration order."""
    found = []
    for f in fields(Settings):
        spec = f.metadata.get("spec")
        if spec is not None:
            default = f.default if f.default is not MISSING else None
            found.append((f.name, spec, default))
    return found


@cache
def file_config() -> type[BaseModel]:
    """The pydantic model of ``paper-agent.toml``, built from the declarations."""
    from pydantic import ConfigDict, Field, create_model

    # No NaN or infinity in any float: NaN passes every bound (max_cost = nan: no limit).
    strict = ConfigDict(extra="forbid", allow_inf_nan=False)
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for name, spec, _ in specs():
        if not spec.config:
            continue
        kind: Any = list[spec.kind] if spec.many else spec.kind
        if spec.config_kind is not None:
            kind = _named_type(spec.config_kind)
        if spec.choices:
            from typing import Literal

            kind = Literal[spec.choices]
        target = sections.setdefault(spec.section, {}) if spec.section else top
        target[name] = (kind | None, Field(default=None, **spec.bounds))
    for section, members in sections.items():
        model = create_model(f"{section.title()}Config", __config__=strict, **members)
        top[section] = (model | None, None)
    return create_model("FileConfig", __config__=strict, **top)


def _named_type(kind: Any) -> Any:
    """``kind`` itself, or the type a "module:name" string names."""
    if not isinstance(kind, str):
        return kind
    import importlib

    module, _, name = kind.partition(":")
    return getattr(importlib.import_module(module), name)


def read_config_file(path: Path | None) -> dict[str, Any]:
    """The settings ``path`` (or ``./paper-agent.toml`` when present) sets, validated; relative
    paths resolve beside it."""
    explicit = path is not None
    file = path if explicit else Path(CONFIG_FILE)
    if not file.exists():
        if explicit:
            raise ConfigError(f"config file not found: {file}")
        return {}
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {file} is not valid TOML: nested too deeply") from None
    from pydantic import ValidationError

    try:
        config = file_config().model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"config file {file}: {where}: {first['msg']}") from None
    sections = {spec.section for _, spec, _ in specs() if spec.section}
    values: dict[str, Any] = {}
    for key, value in config.model_dump(exclude_none=True).items():
        values.update(value if key in sections else {key: value})
    for name, spec, _ in specs():
        if spec.kind is not Path or name not in values or _SPEC_PREFIX.match(str(values[name])):
            continue  # not a file: "zotero:users/1"
        if not Path(values[name]).is_absolute():
            values[name] = file.parent / values[name]
    return values


def resolve_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Merge flags (None means unset), environment, config file and defaults."""
    env = os.environ if env is None else env
    values = read_config_file(config_path)
    for name, spec, _ in specs():
        if spec.env and env.get(spec.env):
            values[name] = Path(env[spec.env]).expanduser() if spec.kind is Path else env[spec.env]
    values.update({k: v for k, v in flags.items() if v is not None})
    known = {name for name, _, _ in specs()}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    settings = replace(Settings(), **values)
    api_key = (env.get(settings.api_key_env) or "").strip() or None
    register(api_key)  # whatever its shape, it never reaches a log line or a file
    if api_key is not None and not (api_key.isascii() and api_key.isprintable()):
        # An HTTP header cannot carry it: say so now, not as an encoding error mid-run.
        raise ConfigError(
            f"{settings.api_key_env} holds a character no API key has (a pasted quote or "
            "control character?); set it again"
        )
    for name in ("base_url", "arxiv_api_url", "arxiv_rss_url", "hf_api_url", "zotero_api_url"):
        if getattr(settings, name):
            _check_url(name, getattr(settings, name))
    return replace(settings, api_key=api_key)


def _check_url(name: str, url: str) -> None:
    """An http(s) URL with a host and a valid port; a password in it becomes a secret."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError when out of range)
    except ValueError as exc:
        raise ConfigError(f"{name} is not a valid URL: {exc}") from None
    register(parts.password)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL such as http://localhost:8000/v1")


def settings_options(command: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click options for every setting with a flag on ``command``; values reach the command
    under the settings' names (None when not given), ready for ``resolve_settings``."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        import click

        for name, spec, default in reversed(specs()):
            if spec.flag is None or command not in spec.commands:
                continue
            shown = spec.shown if spec.shown is not None else default
            help_text = f"{spec.help}.  [default: {shown}]" if not spec.negate else spec.help + "."
            if spec.env:
                help_text = help_text.replace("  [", f"  [env {spec.env}; ", 1)
            if spec.kind is bool:
                option = click.option(
                    spec.flag, name, flag_value=not spec.negate, default=None, help=help_text
                )
            else:
                option = click.option(
                    spec.flag,
                    name,
                    type=_click_type(spec),
                    default=None,
                    multiple=spec.many,
                    help=help_text,
                )
            function = option(function)
        return function

    return decorate


def _click_type(spec: Spec) -> Any:
    import click

    if spec.choices:
        return click.Choice(spec.choices)
    if spec.kind is Path:
        return click.Path(path_type=Path)
    if spec.kind in (int, float):
        range_type = click.IntRange if spec.kind is int else _finite_float_range()
        return range_type(
            min=spec.bounds.get("ge", spec.bounds.get("gt")),
            max=spec.bounds.get("le"),
            min_open="gt" in spec.bounds,
        )
    return spec.kind


@cache
def _finite_float_range() -> Any:
    """click's FloatRange without NaN and the infinities: ``--max-cost nan`` compares false
    with every bound, so it would pass the range and mean no limit at all."""
    import click

    class FiniteFloatRange(click.FloatRange):
        def convert(self, value: Any, param: Any, ctx: Any) -> Any:
            number = super().convert(value, param, ctx)
            if not math.isfinite(number):
                self.fail(f"{value!r} is not a finite number.", param, ctx)
            return number

    return FiniteFloatRange


def flag_values(params: dict[str, Any]) -> dict[str, Any]:
    """The settings among a command's parameters (the rest are the command's own)."""
    names = {name for name, _, _ in specs()}
    return {
        k: (list(v) or None if isinstance(v, tuple) else v) for k, v in params.items() if k in names
    }


def settings_table() -> str:
    """The README's configuration table, made from the declarations."""
    rows = ["| setting | flag | environment | config key | default |", "|---|---|---|---|---|"]
    for name, spec, default in specs():
        shown = spec.shown if spec.shown is not None else default
        key = (f"[{spec.section}] " if spec.section else "") + f"`{name}`" if spec.config else ""
        flag = f"`{spec.flag}`" if spec.flag else ""
        env = f"`{spec.env}`" if spec.env else ""
        rows.append(f"| {spec.help} | {flag} | {env} | {key} | {shown} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
