"""The archive site: a static site made from the library (an index of days, a page per day and
per tag, search over a JSON index, an Atom feed), brought up to date incrementally."""

from agent.site.build import DEFAULT_TITLE, SiteReport, update_site

__all__ = ["DEFAULT_TITLE", "SiteReport", "update_site"]
