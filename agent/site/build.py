"""Building the archive site from the library, incrementally: the days whose papers,
annotations or scores changed since the last build are read again, every page is made from
them and from the manifest's summaries of the other days, and only files whose content changed
are written (each replaced atomically; the manifest last)."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.digest.text import safe_url
from agent.errors import ConfigError, OutputError
from agent.outputs import output_lock
from agent.site import feed, pages, search
from agent.site.days import DayJob, make_days
from agent.site.manifest import MANIFEST, Manifest, SiteWriter, content_hash
from agent.store import Library

log = logging.getLogger(__name__)

DEFAULT_TITLE = "Paper archive"
RECENT = 14  # the newest days a tag page lists paper by paper
# Changed papers past which every day is read again rather than each paper looked up.
FULL_REREAD = 5_000
# The last build's time less this is where the next looks for changes: a write stamped just
# before a build began may commit after the build read the library.
MARGIN = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class SiteReport:
    """What a build did."""

    out_dir: Path
    days: int  # days on the site
    papers: int  # papers on the site
    read: int  # days read from the library this time
    full: bool  # every day was read (first build, new options or templates)
    written: list[str] = field(default_factory=list)  # files written, relative to out_dir
    unchanged: int = 0  # files left as they were
    removed: list[str] = field(default_factory=list)  # files of an earlier build now gone

    @property
    def index(self) -> Path:
        """The front page."""
        return self.out_dir / "index.html"


def update_site(
    library: Library,
    out_dir: Path,
    *,
    base_url: str | None = None,
    profile: str | Sequence[str] | None = None,
    since: dt.date | None = None,
    title: str = DEFAULT_TITLE,
    scorer: str | None = None,
    full: bool = False,
) -> SiteReport:
    """Build or bring up to date the static site in ``out_dir`` from ``library``: the days
    from ``since`` on, the ``profile``'s scores (default: every profile with a score), links
    made absolute from ``base_url`` where a page needs them (the feed). ``full`` reads every
    day again."""
    base = _base_url(base_url)
    wanted = list(dict.fromkeys([profile] if isinstance(profile, str) else profile or []))
    known = library.scores.profiles()
    for name in wanted:
        if name not in known:
            log.warning("no paper has a score for profile %r yet", name)
    profiles = wanted or known
    _check_dir(out_dir)
    with output_lock(out_dir / MANIFEST, "the site"):
        build = _Build(library, out_dir, base, profiles, since, title, scorer)
        return build.run(full=full)


def _base_url(url: str | None) -> str | None:
    if url is None or not url.strip():
        return None
    safe = safe_url(url)
    if safe is None:
        raise ConfigError(f"the site's base URL must be an http(s) URL, not {url.strip()!r}")
    return safe if safe.endswith("/") else safe + "/"


def _check_dir(out_dir: Path) -> None:
    """A new or empty folder, or one holding a site paper-agent built: never another's files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} is not a folder; give the folder the site goes in")
    if out_dir.is_dir() and not (out_dir / MANIFEST).exists():
        try:
            # Its own lock (left by a build killed before its first manifest) is not another's.
            has_files = any(e.name != MANIFEST + ".lock" for e in os.scandir(out_dir))
        except OSError as exc:
            raise OutputError(f"cannot read {out_dir}: {exc.strerror}") from None
        if has_files:
            raise OutputError(
                f"{out_dir} holds files but no site paper-agent built ({MANIFEST}); "
                "give a new or empty folder"
            )


def _day_page(day: str) -> str:
    return f"days/{day}.html"


def _month(day: str) -> str:
    return day[:7]


class _Build:
    """One build: what to read again, then every page."""

    def __init__(
        self,
        library: Library,
        root: Path,
        base: str | None,
        profiles: list[str],
        since: dt.date | None,
        title: str,
        scorer: str | None,
    ) -> None:
        self.library = library
        self.root = root
        self.base = base
        self.profiles = profiles
        self.title = title
        self.scorer = scorer
        self.options: dict[str, Any] = {
            "base_url": base,
            "profiles": profiles,
            "since": since.isoformat() if since else None,
            "title": title,
            "scorer": scorer,
            "version": pages.version(),
        }
        self.counts = {d.isoformat(): n for d, n in library.days() if since is None or d >= since}
        self.names = sorted(self.counts)  # oldest first
        self.at = {name: i for i, name in enumerate(self.names)}
        self.summaries: dict[str, dict[str, Any]] = {}
        self.shards: dict[str, dict[str, list[search.Row]]] = {}  # month -> day -> rows

    def run(self, *, full: bool) -> SiteReport:
        started = dt.datetime.now(dt.UTC)
        previous = Manifest.load(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        if previous is None:
            # The folder is the site's from now on: a first build stopped half-way leaves it
            # as one the next build takes up (an empty manifest: every day read again).
            Manifest().save(self.root)
        writer = SiteWriter(self.root, previous, started)
        same = previous is not None and previous.options == self.options and not full
        dirty = self._dirty(previous, writer) if same else set(self.names)
        dirty |= self._load_shards(dirty, previous, writer)
        jobs = [self._job(name) for name in self.names if name in dirty]
        for made in make_days(self.library, jobs):
            writer.put(_day_page(made.day), made.page)
            self.shards.setdefault(_month(made.day), {})[made.day] = made.rows
            self.summaries[made.day] = made.summary
        for name in self.names:
            if name not in dirty:
                assert previous is not None
                writer.keep(_day_page(name))
                self.summaries[name] = previous.days[name]
        self._write_shards(dirty, writer)
        self._write_pages(writer)
        writer.finish()
        Manifest(self.options, started.isoformat(), writer.files, self.summaries).save(self.root)
        return SiteReport(
            out_dir=self.root,
            days=len(self.names),
            papers=sum(self.counts.values()),
            read=len(dirty),
            full=not same,
            written=writer.written,
            unchanged=writer.unchanged,
            removed=writer.removed,
        )

    def _job(self, name: str) -> DayJob:
        before, after = self._neighbours(name)
        return DayJob(name, before, after, tuple(self.profiles), self.scorer, self.title, self.base)

    def _neighbours(self, name: str) -> tuple[str | None, str | None]:
        at = self.at[name]
        before = self.names[at - 1] if at > 0 else None
        after = self.names[at + 1] if at + 1 < len(self.names) else None
        return before, after

    def _dirty(self, previous: Manifest | None, writer: SiteWriter) -> set[str]:
        """The days to read again: new or recounted days, days whose neighbours changed (their
        page links them), days whose page is gone, and days of papers changed since."""
        assert previous is not None and previous.built is not None
        dirty = set()
        for name in self.names:
            summary = previous.days.get(name)
            if (
                summary is None
                or summary.get("papers") != self.counts[name]
                or [summary.get("prev"), summary.get("next")] != list(self._neighbours(name))
                or not writer.has(_day_page(name))
            ):
                dirty.add(name)
        since = dt.datetime.fromisoformat(previous.built) - MARGIN
        changed = []
        for key in self.library.papers.changed_since(since):
            changed.append(key)
            if len(changed) > FULL_REREAD:
                return set(self.names)
        for key in changed:
            paper = self.library.papers.get(key)
            if paper is not None:
                name = paper.first_seen.astimezone(dt.UTC).date().isoformat()
                if name in self.counts:
                    dirty.add(name)
        return dirty

    def _load_shards(
        self, dirty: set[str], previous: Manifest | None, writer: SiteWriter
    ) -> set[str]:
        """Read back the shards a build needs (months with changed days, and the newest days
        for the tag pages); the days of a shard that cannot be read are read again."""
        months = {_month(n) for n in dirty} | {_month(n) for n in self.names[-RECENT:]}
        more: set[str] = set()
        for month in sorted(months):
            days = [n for n in self.names if _month(n) == month]
            if all(n in dirty for n in days):
                self.shards[month] = {}
                continue
            name = search.shard_name(month)
            loaded = None
            if previous is not None and writer.has(name):
                path = self.root / name
                loaded = search.read_shard(path)
                if loaded is not None and content_hash(path.read_text("utf-8")) != (
                    previous.files[name].get("sha256")
                ):
                    loaded = None  # edited by hand since: not to be trusted
            if loaded is None or any(n not in loaded for n in days if n not in dirty):
                more.update(days)
                self.shards[month] = {}
            else:
                self.shards[month] = {n: loaded[n] for n in days if n in loaded}
        for month in {_month(n) for n in self.names}:
            if month not in self.shards and not writer.has(search.shard_name(month)):
                more.update(n for n in self.names if _month(n) == month)
                self.shards[month] = {}
        return more

    def _write_shards(self, dirty: set[str], writer: SiteWriter) -> None:
        touched = {_month(n) for n in dirty}
        for month in sorted({_month(n) for n in self.names}):
            name = search.shard_name(month)
            if month in touched:
                days = {n: rows for n, rows in self.shards[month].items() if n in self.counts}
                writer.put(name, search.shard_text(month, self.profiles, days))
            else:
                writer.keep(name)

    def _write_pages(self, writer: SiteWriter) -> None:
        """Everything made from the summaries and the newest shards: front page, tags, feed,
        the search index, and the assets."""
        newest = list(reversed(self.names))
        tags: dict[str, int] = {}
        tag_days: dict[str, list[tuple[str, int]]] = {}
        for name in newest:
            for tag, count in self.summaries[name]["tags"]:
                tags[tag] = tags.get(tag, 0) + count
                tag_days.setdefault(tag, []).append((name, count))
        by_count = sorted(tags.items(), key=lambda item: (-item[1], item[0].casefold()))
        common = {
            "site_title": self.title,
            "profiles": self.profiles,
            "several": len(self.profiles) > 1,
        }
        total = sum(self.counts.values())
        writer.put(
            "index.html",
            pages.render(
                "index.html.j2",
                days=[self._day_row(n) for n in newest],
                tags=by_count,
                total=total,
                root="",
                page="index",
                canonical=self.base + "index.html" if self.base else None,
                **common,
            ),
        )
        writer.put(
            "tags/index.html",
            pages.render(
                "tags.html.j2",
                tags=by_count,
                total=total,
                root="../",
                page="tags",
                canonical=self.base + "tags/index.html" if self.base else None,
                **common,
            ),
        )
        recent = newest[:RECENT]
        for tag, count in by_count:
            days = tag_days[tag]
            name = f"tags/{pages.slug(tag)}.html"
            writer.put(
                name,
                pages.render(
                    "tag.html.j2",
                    tag=tag,
                    total=count,
                    days=days,
                    recent=[self._tag_day(n, tag) for n in recent if any(d == n for d, _ in days)],
                    earlier=[(d, pages.long_date(d), c) for d, c in days if d not in recent],
                    root="../",
                    page="tag",
                    canonical=self.base + name if self.base else None,
                    **common,
                ),
            )
        shards = {}
        for name in self.names:
            shards[_month(name)] = shards.get(_month(name), 0) + self.counts[name]
        ordered_tags = sorted(tags, key=str.casefold)
        writer.put(
            search.INDEX, search.index_text(self.profiles, ordered_tags, list(shards.items()))
        )
        writer.put(
            feed.FEED,
            feed.atom(
                [(n, self.summaries[n]) for n in newest],
                base_url=self.base,
                site_title=self.title,
                profiles=self.profiles,
                changed=writer.changed,
            ),
        )
        for name in pages.ASSETS:
            writer.put(f"assets/{name}", pages.asset(name))

    def _day_row(self, name: str) -> pages.DayRow:
        summary = self.summaries[name]
        top = []
        for profile in self.profiles:
            picks = summary["top"].get(profile) or []
            if picks:
                anchor, title, rel, _ = picks[0]
                top.append((profile, pages.Pick(anchor, title, f"{rel:.1f}")))
        return pages.DayRow(
            day=name,
            label=pages.long_date(name),
            papers=summary["papers"],
            tags=[(t, c) for t, c in summary["tags"][:3]],
            top=top,
        )

    def _tag_day(self, name: str, tag: str) -> pages.TagDay:
        rows = []
        for anchor, title, authors, tags, rels in self.shards[_month(name)].get(name, []):
            if tag in tags:
                scores = [
                    (p, r) for p, r in zip(self.profiles, rels, strict=False) if r is not None
                ]
                rows.append(pages.TitleRow(anchor, title, authors, scores))
        return pages.TagDay(name, pages.long_date(name), rows)
