"""Taxonomy files: validation, tag matching, the per-paper tag limit."""

from __future__ import annotations

import pytest

from agent.errors import ConfigError
from agent.taxonomy import load_taxonomy


def write(tmp_path, text: str):
    path = tmp_path / "tax.toml"
    path.write_text(text)
    return path


def test_the_default_taxonomy_covers_the_field():
    taxonomy = load_taxonomy()
    assert 15 <= len(taxonomy.tags) <= 25
    assert taxonomy.resolve("large language models") == "LLMs"
    assert taxonomy.resolve("  rag ") == "Retrieval & RAG"
    assert taxonomy.resolve("Quantum Cooking") is None


def test_an_alias_equal_to_its_own_name_is_fine(tmp_path):
    taxonomy = load_taxonomy(
        write(tmp_path, '[[tags]]\nname = "A"\ndescription = "d"\naliases = ["a", "A"]\n')
    )
    assert taxonomy.resolve("a") == "A"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[tags]]\nname = "A"\ndescription = "d"\n[[tags]]\nname = "A"\ndescription = "e"\n',
            "defined twice",
        ),
        (
            '[[tags]]\nname = "A"\ndescription = "d"\n[[tags]]\nname = "B"\ndescription = "e"\n'
            'aliases = ["a"]\n',
            "names both 'A' and 'B'",
        ),
        ("tags = []\n", "tags"),
        ('[[tags]]\nname = "A"\n', "tags.0.description"),
        ("[[tags]\n", "not valid TOML"),
        (
            '[[tags]]\nname = "B"\ndescription = "d"\n[[tags]]\nname = "A"\ndescription = "e"\n'
            'aliases = [" b "]\n',
            "names both 'B' and 'A'",
        ),
        ('[[tags]]\nname = "A"\ndescription = "d"\naliases = ["  "]\n', "an alias is blank"),
        ('[[tags]]\nname = "A\\u001b[2J"\ndescription = "d"\n', "control character"),
        ('fallback = "Other"\ntags = 5\n', "tags: Input should be a valid list"),
        ("a = " + "[" * 10_000 + "]" * 10_000 + "\n", "nested too deeply"),
    ],
)
def test_bad_taxonomies_name_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_taxonomy(write(tmp_path, text))


def test_tag_limit_precedence(tmp_path):
    two = '[[tags]]\nname = "A"\ndescription = "d"\n[[tags]]\nname = "B"\ndescription = "e"\n'
    assert load_taxonomy(write(tmp_path, two)).tag_limit(None) == 2  # never more than tags
    assert load_taxonomy(write(tmp_path, "max_tags = 1\n" + two)).tag_limit(None) == 1
    assert load_taxonomy(write(tmp_path, "max_tags = 1\n" + two)).tag_limit(2) == 2
    assert load_taxonomy().tag_limit(None) == 3
