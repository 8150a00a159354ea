"""arXiv's category list, so a misspelt category is caught before any request is sent."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from agent.errors import InputError

TAXONOMY_URL = "https://arxiv.org/category_taxonomy"

# archive -> its subject classes; an archive with none is itself the category (hep-th).
_CLASSES = {
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS NA "
    "NE NI OH OS PF PL RO SC SD SE SI SY",
    "econ": "EM GN TH",
    "eess": "AS IV SP SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR QA RA "
    "RT SG SP ST",
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "gr-qc": "",
    "hep-ex": "",
    "hep-lat": "",
    "hep-ph": "",
    "hep-th": "",
    "math-ph": "",
    "nlin": "AO CD CG PS SI",
    "nucl-ex": "",
    "nucl-th": "",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an "
    "ed-ph flu-dyn gen-ph geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph soc-ph space-ph",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "quant-ph": "",
    "stat": "AP CO ME ML OT TH",
}

# Archives with subject classes can be asked for whole (every cs.* paper).
ARCHIVES = frozenset(archive for archive, classes in _CLASSES.items() if classes)
CATEGORIES = frozenset(
    f"{archive}.{name}" if classes else archive
    for archive, classes in _CLASSES.items()
    for name in (classes.split() or [""])
)
KNOWN = CATEGORIES | ARCHIVES
_BY_LOWER = {name.lower(): name for name in KNOWN}


def check_categories(names: Iterable[str]) -> list[str]:
    """``names`` trimmed, each one an arXiv category or archive as arXiv spells it; an
    unknown one is an ``InputError`` that suggests the nearest names."""
    checked = []
    for raw in names:
        name = raw.strip()
        if name not in KNOWN:
            raise InputError(f"unknown arXiv category {name!r}: {_hint(name)}")
        checked.append(name)
    return checked


def _hint(name: str) -> str:
    # The common slip is the case (cs.lg), so that match wins over any fuzzy one.
    exact = _BY_LOWER.get(name.lower())
    if exact is not None:
        return f"did you mean {exact}?"
    # A subject class filed under another archive (cs.ML is stat.ML) beats spelling distance.
    _, dot, tail = name.lower().rpartition(".")
    same_class = [known for known in sorted(_BY_LOWER) if dot and known.endswith("." + tail)]
    fuzzy = difflib.get_close_matches(name.lower(), _BY_LOWER, n=3, cutoff=0.6)
    close = list(dict.fromkeys([*same_class, *fuzzy]))[:3]
    if close:
        return f"did you mean {' or '.join(_BY_LOWER[c] for c in close)}?"
    return f"see {TAXONOMY_URL} for the list"
