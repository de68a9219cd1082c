"""No secrets in specs: credentials belong in Airflow connections (`conn_id`)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .diagnostics import Diagnostic, Path, at
from .yamlload import Node

_SECRET_KEY = re.compile(
    r"(?:^|_)(?:password|passwd|pwd|secret|token|api_?key|private_?key|access_?key|credentials?|auth)(?:$|_)",
    re.I)
_SECRET_VALUES = [
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"), "a Slack token"),
    (re.compile(r"hooks\.slack\.com/services/\S+"), "a Slack webhook URL"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\bgh[pousr]_[0-9A-Za-z]{30,}"), "a GitHub token"),
    (re.compile(r"\bsk-[0-9A-Za-z_-]{20,}"), "an API key"),
    (re.compile(r"\beyJ[0-9A-Za-z_-]{10,}\.[0-9A-Za-z_-]{10,}\.[0-9A-Za-z_-]{10,}"), "a JWT"),
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"), "a URL with a password"),
]
# One pass per string: a named group per kind of secret.
_ANY_SECRET = re.compile("|".join(f"(?P<s{i}>{pattern.pattern})" for i, (pattern, _) in enumerate(_SECRET_VALUES)))
_HINT = "store credentials in an Airflow connection and reference it with `conn_id` (or a secrets backend)"


def find_secrets(root: Node) -> list[Diagnostic]:
    return list(_walk(root, ()))


def _walk(node: Node, path: Path) -> Iterator[Diagnostic]:
    if isinstance(node.value, dict):
        for key, child in node.value.items():
            if _SECRET_KEY.search(key) and child.value not in (None, "", {}, []):
                yield at(child.key_loc or child.loc, path + (key,),
                         f"`{key}` looks like a credential; specs must not hold secrets",
                         _HINT, code="secret", redact_source=True)
            else:
                yield from _walk(child, path + (key,))
    elif isinstance(node.value, list):
        for index, child in enumerate(node.value):
            yield from _walk(child, path + (index,))
    elif isinstance(node.value, str):
        match = _ANY_SECRET.search(node.value)
        if match:
            what = _SECRET_VALUES[int(match.lastgroup[1:])][1]
            yield at(node.loc, path, f"this value looks like {what}; specs must not hold secrets",
                     _HINT, code="secret", redact_source=True)
