"""No secrets in specs: credentials belong in Airflow connections (`conn_id`).

Where the rules come from (maintained rule sets first, our own only for gaps):

- Values, from Yelp's detect-secrets: every regex plugin (AWS key ids, GitHub, GitLab, Slack, Stripe
  live keys, JWTs, private keys, URLs with a password, npm, PyPI, SendGrid, Twilio, ...) and its
  KeywordDetector run as it runs on a YAML file, which finds `password=...` inside a value (libpq
  DSNs); its Base64HighEntropyString entropy limit for long random strings.
- Values, from gitleaks (config/gitleaks.toml), formats detect-secrets has no plugin for:
  github-fine-grained-pat, slack-app-token, gcp-api-key, huggingface-access-token and
  huggingface-organization-api-token, stripe-access-token (test/prod keys), private-key (any
  `BEGIN ... PRIVATE KEY` header).
- Values, pipespec's own, where neither has a rule: `sk-` API keys of any length (OpenAI project
  keys, Anthropic), `Bearer`/`Basic` credentials (the Authorization grammar of gitleaks'
  curl-auth-header, without its curl context), URLs with an empty user (`redis://:pw@`) or a `/` in
  the password, base64 blobs that decode to a credential (a service-account key file), and 40+
  character base64 strings of mixed case and digits above the entropy limit (AWS secret keys).
- Key names: detect-secrets' KeywordDetector denylist, matched word by word so `dbPassword`,
  `x-api-key` and `DB_PASSWORD` are the same name; plus `passphrase`, `credential(s)` and
  `authorization` anywhere, and `token`/`auth`/`…_key` as the last word only: `max_tokens`,
  `token_budget`, `auth_type` and tokenizer settings (`eos_token`) are model settings, not secrets.

Every rule runs once over all of a spec's new strings joined together; only when one matches are the
strings checked one by one, so the common case (no secret) costs one pass per rule per file. Short
strings found clean are remembered: the specs of a repository share most of their keys and values.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import lru_cache
from typing import NamedTuple

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from detect_secrets.plugins.ip_public import IPPublicDetector
from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP, DENYLIST, KeywordDetector

from pipespec.schemas.diagnostics import Diagnostic, Loc, YamlPath, at
from pipespec.schemas.yamlload import Node

_HINT = "store credentials in an Airflow connection and reference it with `conn_id` (or a secrets backend)"

# --------------------------------------------------------------------------- value rules

Match = Callable[[str], object]  # truthy when the rule matches

# detect-secrets plugin → how a message names what it found (others fall back to its secret_type).
_PLUGIN_NAMES = {
    "AWSKeyDetector": "an AWS access key id or secret key", "ArtifactoryDetector": "an Artifactory token",
    "AzureStorageKeyDetector": "an Azure storage key", "BasicAuthDetector": "a URL with a password",
    "CloudantDetector": "Cloudant credentials", "DiscordBotTokenDetector": "a Discord bot token",
    "GitHubTokenDetector": "a GitHub token", "GitLabTokenDetector": "a GitLab token",
    "IbmCloudIamDetector": "an IBM Cloud IAM key", "IbmCosHmacDetector": "an IBM COS HMAC key",
    "JwtTokenDetector": "a JWT", "MailchimpDetector": "a Mailchimp key", "NpmDetector": "an npm token",
    "OpenAIDetector": "an OpenAI API key", "PrivateKeyDetector": "a private key",
    "PypiTokenDetector": "a PyPI token", "SendGridDetector": "a SendGrid key",
    "SlackDetector": "a Slack token or webhook URL", "SoftlayerDetector": "SoftLayer credentials",
    "SquareOAuthDetector": "a Square OAuth secret", "StripeDetector": "a Stripe key",
    "TelegramBotTokenDetector": "a Telegram bot token", "TwilioKeyDetector": "a Twilio key",
}
# An IP address is not a credential.
_SKIPPED_PLUGINS = (IPPublicDetector,)

# gitleaks rules, as written in its config/gitleaks.toml (Go's inline `(?i:...)` spelled for Python).
_GITLEAKS = [
    ("a GitHub token", r"github_pat_\w{82}"),  # github-fine-grained-pat
    ("a Slack token", r"(?i)xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+"),  # slack-app-token
    ("a Google API key", r"\b(AIza[\w-]{35})(?:[`'\"\s;]|\\[nr]|$)"),  # gcp-api-key
    ("a Hugging Face token", r"\b(hf_[a-zA-Z]{34})(?:[`'\"\s;]|\\[nr]|$)"),  # huggingface-access-token
    ("a Hugging Face token", r"\b(api_org_[a-zA-Z]{34})(?:[`'\"\s;]|\\[nr]|$)"),  # huggingface-organization-api-token
    ("a Stripe key", r"\b((?:sk|rk)_(?:test|live|prod)_[a-zA-Z0-9]{10,99})(?:[`'\"\s;]|\\[nr]|$)"),  # stripe-access-token
    ("a private key", r"(?i)-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"),  # private-key (header only)
]

# pipespec's own patterns.
_OWN = [
    ("an API key", r"\bsk-[0-9A-Za-z_-]{20,}"),
    # Bearer tokens hold a digit and a letter, which prose ("bearer authentication") does not.
    ("a bearer token", r"(?i)\bbearer[ \t]+(?=[\w~+/.=-]*\d)(?=[\w~+/.=-]*[a-z])[\w~+/.=-]{16,}"),
    # A password in a URL, also with no user and with `/` in it; `host:8080/path@x` is a port, not a password.
    ("a URL with a password", r"(?i)[a-z][a-z0-9+.-]*://[^\s:@/\[\]]*:(?!\d+(?:[/@?#]|$))[^\s@]+@[^\s@/]"),
]

_BASIC = re.compile(r"(?i)\bbasic[ \t]+([A-Za-z0-9+/]{8,}={0,2})(?![\w+/=])")
_BASE64_TOKEN = re.compile(r"(?<![\w+/=-])[\w+/-]{40,}={0,2}(?![\w+/=-])")
_ENTROPY = Base64HighEntropyString()  # its limit (4.5 bits per character) and entropy measure


def _plugin_match(plugin: RegexBasedDetector) -> Match:
    if type(plugin).analyze_string is RegexBasedDetector.analyze_string:
        # Plain regex plugins: search their denylist (stops at the first match) instead of findall.
        patterns = tuple(plugin.denylist)
        return lambda text: any(pattern.search(text) for pattern in patterns)
    return lambda text: any(True for _ in plugin.analyze_string(text))  # e.g. JWTs, checked for valid JSON


def _regex_match(pattern: str) -> Match:
    return re.compile(pattern).search


def _keyword_match(text: str) -> bool:
    """The regexes detect-secrets runs on YAML/config files (`password=...` inside a value), run only on
    the lines that hold a denylist word's root: they are the slowest rules, and most lines have none."""
    for line in text.split("\n"):
        low = line.lower()
        if any(root in low for root in KEYWORD_ROOTS) and any(
                True for _ in _KEYWORD.analyze_string(line, denylist_regex_to_group=CONFIG_DENYLIST_REGEX_TO_GROUP)):
            return True
    return False


def _basic_credentials(text: str) -> bool:
    """`Basic <base64 of user:password>`."""
    return any(b":" in (_decode(m[1]) or b"") for m in _BASIC.finditer(text))


def _encoded_credential(text: str) -> bool:
    """A base64 blob that decodes to text holding a secret (a service-account key file)."""
    return any((decoded := _decode(m[0])) is not None
               and _describe(decoded.decode("utf-8", "replace"), _VALUE_RULES) is not None
               for m in _BASE64_TOKEN.finditer(text))


def _random_key(text: str) -> bool:
    """40+ base64 characters, mixing case and digits, above detect-secrets' entropy limit."""
    return any(any(c.isdigit() for c in token) and any(c.isupper() for c in token) and any(c.islower() for c in token)
               and _ENTROPY.calculate_shannon_entropy(token) > _ENTROPY.entropy_limit
               for token in _BASE64_TOKEN.findall(text))


def _decode(token: str) -> bytes | None:
    try:
        padded = token + "=" * (-len(token) % 4)
        if "-" in token or "_" in token:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


_KEYWORD = KeywordDetector()
KEYWORD_ROOTS = ("key", "pass", "pwd", "secret", "contrase")  # every word of detect-secrets' DENYLIST holds one
_PLUGINS = sorted((cls for cls in get_mapping_from_secret_type_to_class().values()
                   if issubclass(cls, RegexBasedDetector) and not issubclass(cls, _SKIPPED_PLUGINS)),
                  key=lambda cls: cls.__name__)
_VALUE_RULES: list[tuple[str, Match]] = [
    *((_PLUGIN_NAMES.get(cls.__name__, f"a secret ({cls.secret_type})"), _plugin_match(cls())) for cls in _PLUGINS),
    *((what, _regex_match(pattern)) for what, pattern in _GITLEAKS + _OWN),
    ("a password assignment", _keyword_match),
    ("a Basic authorization credential", _basic_credentials),
]
# Decoded blobs are checked with the rules above (not with these two: no recursion).
_ALL_RULES = [*_VALUE_RULES, ("a base64-encoded credential", _encoded_credential),
              ("a random key such as an AWS secret access key", _random_key)]


def _describe(text: str, rules: list[tuple[str, Match]]) -> str | None:
    return next((what for what, match in rules if match(text)), None)


def looks_like_secret(text: str) -> str | None:
    """What kind of secret `text` holds (`"a GitHub token"`), or None."""
    return _describe(text, _ALL_RULES)


# --------------------------------------------------------------------------- key names

_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|[\W_]+")
# Anywhere in the name: detect-secrets' denylist (`api_?key`, `password`, `secret`, ...) and ours.
_NAME_ANYWHERE = re.compile(r"(?:^|_)(?:%s|passphrase|credentials?|authorization)(?:_|$)" % "|".join(DENYLIST))
# Only as the last word: these words also name settings (`token_budget`, `auth_type`).
_NAME_LAST = re.compile(r"(?:^|_)(?:token|auth|bearer|(?:access|session|signing|encryption|master)_?key)$")
# Tokenizer settings, whose values are vocabulary entries such as `</s>`.
_TOKENIZER_SETTING = re.compile(r"(?:^|_)(?:pad|eos|bos|unk|sep|cls|mask)_token$")


def words(key: str) -> str:
    """`dbPassword`, `DB-PASSWORD` and `db_password` all become `db_password`."""
    return "_".join(part.lower() for part in _WORD_BREAK.split(key) if part)


@lru_cache(maxsize=8192)  # specs share most of their key names
def is_credential_name(key: str) -> bool:
    """Whether a key names a credential (`password`, `api_key`, ...), not a setting about one."""
    name = words(key)
    return bool(_NAME_ANYWHERE.search(name)
                or (_NAME_LAST.search(name) and not _TOKENIZER_SETTING.search(name)))


# --------------------------------------------------------------------------- the walk


class _Text(NamedTuple):
    text: str
    loc: Loc
    path: YamlPath
    is_key: bool


# Short strings already found to hold no secret (bounded: at most _CLEAN_MAX of _CLEAN_LEN characters).
_CLEAN: set[str] = set()
_CLEAN_MAX, _CLEAN_LEN = 100_000, 256


def find_secrets(root: Node) -> list[Diagnostic]:
    """A Diagnostic for every credential-looking key or value in the YAML tree."""
    fresh: list[_Text] = []
    found = list(_walk(root, (), fresh))
    # One pass per rule over all new strings; per-string checks only for the rules that matched.
    blob = "\n".join(t.text for t in fresh)
    rules = [(what, match) for what, match in _ALL_RULES if match(blob)]
    if len(_CLEAN) > _CLEAN_MAX:
        _CLEAN.clear()
    for t in fresh:
        what = _describe(t.text, rules) if rules else None
        if what is None:
            if len(t.text) <= _CLEAN_LEN:
                _CLEAN.add(t.text)
        else:
            subject = "this key" if t.is_key else "this value"
            path = t.path[:-1] if t.is_key else t.path  # a key's path would spell the key
            found.append(at(t.loc, path, f"{subject} looks like {what}; specs must not hold secrets",
                            _HINT, code="secret", redact_source=True))
    return sorted(found, key=lambda d: (d.line, d.col))


def _walk(node: Node, path: YamlPath, fresh: list[_Text]) -> Iterator[Diagnostic]:
    """Findings by key name; the strings not yet known to be clean go to `fresh`."""
    if isinstance(node.value, dict):
        for key, child in node.value.items():
            child_path = path + (key,)
            if is_credential_name(key) and child.value not in (None, "", {}, []) and not isinstance(child.value, bool):
                # The whole value is the secret: report the key, do not look inside.
                yield at(child.key_loc or child.loc, child_path,
                         f"`{key}` looks like a credential; specs must not hold secrets",
                         _HINT, code="secret", redact_source=True)
                continue
            if key not in _CLEAN:
                fresh.append(_Text(key, child.key_loc or child.loc, child_path, True))
            yield from _walk(child, child_path, fresh)
    elif isinstance(node.value, list):
        for index, child in enumerate(node.value):
            yield from _walk(child, path + (index,), fresh)
    elif isinstance(node.value, str) and node.value not in _CLEAN:
        fresh.append(_Text(node.value, node.loc, path, False))


def redact(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics safe to show: a finding whose message, hint or path quotes something that looks like a
    secret (a validator echoing a value, a path through a key that is a token) says so instead."""
    out = []
    for d in diagnostics:
        if d.code != "secret" and any(looks_like_secret(text) for text in (d.message, d.hint, d.path) if text):
            d = replace(d, message="this finding quotes what looks like a secret, so it is not shown",
                        hint=_HINT, path="", redact_source=True)
        out.append(d)
    return out
