"""Score a results file against gold summaries and tags: ROUGE as in SciTLDR, tag P/R/F1, P@1.

Summaries are also read for visible defects (``agent.defects``), which needs no gold: every
result with a summary counts, in the gold or not.

Papers are matched by id. A result with an error counts as an empty prediction (zero ROUGE, no
tags), so failures cannot flatter a backend; a gold paper with no result at all is reported as
missing and left out, so a partial run (``--limit``) is scored on what it covered. Results whose
prompt showed the model their gold tags (the input's ``categories``) are not scored at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.errors import InputError

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")


@dataclass(frozen=True)
class Prediction:
    """What a results line says about one paper."""

    tags: list[str]
    summary: str
    errored: bool = False
    shown: tuple[str, ...] = ()  # the input's categories, which the prompt showed the model


@dataclass(frozen=True)
class Gold:
    """Reference summaries and tags for one paper."""

    summaries: list[str]
    tags: list[str]


@dataclass
class Report:
    """Counts and metrics; metric groups are None when the gold has no such labels."""

    gold: int = 0
    results: int = 0
    matched: int = 0
    missing: int = 0
    errored: int = 0
    extra: int = 0
    summary: dict[str, float] | None = None
    tags: dict[str, float] | None = None
    defects: dict[str, object] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return asdict(self)


def defect_report(results: dict[str, Prediction]) -> dict[str, object] | None:
    """How many summaries have a visible defect, by kind, and each flagged paper's defects.

    Over the results with a summary (an errored or empty one has nothing to read); None when
    there is none.
    """
    from agent.defects import defects

    summaries = 0
    flagged: dict[str, list[str]] = {}
    kinds: dict[str, int] = {}
    for pid, pred in results.items():
        if pred.errored or not pred.summary.strip():
            continue
        summaries += 1
        found = defects(pred.summary)
        if found:
            flagged[pid] = found
        for kind in dict.fromkeys(f.split(":", 1)[0] for f in found):
            kinds[kind] = kinds.get(kind, 0) + 1
    if not summaries:
        return None
    return {
        "summaries": summaries,
        "with_defects": len(flagged),
        "percent": round(100.0 * len(flagged) / summaries, 1),
        "kinds": dict(sorted(kinds.items())),
        "papers": flagged,
    }


def format_defects(defects: dict[str, object] | None) -> str:
    """The one line people read: "summaries with visible defects: N of M (x%)"."""
    if defects is None:
        return "summaries with visible defects: no summaries to read"
    return (
        f"summaries with visible defects: {defects['with_defects']} of {defects['summaries']} "
        f"({defects['percent']:.1f}%)"
    )


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) for each non-blank line; bad input is an InputError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        raise InputError(f"{path} is empty")
    for lineno, line in enumerate(text.split("\n"), 1):  # not at U+2028 inside a string
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise InputError(f"{path}:{lineno}: invalid JSON: nested too deeply") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object")
        yield lineno, row


def _str_list(value: object, where: str, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InputError(f"{where}: '{name}' must be a string or a list of strings")


def _row_id(row: dict[str, object], where: str) -> str:
    value = row.get("id", row.get("paper_id"))
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        raise InputError(f"{where}: no 'id' (or 'paper_id')")
    return str(value)


def load_results(path: Path) -> dict[str, Prediction]:
    """Read results.jsonl (DESIGN "The results file"), keyed by paper id."""
    out: dict[str, Prediction] = {}
    for lineno, row in _jsonl(path):
        where = f"{path}:{lineno}"
        summary = row.get("summary") or ""
        if not isinstance(summary, str):
            raise InputError(f"{where}: 'summary' must be a string")
        tags = _str_list(row.get("tags"), where, "tags")
        shown = tuple(_str_list(row.get("categories"), where, "categories"))
        errored = row.get("error") is not None
        out.setdefault(_row_id(row, where), Prediction(tags, summary, errored, shown))
    return out


def load_gold(path: Path) -> dict[str, Gold]:
    """Read gold JSONL: id/paper_id, tldrs and/or summary, tags or categories.

    Gold meant as inputs too keeps its labels in ``tags``, which no prompt reads: labels in
    ``categories`` reach the prompt, and ``evaluate`` refuses results made from them.
    """
    out: dict[str, Gold] = {}
    for lineno, row in _jsonl(path):
        where = f"{path}:{lineno}"
        summaries = _str_list(row.get("tldrs"), where, "tldrs")
        summaries += _str_list(row.get("summary"), where, "summary")
        key = "tags" if row.get("tags") is not None else "categories"
        tags = _str_list(row.get(key), where, key)
        out.setdefault(_row_id(row, where), Gold([s for s in summaries if s.strip()], tags))
    return out


def rouge_scores(pairs: list[tuple[str, list[str]]]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 x100; per paper the reference with the best ROUGE-1 F1 counts."""
    from rouge_score import rouge_scorer  # slow to import (nltk): only when scoring

    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for prediction, references in pairs:
        if not prediction.strip():
            continue  # an empty prediction scores zero against anything
        best = max(
            (scorer.score(ref, prediction) for ref in references),
            key=lambda s: s["rouge1"].fmeasure,
        )
        for key in ROUGE_KEYS:
            totals[key] += best[key].fmeasure
    n = len(pairs)
    return {key: round(100.0 * totals[key] / n, 2) for key in ROUGE_KEYS} | {"papers": n}


def tag_scores(pairs: list[tuple[list[str], list[str]]]) -> dict[str, float]:
    """Micro and macro precision/recall/F1 and precision@1 of predicted vs gold tags."""
    tp: dict[str, int] = {}
    fp: dict[str, int] = {}
    fn: dict[str, int] = {}
    top_hits = 0
    for predicted, gold in pairs:
        pred = list(dict.fromkeys(t.casefold() for t in predicted))
        ref = {t.casefold() for t in gold}
        if pred and pred[0] in ref:
            top_hits += 1
        for t in pred:
            bucket = tp if t in ref else fp
            bucket[t] = bucket.get(t, 0) + 1
        for t in ref.difference(pred):
            fn[t] = fn.get(t, 0) + 1
    labels = set(tp) | set(fp) | set(fn)
    s_tp, s_fp, s_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    micro = _prf(s_tp, s_fp, s_fn)
    per_label = [_prf(tp.get(t, 0), fp.get(t, 0), fn.get(t, 0)) for t in labels]
    macro = tuple(
        sum(m[i] for m in per_label) / len(per_label) if labels else 0.0 for i in range(3)
    )
    n = len(pairs)
    return {
        "papers": n,
        "precision_at_1": round(top_hits / n, 4) if n else 0.0,
        "micro_precision": round(micro[0], 4),
        "micro_recall": round(micro[1], 4),
        "micro_f1": round(micro[2], 4),
        "macro_precision": round(macro[0], 4),
        "macro_recall": round(macro[1], 4),
        "macro_f1": round(macro[2], 4),
        "labels": len(labels),
    }


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def shown_gold(results: dict[str, Prediction], gold: dict[str, Gold]) -> int:
    """How many results were made from a prompt that showed a gold tag of their paper."""
    count = 0
    for pid, ref in gold.items():
        pred = results.get(pid)
        if pred is not None and pred.shown and ref.tags:
            count += bool({t.casefold() for t in pred.shown} & {t.casefold() for t in ref.tags})
    return count


def evaluate(results: dict[str, Prediction], gold: dict[str, Gold]) -> Report:
    """Match results to gold by id and compute every metric the gold supports; an
    ``InputError`` when the model was shown the gold tags (``shown_gold``)."""
    leaked = shown_gold(results, gold)
    if leaked:
        raise InputError(
            f"the prompt showed the model the gold tags of {leaked} of these papers (the "
            "inputs' 'categories', which the prompt prints): the scores would flatter it; run "
            "again on inputs that keep the gold in 'tags', which no prompt reads"
        )
    report = Report(gold=len(gold), results=len(results), defects=defect_report(results))
    report.extra = sum(1 for pid in results if pid not in gold)
    summary_pairs: list[tuple[str, list[str]]] = []
    tag_pairs: list[tuple[list[str], list[str]]] = []
    for pid, ref in gold.items():
        pred = results.get(pid)
        if pred is None:
            report.missing += 1
            continue
        report.matched += 1
        if pred.errored:
            report.errored += 1
            pred = Prediction([], "", errored=True)
        if ref.summaries:
            summary_pairs.append((pred.summary, ref.summaries))
        if ref.tags:
            tag_pairs.append((pred.tags, ref.tags))
    if report.matched == 0:
        raise InputError("no result id matches a gold id: are these files about the same papers?")
    if summary_pairs:
        report.summary = rouge_scores(summary_pairs)
    if tag_pairs:
        report.tags = tag_scores(tag_pairs)
    if not summary_pairs and not tag_pairs:
        report.notes.append("the gold file has neither summaries (tldrs/summary) nor tags")
    return report


def evaluate_files(results_path: Path, gold_path: Path) -> Report:
    """Load both files and evaluate."""
    return evaluate(load_results(results_path), load_gold(gold_path))


def format_table(report: Report) -> str:
    """A two-column plain-text table for people."""
    rows: list[tuple[str, str]] = [
        ("papers matched", str(report.matched)),
        ("papers missing", str(report.missing)),
        ("papers errored", str(report.errored)),
        ("results not in gold", str(report.extra)),
    ]
    if report.summary is not None:
        s = report.summary
        rows.append(("summary papers", f"{s['papers']:.0f}"))
        rows += [(f"{name} F1 x100", f"{s[key]:.2f}") for key, name in _ROUGE_NAMES]
    if report.tags is not None:
        t = report.tags
        rows.append(("tag papers", f"{t['papers']:.0f}"))
        rows += [(name, f"{t[key]:.3f}") for key, name in _TAG_NAMES]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'metric':<{width}}  {'value':>8}"]
    lines += [f"{name:<{width}}  {value:>8}" for name, value in rows]
    if report.defects is not None:
        lines.append(format_defects(report.defects))
    return "\n".join(lines + report.notes)


_ROUGE_NAMES = (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"))
_TAG_NAMES = (
    ("precision_at_1", "precision@1"),
    ("micro_precision", "micro precision"),
    ("micro_recall", "micro recall"),
    ("micro_f1", "micro F1"),
    ("macro_precision", "macro precision"),
    ("macro_recall", "macro recall"),
    ("macro_f1", "macro F1"),
)


# --- Relevance ranking (issue 9) ---------------------------------------------------------
# For each interest, a gold paper is relevant when one of its author keywords (lower-cased) is
# one of the interest's gold phrases. Every result is ranked by its score for that interest:
# ``relevance_by[name]``, else ``relevance`` when the results carry no per-criterion scores
# (a run made with that interest alone). Ties keep the results file's order, so a constant
# score cannot look better than it is; an errored or unscored result ranks last.

PRECISION_DEPTH = 10


@dataclass(frozen=True)
class InterestGold:
    """One interest to score: its name and the keywords that make a paper relevant."""

    name: str
    gold: frozenset[str]


@dataclass
class RelevanceReport:
    """Mean average precision and precision@10 over interests, with each interest's row."""

    results: int = 0
    interests: list[dict[str, object]] = field(default_factory=list)
    map: float = 0.0
    precision_at_10: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return asdict(self)


def load_interest_gold(path: Path) -> list[InterestGold]:
    """Read a JSON list of ``{"name", "criterion", "gold": [keywords]}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{path}: invalid JSON: nested too deeply") from None
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a non-empty JSON list of interests")
    out: list[InterestGold] = []
    for i, item in enumerate(data, 1):
        where = f"{path}: interest {i}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputError(f"{where}: expected an object with a 'name'")
        gold = _str_list(item.get("gold"), where, "gold")
        if not gold:
            raise InputError(f"{where}: 'gold' lists no keywords")
        out.append(InterestGold(item["name"], frozenset(g.lower().strip() for g in gold)))
    return out


def load_keywords(path: Path) -> dict[str, frozenset[str]]:
    """Each gold paper's author keywords, lower-cased, keyed by id."""
    out: dict[str, frozenset[str]] = {}
    for lineno, row in _jsonl(path):
        where = f"{path}:{lineno}"
        words = _str_list(row.get("keywords"), where, "keywords")
        out.setdefault(_row_id(row, where), frozenset(w.lower().strip() for w in words))
    return out


def load_scores(path: Path) -> list[tuple[str, float | None, dict[str, float]]]:
    """(id, relevance, relevance_by) of each results line, in file order."""
    out: list[tuple[str, float | None, dict[str, float]]] = []
    seen: dict[str, str] = {}
    for lineno, row in _jsonl(path):
        where = f"{path}:{lineno}"
        relevance = row.get("relevance")
        by = row.get("relevance_by") or {}
        if relevance is not None and not _is_number(relevance):
            raise InputError(f"{where}: 'relevance' must be a finite number")
        if not isinstance(by, dict) or not all(_is_number(v) for v in by.values()):
            raise InputError(f"{where}: 'relevance_by' must map names to finite numbers")
        pid = _row_id(row, where)
        if pid in seen:  # ranked twice, one paper would count as several relevant hits
            raise InputError(f"{where}: id {pid!r} again (first at {seen[pid]})")
        seen[pid] = where
        out.append((pid, relevance, {str(k): float(v) for k, v in by.items()}))
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def average_precision(ranked: list[str], relevant: set[str]) -> float:
    """Mean of precision at each relevant paper's rank, over all relevant papers."""
    hits = 0
    total = 0.0
    for rank, pid in enumerate(ranked, 1):
        if pid in relevant:
            hits += 1
            total += hits / rank
    return total / len(relevant) if relevant else 0.0


def precision_at(ranked: list[str], relevant: set[str], k: int = PRECISION_DEPTH) -> float:
    """Share of the first ``k`` ranked papers that are relevant (k counts even if fewer)."""
    return sum(1 for pid in ranked[:k] if pid in relevant) / k


def evaluate_relevance(
    scores: list[tuple[str, float | None, dict[str, float]]],
    keywords: dict[str, frozenset[str]],
    interests: list[InterestGold],
) -> RelevanceReport:
    """MAP and P@10 of the results' ranking for each interest."""
    report = RelevanceReport(results=len(scores))
    matched = [s for s in scores if s[0] in keywords]
    if not matched:
        raise InputError("no result id matches a gold id: are these files about the same papers?")
    aps: list[float] = []
    p10s: list[float] = []
    for interest in interests:
        relevant = {pid for pid, _, _ in scores if keywords.get(pid, frozenset()) & interest.gold}
        if not relevant:
            report.notes.append(f"{interest.name}: no relevant paper in the results, left out")
            continue
        unscored = 0

        def key(
            item: tuple[str, float | None, dict[str, float]], name: str = interest.name
        ) -> float:
            nonlocal unscored
            _, relevance, by = item
            value = by.get(name) if by else relevance
            if value is None:
                unscored += 1
                return math.inf  # sorts last: ranked by -score ascending
            return -value

        ranked = [pid for pid, _, _ in sorted(scores, key=key)]  # stable: ties keep file order
        if unscored == len(scores):
            report.notes.append(f"{interest.name}: no result has a score for it")
        ap, p10 = average_precision(ranked, relevant), precision_at(ranked, relevant)
        aps.append(ap)
        p10s.append(p10)
        report.interests.append(
            {"name": interest.name, "relevant": len(relevant), "ap": round(ap, 4), "p_at_10": p10}
        )
    if aps:
        report.map = round(sum(aps) / len(aps), 4)
        report.precision_at_10 = round(sum(p10s) / len(p10s), 4)
    return report


def evaluate_relevance_files(
    results_path: Path, gold_path: Path, interests_path: Path
) -> RelevanceReport:
    """Load the three files and score the ranking."""
    return evaluate_relevance(
        load_scores(results_path), load_keywords(gold_path), load_interest_gold(interests_path)
    )


def format_relevance_table(report: RelevanceReport) -> str:
    """One row per interest (relevant papers, AP, P@10), then the means."""
    rows = [
        (str(r["name"]), str(r["relevant"]), f"{r['ap']:.3f}", f"{r['p_at_10']:.2f}")
        for r in report.interests
    ]
    rows.append(("mean", "", f"{report.map:.3f}", f"{report.precision_at_10:.2f}"))
    width = max(len("interest"), *(len(r[0]) for r in rows))
    lines = [f"{'interest':<{width}}  {'relevant':>8}  {'AP':>6}  {'P@10':>5}"]
    lines += [f"{a:<{width}}  {b:>8}  {c:>6}  {d:>5}" for a, b, c, d in rows]
    return "\n".join(lines + report.notes)
