"""LaTeX in a BibTeX field as plain text: ``{\\"U}ber {\\emph{all}} $\\alpha$--nets`` reads
``Über all α–nets``.

One left-to-right pass of one regular expression, no recursion: a title of 200,000 nested
braces costs what its length costs. pylatexenc (bibtexparser's ``LatexDecodingMiddleware``)
does more of LaTeX but took 34 ms for a 1,700-character abstract (``benchmarks/bench_refs.py``):
a 5,000-entry library would wait minutes. What a reference's title and abstract hold is
accents, a few symbols, formatting commands and some math, and that is what is read here.
"""

from __future__ import annotations

import re
import unicodedata

# \"u -> u + COMBINING DIAERESIS, composed to ü at the end.
ACCENTS = {
    "`": "\u0300",
    "'": "\u0301",
    "^": "\u0302",
    "~": "\u0303",
    "=": "\u0304",
    "u": "\u0306",
    ".": "\u0307",
    '"': "\u0308",
    "r": "\u030a",
    "H": "\u030b",
    "v": "\u030c",
    "d": "\u0323",
    "c": "\u0327",
    "k": "\u0328",
    "b": "\u0331",
    "t": "\u0361",
}
SYMBOLS = {
    # letters
    "ss": "ß", "o": "ø", "O": "Ø", "l": "ł", "L": "Ł", "ae": "æ", "AE": "Æ", "oe": "œ",
    "OE": "Œ", "aa": "å", "AA": "Å", "i": "ı", "j": "ȷ", "dh": "ð", "DH": "Ð", "th": "þ",
    "TH": "Þ", "ng": "ŋ", "NG": "Ŋ",
    # punctuation and signs
    "textendash": "–", "textemdash": "—", "ldots": "…", "dots": "…", "textellipsis": "…",
    "textquoteleft": "‘", "textquoteright": "’", "textquotedblleft": "“",
    "textquotedblright": "”", "textbackslash": "\\", "textasciitilde": "~",
    "textunderscore": "_", "textbar": "|", "copyright": "©", "textregistered": "®",
    "texttrademark": "™", "S": "§", "P": "¶", "pounds": "£", "euro": "€", "textdegree": "°",
    "LaTeX": "LaTeX", "TeX": "TeX", "BibTeX": "BibTeX",
    # math
    "times": "×", "pm": "±", "mp": "∓", "cdot": "·", "infty": "∞", "leq": "≤", "le": "≤",
    "geq": "≥", "ge": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "sim": "∼", "propto": "∝",
    "rightarrow": "→", "to": "→", "leftarrow": "←", "Rightarrow": "⇒", "mapsto": "↦",
    "in": "∈", "subset": "⊂", "subseteq": "⊆", "cup": "∪", "cap": "∩", "sum": "∑",
    "prod": "∏", "int": "∫", "partial": "∂", "nabla": "∇", "ell": "ℓ", "log": "log",
    "exp": "exp", "min": "min", "max": "max", "mid": "|", "forall": "∀", "exists": "∃",
    # spacing
    "quad": " ", "qquad": " ", "par": " ", "newline": " ", "linebreak": " ", "enspace": " ",
}  # fmt: skip


def _greek(first: int, last: int) -> dict[str, str]:
    """\\alpha -> α for the Greek letters from ``first`` to ``last``, named as Unicode names
    them ("GREEK SMALL LETTER ALPHA"; Unicode spells lambda "LAMDA")."""
    letters = {}
    for code in range(first, last + 1):
        name = unicodedata.name(chr(code), "").split(" LETTER ")[-1].lower()
        if name and name != "final sigma":
            name = "lambda" if name == "lamda" else name
            letters[name if first > 0x3A9 else name.capitalize()] = chr(code)
    return letters


SYMBOLS |= _greek(0x3B1, 0x3C9) | _greek(0x391, 0x3A9)
SYMBOLS |= {"varepsilon": "ε", "vartheta": "ϑ", "varphi": "φ", "varrho": "ϱ", "varsigma": "ς"}
ESCAPED = {"%": "%", "&": "&", "_": "_", "#": "#", "$": "$", "{": "{", "}": "}", "\\": " "}
ESCAPED |= {" ": " ", ",": " ", ";": " ", ":": " ", "!": "", "-": "", "/": "", "@": ""}

_BASE = r"(?:\\[ij](?![A-Za-z])|[A-Za-z])"  # what an accent sits on: a letter, \i or \j
_TOKEN = re.compile(
    # \"u \"{u} \" u: an accent named by a symbol takes the next letter, braced or not
    rf"\\(?P<mark>[`'^\"~=.])\s*(?:\{{\s*(?P<m1>{_BASE})\s*\}}|(?P<m2>{_BASE}))"
    # \c{c} \c c \v{s}: an accent named by a letter needs a brace or a space before its letter
    rf"|\\(?P<word_mark>[uvHcktdbr])(?:\s*\{{\s*(?P<w1>{_BASE})\s*\}}|\s+(?P<w2>{_BASE}))"
    # \cite{key}, \ref{x}, \href{url}: the argument is no text of the title's (bounded scans)
    r"|\\(?:cite[a-zA-Z]*|ref|eqref|label|href)\*?\s*(?:\[[^\]]{0,200}\])*\s*\{[^{}]{0,2000}\}"
    # \emph, \textbf, \alpha: the command goes, a braced argument stays as text
    r"|\\(?P<word>[A-Za-z]+)\*?\s*"
    r"|\\(?P<escaped>.)"
    r"|(?P<dashes>---?)"
    r"|(?P<quotes>``|'')"
    r"|(?P<tilde>~)"
    r"|(?P<gone>[{}$]+)",  # braces and math delimiters: the commonest, gone at once
    re.DOTALL,
)
_SPECIAL = re.compile(r"[\\{}$~]|--|``|''")


def _replace(match: re.Match[str]) -> str:
    if match.lastgroup == "gone":
        return ""
    groups = match.groupdict()
    if groups["mark"] or groups["word_mark"]:
        mark = groups["mark"] or groups["word_mark"]
        base = groups["m1"] or groups["m2"] or groups["w1"] or groups["w2"]
        letter = {"\\i": "i", "\\j": "j"}.get(base, base)
        return letter + ACCENTS[mark]
    if groups["word"] is not None:
        return SYMBOLS.get(groups["word"], "")
    if groups["escaped"] is not None:
        return ESCAPED.get(groups["escaped"], groups["escaped"])
    if groups["dashes"]:
        return "—" if groups["dashes"] == "---" else "–"
    if groups["quotes"]:
        return "“" if groups["quotes"] == "``" else "”"
    return " " if match.lastgroup == "tilde" else ""  # ~ is a space; \cite{...} goes


def latex_to_text(text: str) -> str:
    """``text`` with its LaTeX read as plain text (accents composed, commands dropped, their
    braced arguments kept); text without any LaTeX comes back as it is."""
    if not _SPECIAL.search(text):
        return text
    return unicodedata.normalize("NFC", _TOKEN.sub(_replace, text))
