"""Text primitives for the offline backend: tokens, a light stemmer, sentences, LaTeX cleanup."""

from __future__ import annotations

import re
from dataclasses import dataclass
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


# word -> its term, or "" for a word that is dropped; one dict lookup per token is the hot path
# of the whole backend. Cleared when it grows past a bound, so memory stays flat on any stream.
_TERM_OF: dict[str, str] = {}
_TERM_CACHE_MAX = 200_000


def _term_of(word: str) -> str:
    if len(_TERM_OF) >= _TERM_CACHE_MAX:
        _TERM_OF.clear()
    term = "" if word in STOPWORDS or len(word) < 2 else stem(word)
    _TERM_OF[word] = term
    return term


def term(word: str) -> str:
    """The term of one lower-case word, "" for a stopword or a single character (cached)."""
    found = _TERM_OF.get(word)
    return _term_of(word) if found is None else found


def terms(text: str) -> list[str]:
    """Stemmed content words of ``text`` (stopwords and single characters dropped)."""
    get = _TERM_OF.get
    out = []
    for w in _TOKEN.findall(text.lower()):
        term = get(w)
        if term is None:
            term = _term_of(w)
        if term:
            out.append(term)
    return out


def words(text: str) -> list[str]:
    """Lower-cased content words of ``text``, unstemmed (stopwords and single characters
    dropped): for matchers that stem less than ``terms`` does."""
    return [w for w in _TOKEN.findall(text.lower()) if len(w) >= 2 and w not in STOPWORDS]


def bigrams(tokens: list[str]) -> list[str]:
    """Adjacent pairs joined by a space: phrase features such as "language model"."""
    return [f"{a} {b}" for a, b in pairwise(tokens)]


def features(text: str) -> list[str]:
    """Unigram and bigram terms, the vocabulary both the tagger and the summarizer share."""
    toks = terms(text)
    return toks + bigrams(toks)


# LaTeX: math spans and commands are noise for matching and unreadable in a summary. Short math
# ("$x^2$", "$\\ell_1$", "$O(n \\log n)$") becomes plain Unicode text; long formulas are dropped.
_LATEX_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]{0,200}\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
_LATEX_CMD_ARG = re.compile(
    r"\\(?:textbf|textit|textsc|emph|texttt|mathrm|mathbf|mathit|mathsf|mathcal|mathbb|"
    r"operatorname|boldsymbol|bm|bar|hat|tilde|vec|overline|widehat|widetilde|text|url|cite\w*|ref|eqref|citep|citet)\{([^{}]*)\}"
)
_LATEX_CMD = re.compile(r"\\[a-zA-Z]+\*?")
# A footnote is an aside that would land mid-sentence ("complexity Here O compresses a ..."):
# it goes whole, with one level of braces inside it.
_FOOTNOTE = re.compile(r"~?\\footnote\{(?:[^{}]|\{[^{}]*\})*\}")
_TEX_ESCAPE = re.compile(r"\\([%&_#$])")
_GREEK_TEXT = """alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda
    mu nu xi pi rho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma
    Phi Psi Omega"""
_GREEK_NAMES = _GREEK_TEXT.split()
_GREEK_CHARS = "αβγδεεζηθθικλμνξπρστυφφχψωΓΔΘΛΞΠΣΦΨΩ"
_SYMBOLS = dict(zip(_GREEK_NAMES, _GREEK_CHARS, strict=True)) | {
    "ell": "ℓ", "infty": "∞", "times": "×", "cdot": "·", "sim": "∼", "approx": "≈", "leq": "≤",
    "le": "≤", "geq": "≥", "ge": "≥", "neq": "≠", "pm": "±", "to": "→", "rightarrow": "→",
    "in": "∈", "log": "log", "exp": "exp", "min": "min", "max": "max", "partial": "∂",
    "nabla": "∇", "sqrt": "√", "ln": "ln", "sum": "Σ", "prod": "Π", "propto": "∝",
}  # fmt: skip
_MATH_CMD = re.compile(r"\\([a-zA-Z]+)")
# A Greek letter written out before a sub/superscript ("rho_{BL}" on a page that lost its $).
_BARE_GREEK = re.compile(r"\b(" + "|".join([*_GREEK_NAMES, "ell"]) + r")(?=[_^])")
_SUP = str.maketrans(
    "0123456789+-=()abcdefghijklmnoprstuvwxyzABDEGHIJKLMNOPRTUVW",
    "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᴬᴮᴰᴱᴳᴴᴵᴶᴷᴸᴹᴺᴼᴾᴿᵀᵁⱽᵂ",
)
_SUB = str.maketrans("0123456789+-=()aeoxhklmnpstijruv", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ")
# "x^2", "(IA)^3", "Q^*", "3^{rd}", "W_2", "p_{t}": the mark must follow a letter, digit or ")".
_SCRIPT = re.compile(r"(?<=[\w)\]*′])([\^_])(\{([^{}]{1,12})\}|-?\d+|[A-Za-z*](?![A-Za-z0-9]))")
_TEX_QUOTES = re.compile(r"``|''|(?<!\w)`(?=\w)")


def clean_latex(text: str) -> str:
    """Readable plain text from LaTeX: escapes, quotes, short math as Unicode, no commands."""
    plain = "\\" not in text and "$" not in text and "^" not in text and "`" not in text
    if plain and ("_" not in text or not _SCRIPT.search(text)):
        return text
    text = _FOOTNOTE.sub("", text)
    text = _TEX_ESCAPE.sub(r"\1", text)
    text = _LATEX_CMD_ARG.sub(r"\1", text)
    text = _LATEX_MATH.sub(_math_placeholder, text)
    text = _BARE_GREEK.sub(lambda m: _SYMBOLS[m.group(1)], text)
    text = _SCRIPT.sub(_script, text)
    text = _LATEX_CMD.sub(" ", text)
    text = _TEX_QUOTES.sub(lambda m: "'" if m.group(0) == "`" else '"', text)
    text = text.replace("{", "").replace("}", "").replace("~", " ")
    if '""' in text:
        text = re.sub(r'"{2,}', '"', text)  # a run of TeX quotes is one quote
    return " ".join(text.split())


def _script(match: re.Match[str]) -> str:
    """A sub- or superscript in Unicode where every character has one, else written inline."""
    mark, body = match.group(1), match.group(3) or match.group(2)
    body = body.strip()
    if mark == "^" and body in ("st", "nd", "rd", "th"):
        return body  # "3^{rd}" -> "3rd"
    table = _SUP if mark == "^" else _SUB
    mapped = body.translate(table)
    if all(a != b or a == "*" for a, b in zip(body, mapped, strict=True)):
        return mapped
    return f"^{body}" if mark == "^" else body  # "rho_{BL}" -> "ρBL"; "2^{|S|}" stays


def _math_placeholder(match: re.Match[str]) -> str:
    # Short math stays, in plain Unicode ("$2\\times$", "$95\\%$", "$\\ell_1$"); long formulas go.
    inner = match.group(0).strip("$")
    if inner.startswith(("\\(", "\\[")):
        inner = inner[2:-2]
    inner = _MATH_CMD.sub(lambda m: _SYMBOLS.get(m.group(1), "\\" + m.group(1)), inner)
    inner = _SCRIPT.sub(_script, inner)
    inner = inner.replace("{", "").replace("}", "").replace("\\,", " ").strip()
    if inner and len(inner) <= 20 and "\\" not in inner and "^" not in inner:
        return inner
    return ""


# Abbreviations after which a period does not end a sentence (compared lower-cased).
_ABBREV_TEXT = (
    "e.g i.e eg ie et al etc vs cf fig figs eq eqs sec no approx resp dr mr ms prof st viz"
)
_ABBREV = frozenset((_ABBREV_TEXT + " ca incl ref refs tab").split())
# A candidate boundary: . ! ? (with an optional closing quote or bracket) then space, then a
# capital, digit, quote or bracket. Decimals such as "3.5" never match: no space after the dot.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9\u00C0-\u024F\u3040-\u9FFF])")
_CJK_BOUNDARY = re.compile(r"(?<=[。！？])")  # CJK full stops need no following space


def sentences(text: str) -> list[str]:
    """Split an abstract into sentences, keeping "e.g.", "et al.", "3.5" and "U.S." intact."""
    text = " ".join(text.split())
    if not text:
        return []
    out: list[str] = []
    parts = _BOUNDARY.split(text)
    if "。" in text or "！" in text or "？" in text:
        parts = [piece for part in parts for piece in _CJK_BOUNDARY.split(part)]
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if out and _continues(out[-1]):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def _continues(previous: str) -> bool:
    """True when ``previous`` ends in an abbreviation or an initial, not a sentence end."""
    if not previous.endswith("."):
        return False
    last = previous[:-1].rsplit(" ", 1)[-1].lstrip("([\"'")
    if last.lower() in _ABBREV or (last.lower() == "al" and previous.endswith("et al.")):
        return True
    # "J. Smith", "U.S. policy": a single capital letter (possibly dotted) is an initial.
    return len(last.replace(".", "")) == 1 and last[:1].isupper()


def count_words(text: str) -> int:
    """Words as a reader counts them: whitespace-separated chunks."""
    return len(text.split())


@dataclass(frozen=True)
class Parsed:
    """A paper tokenized once, shared by the tagger and the summarizer."""

    title: str
    sentences: list[str]
    title_terms: list[str]
    sentence_terms: list[list[str]]


# "Code and models are available at https://...": says nothing about the topic, yet its
# words ("code", "models", "data") would vote for tags.
_AVAILABILITY = re.compile(
    r"https?://|www\.|github\.|\b(?:is|are|will be|been)\s+(?:made\s+)?(?:publicly\s+|freely\s+)?"
    r"(?:available|released|open[- ]sourced)\b",
    re.IGNORECASE,
)


def parse(title: str, abstract: str) -> Parsed:
    """Clean LaTeX, split sentences and extract terms of a paper."""
    title = clean_latex(title)
    sents = sentences(clean_latex(abstract))
    sentence_terms = [[] if _AVAILABILITY.search(s) else terms(s) for s in sents]
    return Parsed(title, sents, terms(title), sentence_terms)
