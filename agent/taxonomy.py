"""The user's taxonomy: tags with descriptions, keywords and aliases, loaded from TOML."""

from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.errors import ConfigError

DEFAULT_TAXONOMY = Path(__file__).parent / "taxonomies" / "default.toml"


class Tag(BaseModel):
    """One tag a paper can receive."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("tag name is blank")
        return value


class Taxonomy(BaseModel):
    """An ordered set of tags; ``examples`` optionally points to labelled papers (JSONL)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: list[Tag] = Field(min_length=1)
    max_tags: int | None = Field(default=None, ge=1)
    examples: Path | None = None

    @field_validator("tags")
    @classmethod
    def _unique(cls, tags: list[Tag]) -> list[Tag]:
        seen: dict[str, str] = {}
        for tag in tags:
            for label in (
                tag.name,
                *(a for a in tag.aliases if a.casefold() != tag.name.casefold()),
            ):
                key = label.casefold()
                if key in seen and seen[key] != tag.name:
                    raise ValueError(f"'{label}' names both '{seen[key]}' and '{tag.name}'")
                if key in seen and label == tag.name:
                    raise ValueError(f"tag '{tag.name}' is defined twice")
                seen[key] = tag.name
        return tags

    @property
    def names(self) -> list[str]:
        """Tag names in taxonomy order."""
        return [tag.name for tag in self.tags]

    @cached_property
    def _lookup(self) -> dict[str, str]:
        table: dict[str, str] = {}
        for tag in self.tags:
            for label in (tag.name, *tag.aliases):
                table[label.strip().casefold()] = tag.name
        return table

    def tag_limit(self, requested: int | None) -> int:
        """Most tags per paper: the flag or config, else this file's ``max_tags``, else 3."""
        return min(requested or self.max_tags or 3, len(self.tags))

    def resolve(self, label: str) -> str | None:
        """The canonical tag name for ``label`` (case-insensitive, aliases allowed), or None."""
        return self._lookup.get(label.strip().casefold())


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read a taxonomy TOML file (the bundled default when ``path`` is None)."""
    file = Path(path) if path is not None else DEFAULT_TAXONOMY
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"taxonomy file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read taxonomy file {file}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"taxonomy file {file} is not valid TOML: {exc}") from None
    if isinstance(data.get("examples"), str):
        data["examples"] = (file.parent / data["examples"]).resolve()
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise ConfigError(f"taxonomy file {file}: {where}: {first['msg']}") from None
