"""Settings for a run: CLI flag > environment > config file > default (DESIGN 7)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import ConfigError
from agent.redact import register
from agent.retry import RetryPolicy
from agent.sources.base import SourceOptions, Window

CONFIG_FILE = "paper-agent.toml"
DEFAULT_MODEL = "gpt-4o-mini"


class FileConfig(BaseModel):
    """What ``paper-agent.toml`` may hold (secrets come from the environment, never the file)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["auto", "openai", "local"] | None = None
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    taxonomy: Path | None = None
    max_tags: int | None = Field(default=None, ge=1, le=20)
    summary_words: int | None = Field(default=None, ge=5, le=200)
    concurrency: int | None = Field(default=None, ge=1, le=256)
    prompts_dir: Path | None = None
    timeout: float | None = Field(default=None, gt=0)
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    max_repairs: int | None = Field(default=None, ge=0, le=5)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=0)
    response_format: Literal["json_schema", "json_object"] | None = None
    max_consecutive_failures: int | None = Field(default=None, ge=0)
    max_abstract_chars: int | None = Field(default=None, ge=200)
    arxiv_api_url: str | None = None
    arxiv_rss_url: str | None = None
    hf_api_url: str | None = None
    arxiv_delay: float | None = Field(default=None, ge=0)


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one run."""

    backend: str = "auto"
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    taxonomy: Path | None = None
    max_tags: int | None = None  # None: the taxonomy's max_tags, else 3
    summary_words: int = 40
    concurrency: int = 8
    prompts_dir: Path | None = None
    timeout: float = 60.0
    max_attempts: int = RetryPolicy.max_attempts
    max_repairs: int = 2
    temperature: float = 0.0
    max_tokens: int | None = None  # None: sized to the answer; 0: no limit sent
    response_format: str = "json_schema"
    max_consecutive_failures: int = 10  # 0: never stop early
    max_abstract_chars: int = 12_000
    arxiv_api_url: str = SourceOptions.arxiv_api_url
    arxiv_rss_url: str = SourceOptions.arxiv_rss_url
    hf_api_url: str = SourceOptions.hf_api_url
    arxiv_delay: float = SourceOptions.arxiv_delay  # seconds between arXiv requests
    use_cache: bool = True
    home: Path = field(default_factory=lambda: state_dir())

    def files_read(self, config_path: Path | None = None) -> list[Path]:
        """Every file these settings make a run read: config, taxonomy, prompt templates."""
        config = config_path or Path(CONFIG_FILE)
        files = [config] if config.is_file() else []
        if self.taxonomy is not None:
            files.append(self.taxonomy)
        if self.prompts_dir is not None and self.prompts_dir.is_dir():
            files.extend(sorted(self.prompts_dir.glob("*.j2")))
        return files

    def source_options(
        self, window: Window, max_papers: int, announce: frozenset[str] | None = None
    ) -> SourceOptions:
        """What the sources need from these settings, for one fetch."""
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

    def resolved_backend(self) -> str:
        """``auto`` becomes ``openai`` when a key or base URL is configured, else ``local``."""
        if self.backend != "auto":
            return self.backend
        return "openai" if (self.api_key or self.base_url) else "local"


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """The state dir: ``PAPER_AGENT_HOME`` or the platform cache dir."""
    env = os.environ if env is None else env
    if env.get("PAPER_AGENT_HOME"):
        return Path(env["PAPER_AGENT_HOME"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("paper-agent"))


def read_config_file(path: Path | None) -> FileConfig:
    """Parse ``path`` (or ``./paper-agent.toml`` when present); relative paths resolve beside it."""
    explicit = path is not None
    file = path if explicit else Path(CONFIG_FILE)
    if not file.exists():
        if explicit:
            raise ConfigError(f"config file not found: {file}")
        return FileConfig()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    try:
        config = FileConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"config file {file}: {where}: {first['msg']}") from None
    for name in ("taxonomy", "prompts_dir"):
        value = getattr(config, name)
        if value is not None and not value.is_absolute():
            config = config.model_copy(update={name: file.parent / value})
    return config


def resolve_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Merge flags (None means unset), environment, config file and defaults."""
    env = os.environ if env is None else env
    config = read_config_file(config_path)
    values: dict[str, Any] = {
        k: v for k, v in config.model_dump().items() if v is not None and k != "api_key_env"
    }
    from_env = {
        "base_url": env.get("OPENAI_BASE_URL"),
        "model": env.get("PAPER_AGENT_MODEL"),
        "arxiv_api_url": env.get("PAPER_AGENT_ARXIV_API_URL"),
        "arxiv_rss_url": env.get("PAPER_AGENT_ARXIV_RSS_URL"),
        "hf_api_url": env.get("PAPER_AGENT_HF_API_URL"),
    }
    values.update({k: v for k, v in from_env.items() if v})
    values.update({k: v for k, v in flags.items() if v is not None})
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    key_var = config.api_key_env or "OPENAI_API_KEY"
    api_key = (env.get(key_var) or "").strip() or None
    register(api_key)  # whatever its shape, it never reaches a log line or a file
    settings = replace(Settings(home=state_dir(env)), **values)
    if settings.base_url:
        _check_base_url(settings.base_url)
    return replace(settings, api_key=api_key)


def _check_base_url(url: str) -> None:
    """An http(s) URL with a host and a valid port; a password in it becomes a secret."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError when out of range)
    except ValueError as exc:
        raise ConfigError(f"base URL is not a valid URL: {exc}") from None
    register(parts.password)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("the base URL must be an http(s) URL such as http://localhost:8000/v1")
