"""Extractive summaries with light compression: the sentence that states the contribution.

Scientific abstracts follow a pattern (context, gap, "we propose X", results), and a one-line
summary is mostly the "we propose X" sentence with its boilerplate removed. Each sentence is
scored on contribution cues, overlap with the title, centrality (shared terms with the rest of
the abstract) and position; the winner is compressed (lead-ins, citations and parentheticals
dropped) and cut at a clause boundary to fit the word limit.
"""

from __future__ import annotations

import re
from collections import Counter

from agent.backends.local.text import Parsed, count_words, parse

# Verbs that announce the paper's own contribution, strongest first.
_STRONG_CUE = re.compile(
    r"\b(we|this (?:paper|work|study|article)|our (?:work|paper))\s+(?:\w+ly\s+)?"
    r"(propose|introduce|present|develop|design|devise|describe|formulate|build|create|"
    r"proposes|introduces|presents|develops|describes)\b",
)
_WEAK_CUE = re.compile(
    r"\b(we|this (?:paper|work|study)|here,? we)\s+(?:\w+ly\s+)?"
    r"(show|demonstrate|study|investigate|analy[sz]e|explore|examine|find|prove|address|"
    r"shows|demonstrates|studies|investigates|explores|examines|establish|provide|"
    r"provides|extend|consider|focus|tackle)\b|\b(novel|new (?:method|approach|framework|model|"
    r"algorithm|technique))\b",
)
# Sentences that set the scene rather than say what this paper does.
_BACKGROUND = re.compile(
    r"^(recent|recently|however|although|despite|while|existing|current|traditional|"
    r"conventional|many|most|prior|previous)\b|\b(has|have) (been|become|shown|attracted)\b",
)
# Lead-ins that carry no content: "In this paper, we propose X" -> "We propose X".
_LEAD_IN = re.compile(
    r"^(?:(?:in|within) this (?:paper|work|study|article|letter|note)|here|specifically|"
    r"in particular|to (?:this end|do so|achieve this|our knowledge|address|tackle|overcome|"
    r"conquer|handle|resolve|solve|bridge|fill|mitigate|"
    r"alleviate|remedy)[^,]{0,80}|therefore|thus|hence|consequently|moreover|furthermore|"
    r"additionally|in addition|finally|overall|however|instead|motivated by [^,]{0,80}|"
    r"inspired by [^,]{0,80}|in contrast|as a result|concretely|accordingly|"
    r"building on [^,]{0,80}|based on [^,]{0,80})\s*,\s*",
    re.IGNORECASE,
)
_PARENS = re.compile(r"\s*[(\[][^()\[\]]{0,120}[)\]]")
_CLAUSE = re.compile(
    r"(?:,|;|:|\s[-–—]+)\s+(?=(?:which|where|while|whereas|that|and|but|thus|thereby|"
    r"leading|resulting|allowing|enabling|making|achieving|yielding|using|by|with|without|"
    r"through|as|in|on|for|to|outperforming|improving|including|such)\b)|;\s+|:\s+"
)
_DANGLING = re.compile(r"[\s,;:–—-]+(?:and|or|the|a|an|of|to|in|for|with|by|on)?$", re.IGNORECASE)

MIN_WORDS = 6  # a shorter winning sentence gets the next best one appended if room allows


def summarize(title: str, abstract: str, max_words: int = 40) -> str:
    """One or two sentences from ``abstract`` within ``max_words`` (the title if it is empty)."""
    return summarize_parsed(parse(title, abstract), max_words)


def summarize_parsed(paper: Parsed, max_words: int = 40) -> str:
    """``summarize`` for a paper already tokenized."""
    sents = paper.sentences
    if not sents:
        return fit(paper.title, max_words)
    ranked = rank(paper.title_terms, sents, paper.sentence_terms)
    best = compress(sents[ranked[0]])
    if count_words(best) < MIN_WORDS and len(ranked) > 1:
        extra = compress(sents[ranked[1]])
        if count_words(best) + count_words(extra) <= max_words:
            best = f"{best} {extra}" if ranked[0] < ranked[1] else f"{extra} {best}"
    return fit(best, max_words)


def rank(title: list[str], sents: list[str], sent_terms: list[list[str]]) -> list[int]:
    """Sentence indices, best summary candidate first, from the title's and sentences' terms."""
    title_terms = set(title)
    doc = Counter(t for ts in sent_terms for t in set(ts))
    n = len(sents)
    scores: list[float] = []
    for i, (sent, ts) in enumerate(zip(sents, sent_terms, strict=True)):
        uniq = set(ts)
        score = 0.0
        low = sent.lower()  # cue patterns are lower-case: IGNORECASE is several times slower
        if _STRONG_CUE.search(low):
            score += 3.0
        elif _WEAK_CUE.search(low):
            score += 1.5
        if _BACKGROUND.search(low):
            score -= 1.0
        if title_terms and uniq:
            score += 3.0 * len(uniq & title_terms) / len(title_terms)
        if uniq and n > 1:
            # Centrality: how many of the sentence's terms the rest of the abstract repeats.
            score += sum(1 for t in uniq if doc[t] > 1) / (len(uniq) ** 0.5) * 0.3
        # The first sentence is usually context, the last usually results; the contribution
        # tends to sit in the first half after the opening.
        if n > 2:
            score += 0.5 if 0 < i <= n // 2 else 0.0
            score -= 0.5 if i == n - 1 else 0.0
        length = count_words(sent)
        if length < 8:
            score -= 1.5
        elif length > 60:
            score -= 1.0
        scores.append(score)
    return sorted(range(n), key=lambda i: (-scores[i], i))


def compress(sentence: str) -> str:
    """Drop lead-ins, citations and parentheticals; keep the sentence's content."""
    text = sentence.strip()
    for _ in range(3):  # "However, in this paper, we ..." has stacked lead-ins
        stripped = _LEAD_IN.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    text = _PARENS.sub("", text)
    text = re.sub(r"\s+([,.;:])", r"\1", text).strip()
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text


def fit(text: str, max_words: int) -> str:
    """``text`` within ``max_words``: cut at the last clause boundary that fits, else at a word."""
    text = text.strip()
    if max_words <= 0 or not text:
        return ""
    if count_words(text) <= max_words:
        return _end(text)
    cut = None
    for match in _CLAUSE.finditer(text):
        head = text[: match.start()]
        if count_words(head) > max_words:
            break
        if count_words(head) >= max(4, max_words // 2):  # a stub is worse than a hard cut
            cut = head
    if cut is None:
        cut = " ".join(text.split()[:max_words])
    return _end(cut)


def _end(text: str) -> str:
    for _ in range(2):  # "... performance on a" -> "... performance"
        text = _DANGLING.sub("", text.rstrip(" .,;:")) or text
    # Unbalanced brackets from a cut would read as noise.
    for opener, closer in ("()", "[]"):
        if text.count(opener) > text.count(closer):
            text = text[: text.rfind(opener)].rstrip(" ,;:")
    if text and text[-1] not in ".!?。":
        text += "."
    return text
