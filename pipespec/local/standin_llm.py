"""A small model trained here that stands in for a fine-tuned LLM on VIGGO-style data.

Seed 000 fine-tunes Mistral-7B to turn a request into `act(slot[value], ...)`. No hub weights
can be downloaded here, so the local stand-in of that fine-tune (the fake Anyscale job, the
tests) trains this instead: a scikit-learn classifier for the dialogue act (TF-IDF word n-grams,
logistic regression), a lexicon of slot values learned from the training outputs, and the
slots each act takes. It is a real learner: trained on more rows it knows more values and
scores better, which is what the champion/challenger loop needs to see.

Saved as a folder: `standin.json` (lexicon, act slots) and `act_classifier.joblib`, written
and read only by pipespec's own training (the folder lives under pipespec's storage).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "pipespec-standin-llm/1"
_CALL = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$", re.DOTALL)
_SLOT = re.compile(r"(\w+)\[([^\[\]]*)\]")


@dataclass
class StandinLLM:
    """Act classifier + learned slot lexicon; `complete(text)` answers like the fine-tuned LLM."""

    act_classifier: Any = None
    default_act: str = "inform"
    lexicon: dict[str, list[str]] = field(default_factory=dict)   # slot -> known values, longest first
    act_slots: dict[str, list[str]] = field(default_factory=dict)  # act -> slots seen with it

    @classmethod
    def train(cls, inputs: list[str], outputs: list[str]) -> "StandinLLM":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        acts, lexicon, act_slots = [], defaultdict(set), defaultdict(set)
        for output in outputs:
            call = _CALL.match(output or "")
            act = call.group(1) if call else "inform"
            acts.append(act)
            for slot, value in _SLOT.findall(call.group(2) if call else ""):
                lexicon[slot].add(value.strip())
                act_slots[act].add(slot)
        model = cls(default_act=max(set(acts), key=acts.count) if acts else "inform",
                    lexicon={slot: sorted(values, key=lambda v: (-len(v), v)) for slot, values in lexicon.items()},
                    act_slots={act: sorted(slots) for act, slots in act_slots.items()})
        if len(set(acts)) > 1:
            model.act_classifier = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=500))
            model.act_classifier.fit(inputs, acts)
        return model

    def complete(self, text: str) -> str:
        act = self.act_classifier.predict([text])[0] if self.act_classifier is not None else self.default_act
        found: list[tuple[int, str, str]] = []
        taken: list[tuple[int, int]] = []
        for slot in self.act_slots.get(act, []):
            for value in self.lexicon.get(slot, []):
                match = re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text)
                if match and not any(start < match.end() and match.start() < end for start, end in taken):
                    found.append((match.start(), slot, value))
                    taken.append(match.span())
                    break
        return f"{act}({', '.join(f'{slot}[{value}]' for _, slot, value in sorted(found))})"

    def save(self, folder: Path) -> Path:
        import joblib

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "standin.json").write_text(json.dumps({
            "format": FORMAT, "default_act": self.default_act, "lexicon": self.lexicon, "act_slots": self.act_slots,
            "has_classifier": self.act_classifier is not None}, indent=1))
        if self.act_classifier is not None:
            joblib.dump(self.act_classifier, folder / "act_classifier.joblib")
        return folder

    @classmethod
    def load(cls, folder: Path) -> "StandinLLM":
        meta = json.loads((folder / "standin.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder} does not hold a {FORMAT} model")
        classifier = None
        if meta["has_classifier"]:
            import joblib

            classifier = joblib.load(folder / "act_classifier.joblib")
        return cls(act_classifier=classifier, default_act=meta["default_act"], lexicon=meta["lexicon"],
                   act_slots=meta["act_slots"])
