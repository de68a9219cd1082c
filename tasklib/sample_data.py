"""Deterministic sample data for the example pipelines, the demo and the tests.

Nothing is downloaded: customer-feedback messages are generated from templates
with a seeded RNG, so every machine gets the same rows. Some messages also
mention a second topic, so a model needs enough data to learn which one is the
intent. `noise` relabels a share of rows by a fixed swap of intents (billing ↔
shipping, returns ↔ quality): systematic mislabeling, which is how the demo
produces a challenger that is worse than the champion on purpose.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

INTENTS = {
    "billing": ["I was charged twice for my {item}", "refund the extra fee on my {item} invoice",
                "why is my bill higher this month for the {item}", "my card was billed but the {item} order failed"],
    "shipping": ["my {item} has not arrived yet", "where is my {item} package, tracking shows nothing",
                 "the courier lost my {item}", "delivery of the {item} is three days late"],
    "returns": ["how do I return the {item}", "I want to send back the {item} it does not fit",
                "return label for my {item} please", "can I exchange the {item} for another size"],
    "account": ["I cannot log in to my account to see the {item}", "reset my password, locked out after buying {item}",
                "change the email on my account for {item} orders", "delete my account and my {item} history"],
    "quality": ["the {item} broke after one day", "the {item} arrived damaged and scratched",
                "poor quality {item}, the seams are torn", "the {item} stopped working after a week"],
}
ITEMS = ["headphones", "jacket", "coffee maker", "phone case", "backpack", "lamp", "sneakers", "blender"]
FILLERS = ["", " thanks", " please help", " asap", " this is frustrating", " order 88213", " hi team,"]
SECOND_TOPIC = {"billing": "and the invoice looks odd", "shipping": "and it was delivered late",
                "returns": "maybe I will send it back", "account": "I also cannot log in",
                "quality": "and it feels cheap"}
# Half the messages name only a product error code: 25 per intent, so a small first drop has not
# seen them all, and more data really does make a better model.
CODES = {label: [f"{label[:3]}{n:02d}x" for n in range(25)] for label in INTENTS}
CODE_TEMPLATES = ["my {item} shows error {code}", "error {code} again with the {item}",
                  "got code {code} on my {item} order", "{code} keeps appearing, {item} order"]
SWAP = {"billing": "shipping", "shipping": "billing", "returns": "quality", "quality": "returns", "account": "account"}


def feedback_rows(count: int, seed: int, noise: float = 0.0, start_day: int = 1, mixed: float = 0.5,
                  coded: float = 0.5) -> list[dict]:
    rng = random.Random(seed)
    labels = sorted(INTENTS)
    rows = []
    for i in range(count):
        label = rng.choice(labels)
        if rng.random() < coded:
            text = rng.choice(CODE_TEMPLATES).format(item=rng.choice(ITEMS), code=rng.choice(CODES[label]))
        else:
            text = rng.choice(INTENTS[label]).format(item=rng.choice(ITEMS))
        if rng.random() < mixed:  # a second topic: the model must learn which words carry the intent
            text += " " + SECOND_TOPIC[rng.choice([other for other in labels if other != label])]
        text += rng.choice(FILLERS)
        if rng.random() < noise:
            label = SWAP[label]
        day = start_day + i * 27 // max(count, 1)
        rows.append({"text": text, "label": label, "ts": f"2026-01-{min(day, 28):02d}T{i % 24:02d}:00:00"})
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_slack_db(rows: list[dict], path: Path) -> Path:
    """The `slack` source of the feedback example: a SQLite table reached through a common-sql connection."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("create table if not exists slack_messages (text text, label text, ts text)")
        db.executemany("insert into slack_messages values (:text, :label, :ts)", rows)
    return path
