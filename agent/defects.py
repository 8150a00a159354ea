"""Visible defects of a summary: what a reader sees at once is wrong, whoever wrote it.

``defects(summary)`` names each one: markup left from LaTeX or HTML, brackets that do not
balance, an opening that leans on a sentence the reader never saw ("However, ...", "Within
this framework, ..."), a lowercase start, and a sentence cut so that it no longer parses (no
final punctuation, "... tokens but.", a list's tail left as the subject), a sentence that only
names what it introduces ("We introduce Double."), math whose argument was lost ("in O time"),
and a word split in two by a line break of the source ("revo lutionized"). It is precise rather
than paranoid: each rule stands for a defect seen in real summaries, and names such as
"(IA)^3", "word2vec" or "k-means" pass. The same check scores any backend in ``paper-agent
eval`` ("summaries with visible defects").
"""

from __future__ import annotations

import re

__all__ = ["announces", "bare_name", "defects", "has_defects"]

# --- Markup --------------------------------------------------------------------------------
_MARKUP = (
    (re.compile(r"\\[%&_#${}]"), "TeX escape"),
    (re.compile(r"\\[A-Za-z]+"), "TeX command"),
    # Inline math: "$x^2$", but not two prices ("$5 and $10": a space inside either end).
    (re.compile(r"\$(?=\S)[^$\n]{1,80}(?<=\S)\$"), "TeX math"),
    (re.compile(r"[_^]\{"), "TeX sub/superscript"),
    # A caret is markup ("LoRA,^3", "Q^*", "x^2") unless it is a name's exponent: "(IA)^3".
    (re.compile(r"(?<!\))\^|\)\^(?!\d)"), "caret"),
    (re.compile(r"``|''"), "TeX quotes"),
    (re.compile(r"[{}]"), "braces"),
    (re.compile(r"&(?:amp|lt|gt|quot|apos|nbsp|#\d+|#x[0-9a-fA-F]+);"), "HTML entity"),
    (re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>"), "HTML tag"),
)
# "in O time", "with O cost": the argument of a big-O (or Theta, Omega) went with its math.
# "O(n log n)", "I/O", "O-RAN" and "Type O" at a sentence's end pass.
_LOST_MATH = re.compile(r"(?<![/\w-])[OΘΩ](?=\s+[a-z]|[,;:])")

# --- Brackets ------------------------------------------------------------------------------
_PAIRS = {")": "(", "]": "["}
# "i) ... ii) ..." and "a) ... b) ...": list markers close a bracket they never opened.
_LIST_MARKER = re.compile(r"(?:^|(?<=[\s,;:]))(?:[ivx]{1,4}|[a-h]|\d{1,2})\)")

# --- Openings that lean on an unseen sentence ------------------------------------------------
_CONNECTIVES = (
    "and|but|or|nor|yet|so|then|also|thus|hence|therefore|consequently|moreover|furthermore|"
    "additionally|besides|nevertheless|nonetheless|however|instead|still|meanwhile|similarly|"
    "likewise|conversely|accordingly|otherwise|finally|lastly|second|secondly|third|thirdly|"
    "next|subsequently|afterwards|specifically|in particular|in addition|in contrast|"
    "by contrast|on the other hand|as a result|as such|in response|in turn|to this end|"
    "to that end|to do so|to compensate|for this purpose|for this reason|in doing so|this way|"
    "that is"
)
# Case-blind, then kept only as "However" or "however": "SO(3)" and "AND-OR" are names.
_OPENING = re.compile(rf"^(?:{_CONNECTIVES})\b(?![-'(])", re.IGNORECASE)
# "I.e., the query likelihood model, we seek ...": what it explains was cut away.
_ABBREVIATED_OPENING = re.compile(r"^(?:i\.\s?e\.|e\.\s?g\.|viz\.|cf\.|namely\b)", re.IGNORECASE)
# These take an object of their own ("Besides X, we ...", "In contrast to X, ..."): they lean
# on an unseen sentence only when a comma follows at once.
_PREPOSITIONAL = re.compile(
    r"^(?:besides|instead|in addition|in contrast|by contrast|as a result|in response)$",
    re.IGNORECASE,
)
# An opening phrase built on a demonstrative: "Following this motivation, ...", "Within this
# flash memory-informed framework, ...", "In response to these gaps, ...", "Despite this, ...".
_DEMONSTRATIVE_OPENING = re.compile(
    r"^(?:[A-Z][a-z]+(?:ing|ed)|In|Within|Under|Despite|With|Without|Beyond|From|To|For|"
    r"Through|By|On|At|After|Against|Because|Due|Along|Unlike|Like|Besides|Toward|Towards|Of|"
    r"Amid|Among|Upon|Via|Given|Throughout|Across|Over|Into|During|Before|Since|As)"
    r"(?:\s+[a-z]+){0,3}\s+(?:this|these|those|such(?!\s+as\b))\b([^,.;:]{0,60}),"
)
# "this" and "these" that name the paper itself are not anaphora.
_SELF = re.compile(
    r"^\s*(?:[\w-]+\s+){0,2}?(?:paper|work|study|article|letter|note|survey|report|thesis|"
    r"tutorial|review|manuscript|chapter|abstract|submission|dissertation|book|talk|"
    r"proposal|project)s?\b"
)
# Nouns a dangling "this ..." names, in groups of near-synonyms: "these models" has an
# antecedent in "a family of neural networks", "this task" in "the set ranking problem".
_REFERENT_GROUPS = (
    ("problem", "issue", "gap", "challenge", "limitation", "shortcoming", "drawback",
     "bottleneck", "question", "task", "difficulty"),
    ("framework", "approach", "method", "technique", "model", "architecture", "system",
     "pipeline", "algorithm", "scheme", "mechanism", "module", "component", "procedure",
     "strategy", "paradigm", "solution", "tool", "design", "network", "schedule", "formulation"),
    ("setting", "scenario", "context", "regime"),
    ("motivation", "idea", "observation", "insight", "finding", "result", "phenomenon", "trend"),
    ("benchmark", "dataset", "corpus"),
)  # fmt: skip
_SYNONYMS = {noun: group for group in _REFERENT_GROUPS for noun in group}
_REFERENT_NOUNS = "|".join(_SYNONYMS)
# "this framework", "these two principal techniques": the noun must have been named before.
# Words between the demonstrative and its noun are modifiers, never a verb or an article
# ("This is a new framework" is not a reference to one).
_NOT_MODIFIER = (
    r"(?!(?:is|are|was|were|be|been|has|have|had|can|could|will|would|may|might|must|should|"
    r"does|do|did|a|an|the|to|of|in|on|for|with|by|we|it|that|and|or|not|as|at|from)\b)"
)
_REFERENCE = re.compile(
    rf"\b(?:[Tt]his|[Tt]hese|[Ss]uch)\s+(?:{_NOT_MODIFIER}[\w-]+\s+){{0,3}}?"
    rf"({_REFERENT_NOUNS})(?:e?s)?\b"
)
# "we introduce two principal techniques." and nothing more: the reader never learns which.
_UNNAMED = re.compile(
    r"\b(?:two|three|four|five|several|multiple)\s+(?:[\w-]+\s+){0,2}?(?:techniques|strategies|"
    r"components|modules|mechanisms|innovations|contributions|ideas|principles|improvements|"
    r"designs|stages|steps)\s*[.!?]?$"
)

# --- Cut sentences -------------------------------------------------------------------------
# Words a sentence cannot end on (stranded prepositions such as "relies on." are grammatical,
# so only conjunctions, articles and the like are here; "though" and "while" can end one).
_CUT_WORDS = (
    "and|or|but|nor|of|the|a|an|than|via|whose|whether|because|although|whereas|if|that|as|"
    "including|its|their|our|which"
)
_CUT_ENDING = re.compile(rf"\b(?:{_CUT_WORDS})\s*[.!?]?[\"')\]]*$")
_FINAL = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")
_DANGLING_PUNCT = re.compile(r"[,;:]\s*[.!?]?$")
# "Quantization, and stability challenges, we develop ...": the tail of a list left as the
# subject once the sentence's start was cut away.
_LIST_TAIL = re.compile(r"^[A-Z][\w-]*(?:\s+[\w-]+){0,2},\s+and\s+[^,.]+,\s+we\s+[a-z]+")
# "We design and implement." (a LaTeX name macro was dropped): a verb that needs its object.
_NO_OBJECT = re.compile(
    r"^(?:We|This (?:paper|work))\s+(?:[a-z]+\s+and\s+)?(?:implement|propose|introduce|present|"
    r"design|develop|devise|build|create|describe)s?\s*[.!?]$"
)
# "We introduce Double." (its explanation was an aside, dropped): a name says nothing alone.
_BARE_NAME = re.compile(
    r"^(?:[Ww]e|[Tt]his (?:paper|work|study|article))\s+(?:[a-z]+\s+and\s+)?(?:implement|propose|"
    r"introduce|present|design|develop|devise|build|create|describe)s?\s+"
    r"(?:a\s+|an\s+|the\s+)?[\w.+-]+\s*[.!?]?$"
)
# "... the discussion of the following aspects.", "..., with important findings.": it
# announces what it never says.
_VAGUE = (
    r"(?:(?:several|some|many|various|important|interesting|key|notable|major|main|valuable|"
    r"useful|significant|novel|new)\s+)+(?:findings|insights|observations|lessons|conclusions|"
    r"implications|discoveries|results)"
)
_ANNOUNCES = re.compile(
    rf"\b(?:the following(?:\s+[\w-]+){{0,2}}|as follows|(?:with|yielding|revealing|offering|"
    rf"providing|presenting|reporting|and)\s+{_VAGUE})\s*[.!?]?$"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])")
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|et al|vs|cf|Fig|Eq|Sec|approx|resp)\.$")
# A first word that is all lowercase letters: "we propose", not "word2vec", "mBERT", "k-means".
_LOWER_START = re.compile(r"^[\"'(\[]?[a-z]+(?=[\s,;:]|$)")


def defects(summary: str) -> list[str]:
    """Each visible defect of ``summary`` as "kind: detail"; empty when it reads clean."""
    text = " ".join(summary.split())
    if not text:
        return ["empty: no summary"]
    found: list[str] = []
    for pattern, what in _MARKUP:
        match = pattern.search(text)
        if match:
            found.append(f"markup: {what} {match.group(0)!r}")
    lost = _LOST_MATH.search(text)
    if lost:
        found.append(f"lost math: a bare {lost.group(0)!r} whose argument was dropped")
    bracket = _unbalanced(text)
    if bracket:
        found.append(f"brackets: {bracket}")
    found += _dangling(text)
    lower = _LOWER_START.match(text)
    if lower:
        found.append(f"lowercase start: {lower.group(0)!r}")
    found += _cut(text)
    split = _split_word(text)
    if split:
        found.append(f"split word: {split!r}")
    return found


def announces(text: str) -> bool:
    """True when ``text`` ends on "the following aspects" or "as follows" and gives nothing
    (the offline summarizer asks this of a sentence, and of where it might cut one)."""
    return bool(_ANNOUNCES.search(text.rstrip()))


def bare_name(sentence: str) -> bool:
    """True when ``sentence`` only names what it introduces ("We introduce Double.")."""
    return bool(_BARE_NAME.match(sentence.strip()))


def has_defects(summary: str) -> bool:
    """True when ``defects`` names at least one."""
    return bool(defects(summary))


def _unbalanced(text: str) -> str | None:
    """The first bracket that does not pair up, described, or None."""
    stack: list[str] = []
    markers = {m.end() - 1 for m in _LIST_MARKER.finditer(text)}
    for i, ch in enumerate(text):
        if ch in "([":
            stack.append(ch)
        elif ch in _PAIRS:
            if stack and stack[-1] == _PAIRS[ch]:
                stack.pop()
            elif i not in markers:
                return f"{ch!r} closes nothing"
    return f"{stack[-1]!r} never closed" if stack else None


def _dangling(text: str) -> list[str]:
    """Openings and references that need a sentence the summary does not have."""
    found: list[str] = []
    start = 0  # a reference inside a flagged opening is the same defect, named once
    abbreviated = _ABBREVIATED_OPENING.match(text)
    if abbreviated:
        return [f"dangling opening: {abbreviated.group(0)!r}"]
    opening = _OPENING.match(text)
    word = opening.group(0) if opening else ""
    if word[1:] != word[1:].lower() or (
        _PREPOSITIONAL.match(word) and not re.match(r"\s*(?:,|$)", text[len(word) :])
    ):
        opening = None  # "SO(3)-equivariant", "Besides making X, we"
    if opening:
        found.append(f"dangling opening: {word!r}")
    else:
        phrase = _DEMONSTRATIVE_OPENING.match(text)
        if phrase and not _SELF.match(phrase.group(1)):
            found.append(f"dangling opening: {phrase.group(0)!r}")
            start = phrase.end()
    first = _SENTENCE_END.split(text, maxsplit=1)[0]  # later sentences have the first before
    for ref in _REFERENCE.finditer(first, start):
        if _SELF.match(first[ref.start() :].split(None, 1)[-1]):
            continue  # "This paper proposes methods": the paper itself
        before = first[: ref.start()].lower()
        if not any(noun in before for noun in _SYNONYMS[ref.group(1).lower()]):
            found.append(f"dangling reference: {ref.group(0)!r}")
            break
    unnamed = _UNNAMED.search(text)
    if unnamed:
        found.append(f"dangling reference: {unnamed.group(0)!r} never named")
    return found


def _cut(text: str) -> list[str]:
    """Sentences that stop mid-way or start with a clause's leftover."""
    found: list[str] = []
    if not _FINAL.search(text):
        found.append(f"cut ending: no final punctuation after {text[-20:]!r}")
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    for sentence in sentences:
        body = sentence.rstrip()
        if _ABBREVIATION.search(body):
            continue
        cut = _CUT_ENDING.search(body) or _DANGLING_PUNCT.search(body)
        if cut:
            found.append(f"cut ending: {body[-30:]!r}")
            break
    tail = _LIST_TAIL.match(text)
    if tail:
        found.append(f"cut start: {tail.group(0)!r}")
    for sentence in sentences:
        if _NO_OBJECT.match(sentence.strip()):
            found.append(f"cut ending: {sentence.strip()!r} has no object")
            break
        if bare_name(sentence):
            found.append(f"bare name: {sentence.strip()!r} says not what it is")
            break
        announced = _ANNOUNCES.search(sentence.rstrip())
        if announced and sentence.rstrip()[-1:] in ".!?":
            found.append(f"cut ending: {announced.group(0)!r} announces what never follows")
            break
    return found


def _split_word(text: str) -> str | None:
    """The first word split in two by the source's line break ("revo lutionized"), or None."""
    # The vocabulary of research abstracts the offline backend bundles; imported here, since
    # that backend imports this module.
    from agent.backends.local.background import split_words

    found = split_words(text)
    return found[0] if found else None
