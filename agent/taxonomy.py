"""The user's taxonomy: tags with descriptions, keywords and aliases, loaded from TOML."""

from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.errors import ConfigError

DEFAULT_TAXONOMY = Path(__file__).parent / "taxonomies" / "default.toml"
# The description a fallback tag gets when the file names it without defining it.
FALLBACK_DESCRIPTION = "Papers outside every other tag."


class Tag(BaseModel):
    """One tag a paper can receive."""

    model_config = ConfigDict(extra="forbid")

    # True only on the taxonomy's fallback tag (a class, not a field: files cannot set it);
    # prompt templates read it as ``tag.is_fallback``.
    is_fallback: ClassVar[bool] = False

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
        if not value.isprintable():
            raise ValueError("tag name holds a control character or a line break")
        return value

    @field_validator("aliases")
    @classmethod
    def _strip_aliases(cls, values: list[str]) -> list[str]:
        # Compared stripped everywhere (a label " b " is "b"), so stored stripped, never blank.
        stripped = [v.strip() for v in values]
        if not all(stripped):
            raise ValueError("an alias is blank")
        return stripped


class FallbackTag(Tag):
    """The tag a paper gets when no other tag fits; never given together with other tags."""

    is_fallback: ClassVar[bool] = True


class Taxonomy(BaseModel):
    """An ordered set of tags; ``examples`` optionally points to labelled papers (JSONL).

    ``fallback`` names the tag for papers that fit no other: one of the tags, or a new one
    (described as ``FALLBACK_DESCRIPTION``). Either way it becomes the last tag.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: list[Tag] = Field(min_length=1)
    max_tags: int | None = Field(default=None, ge=1)
    examples: Path | None = None
    fallback: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _canonical_fallback(cls, data: Any) -> Any:
        # "other" names a tag "Other": spell it as the tag does before anything compares it.
        if not isinstance(data, dict) or not isinstance(data.get("fallback"), str):
            return data
        wanted = data["fallback"].strip()
        if not wanted:
            raise ValueError('fallback is blank: name a tag such as "Other", or remove it')
        tags = data.get("tags")
        for tag in tags if isinstance(tags, list) else []:
            name = (
                tag.name
                if isinstance(tag, Tag)
                else tag.get("name")
                if isinstance(tag, dict)
                else None
            )
            if isinstance(name, str) and name.strip().casefold() == wanted.casefold():
                wanted = name.strip()
                break
        return {**data, "fallback": wanted}

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

    @model_validator(mode="after")
    def _place_fallback(self) -> Taxonomy:
        # The list is this model's own copy (validation copied it), so editing it in place is
        # safe; the fallback goes last, where the prompt and the digest show it.
        if self.fallback is None:
            return self
        name = self.fallback
        if len(name) > 80:
            raise ValueError("fallback: a tag name has at most 80 characters")
        own = next((t for t in self.tags if t.name == name), None)
        if own is None:
            for tag in self.tags:
                if any(a.strip().casefold() == name.casefold() for a in tag.aliases):
                    raise ValueError(
                        f"fallback '{name}' is an alias of tag '{tag.name}': a fallback must be"
                        " a tag of its own, for papers outside every other tag"
                    )
            own = Tag(name=name, description=FALLBACK_DESCRIPTION)
        else:
            self.tags.remove(own)
        self.tags.append(FallbackTag.model_validate(own.model_dump()))
        if len(self.tags) < 2:
            raise ValueError("tags: a taxonomy needs at least one tag besides its fallback")
        return self

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

    @property
    def topics(self) -> list[Tag]:
        """The tags a paper can be about: every tag but the fallback."""
        return [tag for tag in self.tags if not tag.is_fallback]

    def tag_limit(self, requested: int | None) -> int:
        """Most tags per paper: the flag or config, else this file's ``max_tags``, else 3."""
        # The fallback is never given with another tag, so it adds nothing to the limit.
        return min(requested or self.max_tags or 3, len(self.topics))

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
    except RecursionError:
        raise ConfigError(f"taxonomy file {file} is not valid TOML: nested too deeply") from None
    if isinstance(data.get("examples"), str):
        data["examples"] = (file.parent / data["examples"]).resolve()
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise ConfigError(f"taxonomy file {file}: {where}: {first['msg']}") from None
