"""Redact personal data in text columns: emails, card numbers, phone numbers.

Emails and phones are replaced with Arrow's vectorised RE2 kernel
(`replace_substring_regex`). Card numbers need a Luhn checksum, which a regular
expression cannot compute, so: a vectorised RE2 pass finds the rows that contain
a card-shaped digit run (rare in real text), and only those rows go through
Python's `re.sub` with a Luhn check per match. An order number of 13-19 digits
therefore survives unless its checksum happens to be valid (1 in 10).

Order matters: emails first (they may contain digits), cards before phones (a
long digit run is a card, not a phone).
"""

from __future__ import annotations

import re
from typing import Any

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"

EMAIL_PATTERN = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"

# +<country code> then 3-5 groups of digits, optionally with an area code in parentheses:
# +44 20 7946 0958, +1-202-555-0143, +1 (202) 555-0143, +33 1 23 45 67 89, +4915112345678.
PHONE_INTERNATIONAL = r"\+[1-9][0-9]{0,2}[ .\-]?(?:\([0-9]{1,4}\)[ .\-]?)?[0-9]{1,4}(?:[ .\-]?[0-9]{2,4}){2,4}\b"
# North American numbers with separators: (202) 555-0143, 202-555-0143, 202.555.0143, 1-800-555-0199.
# Separators are required, so a bare 10-digit order number is not a phone.
PHONE_US = r"(?:\b1[ .\-])?(?:\([0-9]{3}\)[ .\-]?|\b[0-9]{3}[ .\-])[0-9]{3}[ .\-][0-9]{4}\b"

# Rows that may hold a card (RE2; a superset of CARD_LAYOUT, which RE2 cannot look behind).
CARD_CANDIDATE = r"[0-9]{13}|[0-9]{4}[ \-][0-9]{4}[ \-][0-9]{4}[ \-][0-9]|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4}"
# Card layouts: 13-19 digits in one run; groups of four separated by a space or dash
# (4-4-4-1..4, optionally a fifth group for 17-19 digits); Amex/Diners 4-6-5 and 4-6-4.
# Dates, prices and phone numbers have other shapes, so they are never candidates.
# Not preceded by `+` (that is an international phone number).
CARD_LAYOUT = re.compile(
    r"(?<!\+)\b(?:"
    r"[0-9]{13,19}"
    r"|(?P<head>[0-9]{4}[ \-][0-9]{4}[ \-][0-9]{4}[ \-][0-9]{1,4})(?:[ \-][0-9]{1,3})?"
    r"|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4,5}"
    r")\b",
    re.ASCII,
)


def luhn_valid(digits: str) -> bool:
    """Whether the digits pass the Luhn check, as card numbers do."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _card(match: re.Match) -> str:
    text = match.group(0)
    if luhn_valid(re.sub(r"[ \-]", "", text)):
        return CARD
    head = match.group("head")
    # 4-4-4-4 followed by a short group ("... 1111 123 items"): the card may be the first 16 digits.
    if head is not None and head != text and luhn_valid(re.sub(r"[ \-]", "", head)):
        return CARD + text[len(head):]
    return text


def redact_cards_in(text: str) -> str:
    """The text with Luhn-valid card numbers redacted."""
    return CARD_LAYOUT.sub(_card, text)


# Every email has an `@`, every phone or card number a run of two digits: rows with
# neither (most text) skip the patterns below entirely.
MAYBE_PII = r"@|[0-9]{2}"


def redact(values: Any) -> Any:
    """`values` (an Arrow string array, chunked or not) with emails, cards and phones replaced."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    suspects = pc.fill_null(pc.match_substring_regex(values, MAYBE_PII), False)
    if not pc.any(suspects).as_py():
        return values
    subset = pc.replace_substring_regex(values.filter(suspects), EMAIL_PATTERN, EMAIL)
    subset = _redact_cards(subset, pa, pc)
    subset = pc.replace_substring_regex(subset, PHONE_INTERNATIONAL, PHONE)
    subset = pc.replace_substring_regex(subset, PHONE_US, PHONE)
    return pc.replace_with_mask(values, suspects, subset)


def _redact_cards(values: Any, pa: Any, pc: Any) -> Any:
    suspects = pc.fill_null(pc.match_substring_regex(values, CARD_CANDIDATE), False)
    if not pc.any(suspects).as_py():
        return values
    # The one Python loop: only over rows holding a card-shaped digit run, for the Luhn check.
    redacted = [redact_cards_in(text) for text in values.filter(suspects).to_pylist()]
    return pc.replace_with_mask(values, suspects, pa.array(redacted, type=values.type))
