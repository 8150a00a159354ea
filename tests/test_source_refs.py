"""Reference library files as liked papers: BibTeX, RIS and CSL JSON readers, how a file's
format is told, LaTeX as plain text, damaged and hostile entries, and the run's one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.errors import InputError
from agent.interests import load_interests
from agent.models import Paper
from agent.sources.refs import LikedOptions, library_kind, read_liked
from agent.sources.refs.latex import latex_to_text

REFS = Path(__file__).parent / "fixtures" / "refs"
TRANSFORMER_ABSTRACT = (
    "We propose the Transformer, a sequence transduction architecture built on attention "
    "alone, without recurrence or convolutions"
)


def liked(path: Path | str) -> tuple[list[Paper], list[str]]:
    """The papers ``read_liked`` gives for ``path``, and the lines it says."""
    lines: list[str] = []
    papers = read_liked(str(path), LikedOptions(notify=lines.append))
    return papers, lines


def by_id(papers: list[Paper]) -> dict[str, Paper]:
    return {p.id: p for p in papers}


# --- BibTeX ---


def test_a_bibtex_library_gives_one_paper_per_usable_entry() -> None:
    papers, lines = liked(REFS / "library.bib")
    assert lines == [
        f"liked: read 9 entries from {REFS / 'library.bib'}, 5 usable "
        "(2 repeated, 1 unreadable, 1 without title)"
    ]
    assert [p.id for p in papers] == [
        "1706.03762",  # Zotero: its URL and its arXiv DOI
        "1810.04805",  # Google Scholar: journal = {arXiv preprint arXiv:1810.04805}
        "1512.03385",  # BibLaTeX: eprint with eprinttype = arxiv, its version dropped
        "10.1038/nature14539",  # a journal article: its DOI (given as a doi.org link)
        papers[4].id,
    ]
    assert papers[4].id.startswith("t-")  # a book with neither: a hash of its title
    attention, bert, resnet, nature, book = papers
    assert attention.title == "Attention Is All You Need"  # Zotero's {Is} {All} braces gone
    assert attention.abstract.startswith(TRANSFORMER_ABSTRACT)  # wrapped lines joined
    assert attention.authors[6] == "Łukasz Kaiser"  # "Kaiser, {\L}ukasz"
    assert len(attention.authors) == 8
    assert attention.url == "http://arxiv.org/abs/1706.03762"
    assert attention.published == "2017-06"  # month = jun
    assert attention.metadata == {
        "doi": "10.48550/arXiv.1706.03762",
        "key": "vaswani_attention_2017",
    }
    assert bert.abstract == "" and bert.url == "https://arxiv.org/abs/1810.04805"
    assert resnet.published == "2015-12-10"  # BibLaTeX's date field
    assert "8× deeper than VGG nets, are easier to optimize — and more accurate." in (
        resnet.abstract
    )
    assert nature.url == "https://doi.org/10.1038/nature14539" and nature.published == "2015-05"
    assert book.title == (
        "Learning with Kernels: Support Vector Machines, Regularization, Optimization, and Beyond"
    )
    assert book.authors == ["Bernhard Schölkopf", "Alexander J. Smola"]
    assert {p.source for p in papers} == {str(REFS / "library.bib")}


@pytest.mark.parametrize(
    ("latex", "text"),
    [
        (r"{\"U}ber {\"{a}}hnlich {\o}re Stra{\ss}e", "Über ähnlich øre Straße"),
        (r"{\'e}t{\'e} \`a la \^{o} \~n \c{c}a \c c \v{S}koda \'{\i}", "été à la ô ñ ça ç Škoda í"),
        (r"\emph{Deep} \textbf{\textit{nets}} \mbox{x}", "Deep nets x"),
        (
            r"$\alpha$-divergence and $O(n^2)$ with $\mathcal{L}_\infty$",
            "α-divergence and O(n^2) with L_∞",
        ),
        (r"50\% \& more \_ \# \$5", "50% & more _ # $5"),
        (r"pages 1--10 --- ``quoted'' as in~\cite{smith2020}", "pages 1–10 — “quoted” as in "),
        (r"\href{https://x.org}{the site} and \url{https://y.org}", "the site and https://y.org"),
        ("Plain title, no LaTeX at all", "Plain title, no LaTeX at all"),
        (r"a trailing backslash \\", "a trailing backslash  "),
    ],
)
def test_latex_in_a_field_reads_as_plain_text(latex: str, text: str) -> None:
    assert latex_to_text(latex) == text


def test_hostile_bibtex_entries_cost_only_themselves(tmp_path: Path) -> None:
    deep = "{" * 50_000 + "deep" + "}" * 50_000
    huge = "word " * 2_000_000
    path = tmp_path / "hostile.bib"
    path.write_text(
        "@article{deep, title = {" + deep + "}}\n"
        "@article{huge, title = {" + huge + "}, abstract = {" + huge + "}}\n"
        "@article{{{{, title = }\n"
        "@article{unclosed, title = {" + "\\emph{" * 50_000 + "}\n"
        "@misc{ok, title = {A fine entry}, author = {Smith, and Jones,,, A and , and others}}\n"
        "@article{macro, title = undefinedmacro # {Title}}\n"
        '@article{quoted, title = "' + "x" * 100 + "\n",
        encoding="utf-8",
    )
    papers, lines = liked(path)
    assert lines == [f"liked: read 7 entries from {path}, 4 usable (3 unreadable)"]
    deep_one, huge_one, ok, macro = papers
    assert deep_one.title == "deep"
    assert len(huge_one.title) <= 1_000 and len(huge_one.abstract) <= 100_000  # Paper's bounds
    assert ok.title == "A fine entry" and ok.authors == ["Smith", "A Jones"]
    assert macro.title.endswith("Title")


def test_a_library_with_no_usable_entry_is_one_input_error(tmp_path: Path) -> None:
    path = tmp_path / "none.bib"
    path.write_text("@misc{a, author = {Doe, Jane}}\n@article{b, title = {unclosed\n")
    with pytest.raises(InputError) as info:
        liked(path)
    assert str(info.value) == (
        f"liked: read 2 entries from {path}, 0 usable (1 unreadable, 1 without title)"
    )
    path.write_text("% nothing but a comment\n")
    with pytest.raises(InputError) as info:
        liked(path)
    assert str(info.value) == f"liked: no entries in {path}"


def test_a_library_that_is_not_utf8_or_is_binary_is_one_input_error(tmp_path: Path) -> None:
    latin = tmp_path / "latin.bib"
    latin.write_bytes("@article{a, title = {Müller}}".encode("latin-1"))
    with pytest.raises(InputError, match="is not UTF-8 text"):
        liked(latin)
    binary = tmp_path / "binary.ris"
    binary.write_bytes(b"TY  - JOUR\nTI  - A\x00B\nER  - \n")
    with pytest.raises(InputError, match="binary file"):
        liked(binary)


def test_a_library_past_its_bound_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.sources import refs

    monkeypatch.setattr(refs, "MAX_LIBRARY_BYTES", 1_000_000)
    path = tmp_path / "big.bib"
    path.write_text("@misc{a, title = {T}}\n" * 60_000)  # 1.3 MB
    with pytest.raises(InputError) as info:
        liked(path)
    assert str(info.value) == f"{path} is 1.3 MB: a library file is read whole, up to 1 MB"


# --- RIS ---


def test_a_ris_library_reads_each_complete_record() -> None:
    papers, lines = liked(REFS / "library.ris")
    assert lines == [
        f"liked: read 6 entries from {REFS / 'library.ris'}, 3 usable "
        "(2 unreadable, 1 without title)"
    ]
    attention, nature, resnet = papers
    assert attention.id == "1706.03762" and attention.published == "2017-06-12"
    assert attention.authors == ["Ashish Vaswani", "Noam Shazeer", "Łukasz Kaiser"]
    assert attention.abstract.startswith(TRANSFORMER_ABSTRACT)
    assert nature.id == "10.1038/nature14539" and nature.title == "Deep learning"  # T1, A1
    assert nature.authors == ["Yann LeCun", "Yoshua Bengio", "Geoffrey Hinton"]
    # N2 continued on the next line (Mendeley wraps it): one abstract.
    assert nature.abstract.endswith(
        "learn representations of data with several levels of abstraction."
    )
    assert nature.published == "2015-05-28"
    assert resnet.id == "1512.03385" and resnet.published == "2016"


# --- CSL JSON ---


def test_a_csl_json_library_from_zotero_or_mendeley() -> None:
    papers, lines = liked(REFS / "library-csl.json")
    assert lines == [
        f"liked: read 6 entries from {REFS / 'library-csl.json'}, 4 usable "
        "(1 unreadable, 1 without title)"
    ]
    attention, nature, gpt4, waals = papers
    assert attention.id == "1706.03762" and attention.published == "2017-06-12"
    assert attention.authors == ["Ashish Vaswani", "Noam Shazeer", "Łukasz Kaiser"]
    assert attention.metadata["key"] == "http://zotero.org/users/123456/items/ABCD2345"
    assert nature.id == "10.1038/nature14539" and nature.published == "2015-05-28"
    assert nature.authors == ["Yann LeCun", "Yoshua Bengio", "Geoffrey Hinton"]  # Mendeley
    assert gpt4.id == "2303.08774" and gpt4.authors == ["OpenAI"] and gpt4.abstract == ""
    assert gpt4.published == "2023-03"
    assert waals.authors == ["Johannes Diderik van der Waals"]


# --- telling the format ---


@pytest.mark.parametrize(
    ("name", "source", "kind"),
    [
        ("refs.bib", "library.bib", "bibtex"),
        ("refs.txt", "library.bib", "bibtex"),  # no telling suffix: the content says
        ("refs", "library.ris", "ris"),
        ("refs.txt", "library.ris", "ris"),
        ("refs.json", "library-csl.json", "csl"),
        ("refs", "library-csl.json", "csl"),
    ],
)
def test_a_library_is_told_by_suffix_else_by_content(
    tmp_path: Path, name: str, source: str, kind: str
) -> None:
    path = tmp_path / name
    path.write_bytes((REFS / source).read_bytes())
    head = path.read_text(encoding="utf-8")
    assert library_kind(path, head) == kind
    papers, (line,) = liked(path)
    assert papers and line.startswith("liked: read ")


def test_the_projects_own_json_array_is_not_csl(tmp_path: Path) -> None:
    """A JSON array of paper objects (title, abstract, authors) is read as papers, as before."""
    path = tmp_path / "liked.json"
    rows = [
        {"id": "2401.00001", "title": "Reward shaping", "abstract": "RL.", "authors": ["A B"]},
        {"title": "Protein folding", "abstract": "Biology.", "type": "article"},
    ]
    path.write_text(json.dumps(rows))
    assert library_kind(path, path.read_text()) == "papers"
    papers, lines = liked(path)
    assert [p.title for p in papers] == ["Reward shaping", "Protein folding"]
    assert papers[0].authors == ["A B"]
    assert lines == [f"liked: read 2 entries from {path}, 2 usable"]


def test_a_broken_line_in_a_liked_jsonl_file_costs_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "liked.jsonl"
    path.write_text(
        json.dumps({"title": "Reward shaping", "abstract": "RL."})
        + "\n{not json\n"
        + json.dumps({"abstract": "An abstract with no title."})
        + "\n"
        + json.dumps({"title": "Reward shaping", "abstract": "RL."})
        + "\n"
    )
    papers, lines = liked(path)
    assert [p.title for p in papers] == ["Reward shaping"]
    assert lines == [
        f"liked: read 4 entries from {path}, 1 usable (1 unreadable, 1 without title, 1 repeated)"
    ]


# --- the run ---


def test_the_run_says_what_it_read_and_ranks_by_a_title_only_entry(tmp_path: Path) -> None:
    """A Google Scholar entry has no abstract: its title alone still pulls similar papers up."""
    papers = tmp_path / "papers.jsonl"
    papers.write_text(
        json.dumps(
            {
                "id": "2601.00001",
                "title": "Pre-training deep bidirectional transformers for language understanding",
                "abstract": "We pre-train a bidirectional transformer encoder on unlabeled text.",
            }
        )
        + "\n"
        + json.dumps(
            {
                "id": "2601.00002",
                "title": "Protein structure prediction with graph networks",
                "abstract": "We predict protein structure from sequence with graph networks.",
            }
        )
        + "\n"
    )
    bib = tmp_path / "scholar.bib"
    bib.write_text(
        "@article{devlin2018bert,\n"
        "  title={Bert: Pre-training of deep bidirectional transformers for language "
        "understanding},\n"
        "  author={Devlin, Jacob and Chang, Ming-Wei},\n"
        "  journal={arXiv preprint arXiv:1810.04805},\n  year={2018}\n}\n"
        "@misc{x, author = {Nobody}}\n"
    )
    args = ["run", str(papers), "--backend", "local", "-o", "out.jsonl", "--liked", str(bib)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "liked" in line]
    assert said == [f"paper-agent: liked: read 2 entries from {bib}, 1 usable (1 without title)"]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    near, far = rows
    assert near["relevance"] > far["relevance"]
    assert "Bert: Pre-training" in near["why"]


def test_a_liked_library_with_nothing_usable_stops_the_run_in_one_line(tmp_path: Path) -> None:
    papers = tmp_path / "papers.jsonl"
    papers.write_text(json.dumps({"title": "T", "abstract": "A."}) + "\n")
    bib = tmp_path / "empty.bib"
    bib.write_text("% nothing but a comment\n@comment{x}\n")
    result = CliRunner().invoke(
        cli, ["run", str(papers), "--backend", "local", "--liked", str(bib)]
    )
    assert result.exit_code == 2
    assert result.stderr == f"paper-agent: error: liked: no entries in {bib}\n"
    assert not (tmp_path / "results.jsonl").exists()


def test_the_config_files_liked_library_resolves_beside_it_and_a_spec_stays_a_spec(
    tmp_path: Path,
) -> None:
    from agent.config import read_config_file

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "paper-agent.toml").write_text('[interests]\nliked = "refs.bib"\n')
    assert read_config_file(conf / "paper-agent.toml")["liked"] == conf / "refs.bib"
    (conf / "paper-agent.toml").write_text('[interests]\nliked = "zotero:users/123456"\n')
    assert str(read_config_file(conf / "paper-agent.toml")["liked"]) == "zotero:users/123456"


def test_load_interests_reads_a_library(tmp_path: Path) -> None:
    got = load_interests(["RL: rewards"], REFS / "library-csl.json", None)
    assert got is not None and [p.id for p in got.liked][:2] == [
        "1706.03762",
        "10.1038/nature14539",
    ]
