"""Readers: every input format, the id rules, dedupe, and one clear error per bad input."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from agent.errors import InputError
from agent.models import Paper
from agent.sources import arxiv_id, paper_id, read_papers, unique_papers

PAGE_FIRST = "TokenFormer: Rethinking Transformer Scaling with Tokenized Model Parameters"
PAGE_LAST = "ZeRO-Infinity: Breaking the GPU Memory Wall for Extreme Scale Deep Learning"
LATEX_TITLE = (
    "H$_2$O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models"
)
ABSTRACT = "We study a thing carefully and find that it works well on many benchmarks. " * 3


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    """Write a test input file and return its path as the CLI would pass it."""
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def read(*sources: str) -> list[Paper]:
    return list(read_papers(sources))


@pytest.fixture
def page(fixtures: Path) -> str:
    """The saved Hugging Face Daily Papers page."""
    return str(fixtures / "hf-daily-papers-page.txt")


# --- the Hugging Face page text ---


def test_page_yields_202_papers_first_and_last_exact(page: str) -> None:
    papers = read(page)
    assert len(papers) == 202
    assert papers[0].title == PAGE_FIRST
    assert papers[0].abstract.startswith("Transformers have become the predominant architecture")
    assert papers[-1].title == PAGE_LAST
    assert papers[-1].abstract.endswith(
        "makes distributed training easy, efficient, and effective."
    )
    assert {p.source for p in papers} == {"hf-daily-papers-page.txt"}
    assert len({p.id for p in papers}) == 202


def test_page_keeps_latex_intact(page: str) -> None:
    by_title = {p.title: p for p in read(page)}
    assert LATEX_TITLE in by_title
    assert (
        "HyperZ$\\cdot$Z$\\cdot$W Operator Connects Slow-Fast Networks for Full Context Interaction"
        in by_title
    )
    assert any("6.25~\\% of the k-space" in p.abstract for p in by_title.values())


def test_page_skips_chrome_around_papers_and_joins_wrapped_lines(tmp_path: Path) -> None:
    text = (
        "Trending\n\nSubscribe\n\nMar 14\n\n"
        "First Paper: A $\\mathcal{O}(n)$ Method\n\n"
        + ABSTRACT.replace(". ", ".\n", 1)  # a hard-wrapped abstract is one paragraph
        + "\n\nSecond Paper\n\n"
        + ABSTRACT
        + "\n\nA second paragraph of the same abstract, long enough to be prose and not a title "
        + "x " * 150
        + "\n\nPrevious\n\nNext page\n"
    )
    papers = read(write(tmp_path, "page.txt", text))
    assert [p.title for p in papers] == ["First Paper: A $\\mathcal{O}(n)$ Method", "Second Paper"]
    assert "\n" not in papers[0].abstract
    assert papers[1].abstract.startswith(ABSTRACT.strip())
    assert "\n\nA second paragraph" in papers[1].abstract


def test_page_with_only_chrome_has_no_papers(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no papers found in .*chrome\.txt"):
        read(write(tmp_path, "chrome.txt", "new\n\nSubscribe\n\nMar 14\n"))


def test_page_from_stdin_is_sniffed(page: str) -> None:
    text = Path(page).read_text(encoding="utf-8")
    papers = list(read_papers(["-"], stdin=io.StringIO(text)))
    assert len(papers) == 202
    assert papers[0].source == "stdin"


# --- JSONL, JSON, CSV ---


def test_jsonl_fields_and_metadata(tmp_path: Path) -> None:
    rows = [
        {
            "title": "  Spaced \n title ",
            "abstract": "An abstract.",
            "url": "https://arxiv.org/abs/2401.01234v2",
            "authors": [{"name": "Ada Lovelace"}, {"name": "Alan Turing"}],
            "published": "2024-01-02",
            "categories": "cs.LG, cs.AI",
            "score": 0.5,
            "venue": "ICML",
        },
        {
            "id": "x1",
            "title": "T",
            "summary": "S",
            "authors": "A. One, B. Two",
            "categories": ["q"],
        },
    ]
    path = write(tmp_path, "in.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    first, second = read(path)
    assert first.id == "2401.01234"
    assert first.title == "Spaced title"
    assert first.authors == ["Ada Lovelace", "Alan Turing"]
    assert first.categories == ["cs.LG", "cs.AI"]
    assert first.published == "2024-01-02"
    assert first.metadata == {"score": "0.5", "venue": "ICML"}
    assert first.source == "in.jsonl"
    assert (second.id, second.abstract, second.authors) == ("x1", "S", ["A. One", "B. Two"])
    assert second.categories == ["q"]


def test_scitldr_paper_id_is_the_id(fixtures: Path) -> None:
    papers = read(str(fixtures / "scitldr-sample.jsonl"))
    assert [p.id for p in papers] == ["rJlnfaNYvB", "rJVoEiCqKQ", "rkldVXKU8H"]
    assert json.loads(papers[0].metadata["tldrs"])[0].startswith("We devise adaptive loss")


def test_json_array_streams_items_across_chunks(tmp_path: Path) -> None:
    # Big enough to span several read chunks, pretty-printed so line numbers mean something.
    rows = [{"id": f"p{i}", "title": f"Paper {i}", "abstract": "x" * 3000} for i in range(60)]
    papers = read(write(tmp_path, "in.json", json.dumps(rows, indent=2)))
    assert [p.id for p in papers] == [f"p{i}" for i in range(60)]


def test_json_array_from_the_hugging_face_api(fixtures: Path) -> None:
    (paper,) = read(str(fixtures / "hf-daily-papers-api-item.json"))
    assert paper.id == "2602.23229"
    assert paper.title == "Large Multimodal Models as General In-Context Classifiers"
    assert paper.authors[0] == "Marco Garosi"
    assert paper.abstract.startswith("Which multimodal model should we use for classification?")


def test_csv_with_extra_columns_and_bom(tmp_path: Path) -> None:
    text = (
        "\ufeffTitle,Abstract,URL,Authors,Categories,venue,notes\r\n"
        'A paper,"An abstract, with a comma.",https://arxiv.org/pdf/2312.00001v1.pdf,'
        '"Ann; Bo",cs.CL cs.LG,ACL,\r\n'
        ",,,,,,\r\n"
        'Second,"Multi\nline abstract.",,,,,read later\r\n'
    )
    first, second = read(write(tmp_path, "list.csv", text))
    assert (first.id, first.title, first.abstract) == (
        "2312.00001",
        "A paper",
        "An abstract, with a comma.",
    )
    assert first.authors == ["Ann", "Bo"]
    assert first.categories == ["cs.CL", "cs.LG"]
    assert first.metadata == {"venue": "ACL"}
    assert second.abstract == "Multi\nline abstract."
    assert second.metadata == {"notes": "read later"}
    assert second.id.startswith("t-")


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ('{"title": "J", "abstract": "a"}\n{"title": "K", "abstract": "b"}\n', "J"),
        ('[{"title": "J", "abstract": "a"}]', "J"),
        ("title,abstract\nJ,a\n", "J"),
        ("\ufeff" + "Title Only Line\n\n" + ABSTRACT, "Title Only Line"),
    ],
    ids=["jsonl", "json", "csv", "page-with-bom"],
)
def test_stdin_format_is_sniffed(text: str, title: str) -> None:
    papers = list(read_papers(["-"], stdin=io.StringIO(text)))
    assert papers[0].title == title


def test_files_are_read_in_order(tmp_path: Path) -> None:
    a = write(tmp_path, "a.jsonl", '{"id": "1", "title": "A", "abstract": "x"}\n')
    b = write(tmp_path, "b.csv", "id,title,abstract\n2,B,y\n")
    assert [(p.id, p.source) for p in read(b, a, b)] == [
        ("2", "b.csv"),
        ("1", "a.jsonl"),
        ("2", "b.csv"),
    ]


# --- ids and dedupe ---


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://arxiv.org/abs/2401.01234", "2401.01234"),
        ("https://arxiv.org/abs/2401.01234v12", "2401.01234"),
        ("http://arxiv.org/pdf/0704.0001v1.pdf", "0704.0001"),
        ("https://huggingface.co/papers/2502.12345", "2502.12345"),
        ("https://arxiv.org/abs/hep-th/9901001v2", "hep-th/9901001"),
        ("https://arxiv.org/abs/math.GT/0309136", "math.GT/0309136"),
        ("https://doi.org/10.48550/arXiv.2310.06825", "2310.06825"),
        ("https://example.org/2401.01234", None),
        ("https://arxiv.org/list/cs.LG/recent", None),
    ],
)
def test_arxiv_id_from_url(url: str, expected: str | None) -> None:
    assert arxiv_id(url) == expected


def test_paper_id_precedence_and_title_hash() -> None:
    assert paper_id(" given ", "https://arxiv.org/abs/2401.01234", "T") == "given"
    assert paper_id(42, None, "T") == "42"
    assert paper_id("", "https://arxiv.org/abs/2401.01234", "T") == "2401.01234"
    hashed = paper_id(None, "https://example.org/x", "Attention Is All You Need")
    assert hashed.startswith("t-") and len(hashed) == 14
    # Case, spacing and punctuation do not change the id; the words do.
    assert paper_id(None, None, "  attention is ALL you need!! ") == hashed
    assert paper_id(None, None, "Attention: is all-you need") == hashed
    assert paper_id(None, None, "Attention Is Not All You Need") != hashed


def test_unique_papers_keeps_the_first_and_reports_repeats() -> None:
    papers = [
        Paper(id=i, title=t, abstract="a")
        for i, t in [("1", "a"), ("2", "b"), ("1", "c"), ("1", "d")]
    ]
    duplicates: list[str] = []
    kept = list(unique_papers(papers, duplicates))
    assert [(p.id, p.title) for p in kept] == [("1", "a"), ("2", "b")]
    assert duplicates == ["1", "1"]


def test_unique_papers_is_lazy() -> None:
    def endless() -> object:
        n = 0
        while True:
            n += 1
            yield Paper(id=str(n % 3), title="t", abstract="a")

    duplicates: list[str] = []
    first_three = [
        p.id for _, p in zip(range(3), unique_papers(endless(), duplicates), strict=False)
    ]
    assert first_three == ["1", "2", "0"]


# --- bad input: one clear line naming the file and, where it helps, the line ---


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", "", r"empty\.jsonl is empty"),
        ("blank.txt", "\n  \n\t\n", r"blank\.txt is empty"),
        ("nul.jsonl", b'{"title": "x"}\x00\x01\x02', r"nul\.jsonl is a binary file"),
        ("img.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), r"img\.png is a binary file"),
        (
            "latin1.csv",
            "title,abstract\ncaf\xe9,x\n".encode("latin-1"),
            r"latin1\.csv is not UTF-8",
        ),
        (
            "bad.jsonl",
            '{"title": "A", "abstract": "x"}\n\n{"title": "B", "abstract": "y"}\n'
            '{"title": "C", "abstract": "z"}\n{"title": "D", "abstract": "w"}\n\n'
            '{"title": "E", "abstract": }\n',
            r"bad\.jsonl line 7: invalid JSON: Expecting value",
        ),
        ("list.jsonl", "[1, 2]\n", r"list\.jsonl line 1: expected a JSON object, got list"),
        (
            "authors.jsonl",
            '{"title": "A", "abstract": "x", "authors": 3}\n',
            r"authors\.jsonl line 1: authors must be",
        ),
        (
            "cols.csv",
            "name,text\nA,x\n",
            r"cols\.csv: a CSV file needs 'title' and 'abstract' columns \(found: name, text\)",
        ),
        (
            "wide.csv",
            "title,abstract\nA,x,extra\n",
            r"wide\.csv line 2: 3 fields but the header has 2",
        ),
        (
            "broken.json",
            '[\n{"title": "A", "abstract": "x"},\n{"title": "B",,}\n]',
            r"broken\.json line 3: invalid JSON",
        ),
        (
            "unclosed.json",
            '[{"title": "A", "abstract": "x"}',
            r"unclosed\.json line 1: invalid JSON: expected ',' or '\]'",
        ),
        ("obj.json", "title: x\n", r"obj\.json line 1: expected a JSON array"),
        ("none.json", "[]", r"no papers found in .*none\.json"),
    ],
)
def test_bad_input_is_one_clear_error(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(InputError, match=message) as info:
        read(path)
    assert "\n" not in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"input file not found: .*nope\.jsonl"):
        read(str(tmp_path / "nope.jsonl"))


def test_directory_is_not_a_paper_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        read(str(tmp_path))


def test_empty_stdin() -> None:
    with pytest.raises(InputError, match="stdin is empty"):
        list(read_papers(["-"], stdin=io.StringIO("")))


def test_undecodable_bytes_after_the_head_are_an_input_error(tmp_path: Path) -> None:
    good = "".join(json.dumps({"title": f"T{i}", "abstract": "x" * 100}) + "\n" for i in range(200))
    path = write(tmp_path, "late.jsonl", good.encode() + b'{"title": "\xff\xfe"}\n')
    with pytest.raises(InputError, match=r"late\.jsonl is not UTF-8"):
        read(path)


def test_papers_before_a_bad_line_stream_out_first(tmp_path: Path) -> None:
    path = write(tmp_path, "half.jsonl", '{"title": "A", "abstract": "x"}\nnot json\n')
    papers = read_papers([path])
    assert next(papers).title == "A"
    with pytest.raises(InputError, match="line 2"):
        next(papers)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "some.jsonl",
            '{"title": "A", "abstract": "x"}\n{"title": "B", "abs\n'
            '\n{"title": "C", "abstract": "z"}\n',
            r"some\.jsonl line 2: invalid JSON: Unterminated string .*\(column 16\)$",
        ),
        (
            "some.jsonl",
            '{"title": "A", "abstract": "x"}\n[1, 2]\n{"title": "C", "abstract": "z"}\n',
            r"some\.jsonl line 2: expected a JSON object, got list$",
        ),
        (
            "some.csv",
            "title,abstract\nA,x\nB,y,extra\nC,z\n",
            r"some\.csv line 3: 3 fields but the header has 2$",
        ),
        (
            "some.json",
            '[{"title": "A", "abstract": "x"},\n {"title": "B", "authors": 3},\n'
            ' {"title": "C", "abstract": "z"}]',
            r"some\.json line 2: authors must be",
        ),
    ],
)
def test_a_broken_record_costs_only_itself(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    unreadable: list[str] = []
    papers = list(read_papers([write(tmp_path, name, content)], unreadable=unreadable))
    assert [p.title for p in papers] == ["A", "C"]
    [why] = unreadable
    assert re.search(message, why) and "\n" not in why


def test_an_input_of_broken_records_only_is_refused_naming_the_first(tmp_path: Path) -> None:
    path = write(tmp_path, "all.jsonl", "not json\n{also not\n")
    unreadable: list[str] = []
    with pytest.raises(
        InputError,
        match=r"no papers found in .*all\.jsonl: .*all\.jsonl line 1: "
        r"invalid JSON.* \(and 1 more unreadable\)$",
    ):
        list(read_papers([path], unreadable=unreadable))


def test_json_array_error_line_is_right_after_many_chunks(tmp_path: Path) -> None:
    rows: list[dict[str, str]] = [{"title": f"P{i}", "abstract": "x" * 3000} for i in range(60)]
    text = json.dumps(rows, indent=2)[:-2] + ',\n  {"title": "B",,}\n]'
    bad_line = len(text.splitlines()) - 1
    with pytest.raises(InputError, match=rf"big\.json line {bad_line}: invalid JSON"):
        read(write(tmp_path, "big.json", text))


def test_a_record_without_abstract_or_title_is_still_a_paper(tmp_path: Path) -> None:
    """The run annotates it from its title, or gives it an invalid_input record: never a
    reason to refuse the whole input."""
    path = write(
        tmp_path,
        "holes.jsonl",
        '{"title": "Only a title", "abstract": "  "}\n{"abstract": "Only an abstract."}\n'
        '{"authors": ["Nobody"]}\n{"title": "T", "abstract": "Both."}\n{"url": "x"}\n',
    )
    papers = read(path)
    assert [(p.title, p.abstract) for p in papers] == [
        ("Only a title", ""),
        ("", "Only an abstract."),
        ("", ""),
        ("T", "Both."),
        ("", ""),
    ]
    assert len({p.id for p in papers}) == 5  # empty records are not each other's duplicates


def test_a_url_is_not_taken_for_a_missing_file() -> None:
    with pytest.raises(InputError, match=r"https://arxiv\.org/abs/2401\.00001 is a URL"):
        list(read_papers(["https://arxiv.org/abs/2401.00001"]))


def test_an_arxiv_id_gets_its_link_even_without_a_url(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ids.jsonl",
        '{"id": "2401.00001", "title": "A", "abstract": "x"}\n'
        '{"id": "hep-th/9901001", "title": "B", "abstract": "y"}\n'
        '{"id": "mine-7", "title": "C", "abstract": "z"}\n'
        '{"id": "2401.00002", "title": "D", "abstract": "w", "url": "https://example.test/d"}\n',
    )
    urls = [p.url for p in read(path)]
    assert urls == [
        "https://arxiv.org/abs/2401.00001",
        "https://arxiv.org/abs/hep-th/9901001",
        None,
        "https://example.test/d",
    ]


def test_authors_written_as_a_sentence_are_split(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.jsonl",
        '{"title": "T", "abstract": "x", "authors": "Ada Lovelace, Alan Turing and Grace Hopper"}\n'
        '{"title": "U", "abstract": "x", "authors": "Ada Lovelace, and Alan Turing"}\n',
    )
    first, second = read(path)
    assert first.authors == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert second.authors == ["Ada Lovelace", "Alan Turing"]
