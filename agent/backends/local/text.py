"""Text primitives for the offline backend: tokens, a light stemmer, sentences, LaTeX cleanup."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from itertools import pairwise

# Tokens are runs of letters/digits, so "vision-language" gives "vision", "language" and the
# joined bigram; non-Latin scripts still tokenize (\w is Unicode-aware).
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

# Words too common in abstracts to say anything about a topic.
_STOPWORD_TEXT = """
    a about above after again against all also although am among an and any are as at be
    because been before being below between both but by can could did do does doing down during
    each either et etc few for from further had has have having here how however i if in into is
    it its itself just may might more most much must my no nor not now of off on once only or
    other our ours ourselves out over own per same several she should since so some such than
    that the their theirs them themselves then there these they this those through thus to too
    under until up upon us very via was we were what when where whether which while who whom
    whose why will with within without would yet you your al eg ie vs"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Suffixes stripped longest-first; a crude stemmer that maps the usual inflections together
# ("models", "modeling", "modelled" -> "model") without a dependency.
_SUFFIXES = (
    "izations",
    "ization",
    "ational",
    "fulness",
    "iveness",
    "atively",
    "ations",
    "ative",
    "ation",
    "ating",
    "ities",
    "ments",
    "ingly",
    "ement",
    "ated",
    "ates",
    "ness",
    "ment",
    "ings",
    "ity",
    "ions",
    "ies",
    "ing",
    "ers",
    "ied",
    "ive",
    "ate",
    "ion",
    "ed",
    "er",
    "ly",
    "es",
    "s",
)


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A cheap, deterministic suffix-stripping stem of a lower-case word."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                return base + "y"
            if suffix in ("ion", "ions") and not base.endswith(("ct", "ss", "pt")):
                continue  # "detection" -> "detect", but "vision" stays whole
            if suffix == "s" and base.endswith(("s", "u", "i")):
                return word  # "loss", "focus", "analysis": not plurals
            # "modelled" -> "modell" -> "model": undouble a final consonant pair.
            doubled = len(base) > 3 and base[-1] == base[-2] and base[-1] not in "aeiouls"
            if doubled or (base.endswith("ll") and len(base) > 4):
                base = base[:-1]
            return base
    return word


def words(text: str) -> list[str]:
    """Lower-case word tokens of ``text``."""
    return _TOKEN.findall(text.lower())


def terms(text: str) -> list[str]:
    """Stemmed content words of ``text`` (stopwords and single characters dropped)."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1]


def bigrams(tokens: list[str]) -> list[str]:
    """Adjacent pairs joined by a space: phrase features such as "language model"."""
    return [f"{a} {b}" for a, b in pairwise(tokens)]


def features(text: str) -> list[str]:
    """Unigram and bigram terms, the vocabulary both the tagger and the summarizer share."""
    toks = terms(text)
    return toks + bigrams(toks)


# LaTeX: math spans and commands are noise for matching and unreadable in a summary.
_LATEX_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]{0,200}\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
_LATEX_CMD_ARG = re.compile(
    r"\\(?:textbf|textit|emph|texttt|mathrm|mathbf|text|url|cite\w*)\{([^{}]*)\}"
)
_LATEX_CMD = re.compile(r"\\[a-zA-Z]+\*?")
_SPACES = re.compile(r"\s+")


def clean_latex(text: str) -> str:
    """Replace LaTeX math with a short placeholder and unwrap formatting commands."""
    if "\\" not in text and "$" not in text:
        return text
    text = _LATEX_CMD_ARG.sub(r"\1", text)
    text = _LATEX_MATH.sub(_math_placeholder, text)
    text = _LATEX_CMD.sub(" ", text)
    text = text.replace("{", "").replace("}", "").replace("~", " ")
    return _SPACES.sub(" ", text).strip()


def _math_placeholder(match: re.Match[str]) -> str:
    # Keep short numeric math such as "$2\times$" or "$95\%$" readable; drop the rest.
    inner = match.group(0).replace("\\times", "×").replace("\\%", "%")
    inner = re.sub(r"\\[a-zA-Z]+|[{}$\\]", "", inner).strip()
    if inner and len(inner) <= 12 and re.fullmatch(r"[\w.%×x+\-\s^]*", inner):
        return inner
    return ""


# Abbreviations after which a period does not end a sentence.
_ABBREV = (
    "e.g",
    "i.e",
    "et al",
    "etc",
    "vs",
    "cf",
    "fig",
    "figs",
    "eq",
    "eqs",
    "sec",
    "no",
    "approx",
    "resp",
    "dr",
    "mr",
    "ms",
    "prof",
    "st",
    "al",
    "viz",
    "ca",
    "incl",
    "ref",
    "refs",
    "tab",
)
_ABBREV_RE = re.compile(
    r"\b(" + "|".join(re.escape(a) for a in sorted(_ABBREV, key=len, reverse=True)) + r")\.",
    re.IGNORECASE,
)
_PROTECT = "\u2024"  # one-dot leader: a stand-in for a period that must not split
# A sentence ends at . ! ? (or the CJK full stop) followed by space and a capital, digit,
# quote or bracket; decimals such as "3.5" never match since no space follows the dot.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9\u00C0-\u024F])|(?<=[。！？])")


def sentences(text: str) -> list[str]:
    """Split an abstract into sentences, keeping "e.g.", "et al.", "3.5" and "U.S." intact."""
    text = _SPACES.sub(" ", text).strip()
    if not text:
        return []
    text = _ABBREV_RE.sub(lambda m: m.group(1) + _PROTECT, text)
    # Single capital initials ("J. Smith", "U.S.") are not sentence ends either.
    text = re.sub(r"\b([A-Z])\.(?=\s?[A-Z]\.?)", "\\1" + _PROTECT, text)
    parts = _BOUNDARY.split(text)
    return [p.replace(_PROTECT, ".").strip() for p in parts if p and p.strip()]


def count_words(text: str) -> int:
    """Words as a reader counts them: whitespace-separated chunks."""
    return len(text.split())


def join_unique(items: Iterable[str]) -> str:
    """Join non-empty strings with spaces, dropping repeats (field concatenation helper)."""
    seen: dict[str, None] = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
    return " ".join(seen)
