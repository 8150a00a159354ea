"""Small, real-shaped arXiv Atom and RSS bodies for tests that need a source to answer."""

from __future__ import annotations

from xml.sax.saxutils import escape

ATOM = """<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"
      xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">
  <title>arXiv Query</title>
  <opensearch:itemsPerPage>{count}</opensearch:itemsPerPage>
  <opensearch:totalResults>{total}</opensearch:totalResults>
  <opensearch:startIndex>{start}</opensearch:startIndex>
{entries}
</feed>
"""
ENTRY = """  <entry>
    <id>http://arxiv.org/abs/{id}v1</id>
    <title>{title}</title>
    <updated>2026-11-30T17:59:46Z</updated>
    <link href="https://arxiv.org/abs/{id}v1" rel="alternate" type="text/html"/>
    <link href="https://arxiv.org/pdf/{id}v1" rel="related" type="application/pdf" title="pdf"/>
    <summary>{abstract}</summary>
    <category term="{category}" scheme="http://arxiv.org/schemas/atom"/>
    <published>2026-11-30T17:59:46Z</published>
    <arxiv:primary_category term="{category}"/>
    <author><name>Ada Lovelace</name></author>
  </entry>"""

RSS = """<?xml version='1.0' encoding='UTF-8'?>
<rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:atom="http://www.w3.org/2005/Atom" version="2.0">
  <channel>
    <title>cs.LG updates on arXiv.org</title>
    <link>http://rss.arxiv.org/rss/cs.LG</link>
    <description>cs.LG updates on the arXiv.org e-print archive.</description>
    <language>en-us</language>
{items}
  </channel>
</rss>
"""
ITEM = """    <item>
      <title>{title}</title>
      <link>https://arxiv.org/abs/{id}</link>
      <description>arXiv:{id}v1 Announce Type: {announce}
Abstract: {abstract}</description>
      <guid isPermaLink="false">oai:arXiv.org:{id}v1</guid>
      <category>{category}</category>
      <pubDate>Mon, 30 Nov 2026 00:00:00 -0500</pubDate>
      <arxiv:announce_type>{announce}</arxiv:announce_type>
      <dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>
      <dc:creator>Ada Lovelace, Alan Turing</dc:creator>
    </item>"""


def paper(number: int, category: str = "cs.LG") -> dict[str, str]:
    """The fields of one made-up paper."""
    return {
        "id": f"2611.{number:05d}",
        "title": f"Learning to reason with model number {number}",
        "abstract": f"We study model {number}. It learns from rewards and reasons well.",
        "category": category,
    }


def atom(papers: list[dict[str, str]], total: int | None = None, start: int = 0) -> str:
    """An arXiv API page holding ``papers``."""
    entries = "\n".join(ENTRY.format(**{k: escape(v) for k, v in p.items()}) for p in papers)
    count = len(papers)
    return ATOM.format(
        count=count, total=count if total is None else total, start=start, entries=entries
    )


def rss(papers: list[dict[str, str]], announce: str = "new") -> str:
    """An arXiv RSS feed holding ``papers``, all announced as ``announce``."""
    items = "\n".join(
        ITEM.format(announce=announce, **{k: escape(v) for k, v in p.items()}) for p in papers
    )
    return RSS.format(items=items)
