"""Deterministic sample data for the example pipelines, the demo and the tests.

Nothing is downloaded: customer-feedback messages are generated from templates
with a seeded RNG, so every machine gets the same rows. Some messages also
mention a second topic, so a model needs enough data to learn which one is the
intent. `noise` relabels a share of rows by a fixed swap of intents (billing ↔
shipping, returns ↔ quality): systematic mislabeling, which is how the demo
produces a challenger that is worse than the champion on purpose.

The other examples' sources are seeded the same way: tabular features (churn),
bar images (xray_classifier), weekly sales (weekly_retrain; the shipped CSV is
`sales_rows(400, seed=1)`) and marketing texts by tone (genai_content).
"""

from __future__ import annotations

import json
import re
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
    """Seeded user-feedback rows (text, label, ts); `noise` is the share of swapped labels."""
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
    """Write rows as JSON lines; the path."""
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


# --- the other examples' sources: tabular, image, sales and article rows ------------------------

def tabular_rows(count: int, seed: int, target: str = "class", features: int = 3) -> list[dict]:
    """Gaussian features f0..; `label` is `churn`/`stay` by a linear rule (target="class"),
    or a noisy linear number (target="number")."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, features))
    if target == "class":
        labels = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "churn", "stay").tolist()
    else:
        labels = (50 + 20 * x[:, 0] - 10 * x[:, 1] + rng.normal(0, 2, count)).tolist()
    return [{**{f"f{j}": float(x[i, j]) for j in range(features)}, "label": labels[i]} for i in range(count)]


def bar_images(count: int, seed: int, size: int = 16) -> list[dict]:
    """`image`: size*size pixels in [0, 1], a bright horizontal or vertical bar on noise; `label` says which."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        image = rng.uniform(0, 0.4, (size, size))
        line = rng.integers(1, size - 1)
        if i % 2:
            image[:, line] = 1.0
        else:
            image[line, :] = 1.0
        rows.append({"image": image.ravel().tolist(), "label": "vertical" if i % 2 else "horizontal"})
    return rows


def sales_rows(count: int, seed: int, shift: float = 0.0) -> list[dict]:
    """Weekly demand per store: `demand` grows with the features (rounded as an export would be);
    `shift` moves f0, which is what the weekly_retrain drift check watches."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        f0, f1, f2 = rng.uniform(0, 10) + shift, rng.uniform(0, 5), rng.randint(0, 1)
        demand = 40 + 9 * f0 + 6 * f1 + 12 * f2 + rng.gauss(0, 5)
        rows.append({"store": f"s{i % 20}", "f0": round(f0, 3), "f1": round(f1, 3), "f2": f2,
                     "demand": round(demand, 2)})
    return rows


TONES = {
    "formal": ["We are pleased to announce the {thing} for all customers this quarter.",
               "Please review the updated terms of the {thing} before the renewal date.",
               "The {thing} is now available; details are provided in the attached summary."],
    "playful": ["Guess what just landed? The {thing} and it is awesome!",
                "Say hello to the {thing}, your new favourite sidekick :)",
                "Ta-da! The {thing} is here, go on and give it a spin."],
    "urgent": ["Action required: the {thing} expires in 24 hours.",
               "Last chance to claim the {thing} before midnight tonight.",
               "Immediate attention needed: the {thing} has a critical update."],
}
THINGS = ["spring collection", "loyalty program", "mobile app", "gift card", "premium plan", "newsletter"]


def articles(count: int, seed: int, short: float = 0.1) -> list[dict]:
    """Marketing texts `body` with their `tone`; a share are too short to learn from ("n/a", "tbd")."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        tone = rng.choice(sorted(TONES))
        body = rng.choice(["n/a", "tbd", "draft"]) if rng.random() < short else \
            rng.choice(TONES[tone]).format(thing=rng.choice(THINGS)) + f" (ref {seed}-{i})"
        rows.append({"body": body, "tone": tone})
    return rows


# --- VIGGO-style requests (seed 000): text in, a structured function call out -------------------

# Dialogue acts with their phrasings; each slot name is filled from VIGGO_VALUES.
VIGGO_ACTS = {
    "request_explanation": ["What is it about games released in {release_year} that makes you think it's such a "
                            "{rating} year for video games?",
                            "Why do you rate {name} as {rating}?"],
    "give_opinion": ["I think {name} is a {rating} game, especially in {player_perspective} view.",
                     "{name} from {developer} is honestly {rating}."],
    "recommend": ["Have you tried {name}? It's a {genres} game you can play on {platforms}.",
                  "If you like {genres} games, {name} is one to try."],
    "request": ["Is there a {genres} game on {platforms} that you'd like to play?",
                "Do you know a {player_perspective} game by {developer} that I could play?"],
    "confirm": ["So you mean {name}, the one released in {release_year}?",
                "You're talking about the {developer} game {name}, right?"],
    "verify_attribute": ["You said you liked {name}; do you usually enjoy games rated {esrb}?",
                         "Do you generally like {genres} games such as {name}?"],
    "suggest": ["Do you also like games made by {developer}?",
                "How about something on {platforms} instead?"],
    "request_attribute": ["What kind of {player_perspective} games do you enjoy?",
                          "Which platforms do you usually play {genres} games on?"],
}
VIGGO_VALUES = {
    "name": ["Portal 2", "Half-Life", "Stardew Valley", "Celeste", "Hades", "Doom", "Halo 3", "Minecraft",
             "Tetris", "Braid", "Bastion", "Limbo", "Fez", "Spelunky", "Terraria", "Undertale", "Journey",
             "Inside", "Firewatch", "Cuphead", "Ori", "Okami", "Rez", "Quake", "Myst", "Thief", "Outer Wilds",
             "Dead Cells", "Hollow Knight", "Katamari"],
    "release_year": [str(year) for year in range(1993, 2021)],
    "rating": ["poor", "average", "good", "excellent"],
    "genres": ["puzzle", "platformer", "shooter", "role-playing", "strategy", "simulation", "adventure",
               "racing"],
    "platforms": ["PC", "PlayStation", "Xbox", "Nintendo Switch", "mobile"],
    "developer": ["Valve", "Supergiant", "Nintendo", "Bungie", "Mojang", "id Software", "Playdead",
                  "ConcernedApe", "Team Cherry", "Thekla"],
    "esrb": ["E", "E 10+", "T", "M"],
    "player_perspective": ["first person", "third person", "side view", "bird view"],
}
_SLOT_NAME = re.compile(r"\{(\w+)\}")


def viggo_rows(count: int, seed: int) -> list[dict]:
    """Seeded `input` texts with their `output` calls, e.g. `request_explanation(release_year[2005],
    rating[excellent])`; slots appear in the order the text names them."""
    rng = random.Random(seed)
    acts = sorted(VIGGO_ACTS)
    rows = []
    for _ in range(count):
        act = rng.choice(acts)
        phrasing = rng.choice(VIGGO_ACTS[act])
        slots = list(dict.fromkeys(_SLOT_NAME.findall(phrasing)))
        values = {slot: rng.choice(VIGGO_VALUES[slot]) for slot in slots}
        output = f"{act}({', '.join(f'{slot}[{values[slot]}]' for slot in slots)})"
        rows.append({"input": phrasing.format(**values), "output": output})
    return rows
