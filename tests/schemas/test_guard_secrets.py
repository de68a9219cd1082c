"""The secret detector (schemas/secrets.py): every format issue 10 names is caught, the examples and
model settings are not, and no report echoes a detected secret."""

from __future__ import annotations

import base64
import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from pipespec.schemas import reporters as report
from pipespec.schemas.check import check_file
from pipespec.schemas.diagnostics import Diagnostic
from pipespec.schemas.models import PipelineSpec
from detect_secrets.plugins.keyword import DENYLIST

from pipespec.schemas.secrets import KEYWORD_ROOTS, find_secrets, is_credential_name, looks_like_secret, redact, words
from pipespec.schemas.validation_errors import describe, quote
from pipespec.schemas.yamlload import load_text

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
GITHUB_PAT = "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"
SERVICE_ACCOUNT = base64.b64encode(json.dumps({
    "type": "service_account", "project_id": "p-1", "client_email": "x@p-1.iam.gserviceaccount.com",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n",
}).encode()).decode()

SECRETS = {
    # tokens and keys
    "github fine-grained PAT": (GITHUB_PAT, "a GitHub token"),
    "github classic PAT": ("ghp_Zx8Kq2Lm9Np4Rs7Tv1Wy3Ab5Cd6Ef0Gh2Jk4", "a GitHub token"),
    "slack app token": ("xapp-1-A0O0PCC5TE8-3633162628217-cb433e56bdde784538e9555fbad7", "a Slack token"),
    "slack bot token": ("xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "a Slack token"),
    "slack webhook": ("https://hooks.slack.com/services/T0123ABCD/B0123ABCD/AbCdEfGhIjKlMnOpQrStUvWx",
                      "a Slack token or webhook URL"),
    "google api key": ("AIzaSyltn6-r635RH62QtEPez9doL3FLlfnKu9s", "a Google API key"),
    "hugging face token": ("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", "a Hugging Face token"),
    "hugging face org token": ("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", "a Hugging Face token"),
    "stripe live key": ("sk_live_anBNA3y3ZPmeXBZf0dwqxDBW", "a Stripe key"),
    "stripe test key": ("sk_test_anBNA3y3ZPmeXBZf0dw", "a Stripe key"),
    "openai-style key": ("sk-proj-abcdefghijklmnopqrstuvwxyz123456", "an API key"),
    "aws access key id": ("AKIAIOSFODNN7EXAMPLE", "an AWS access key id"),
    "aws secret access key": ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "an AWS secret access key"),
    "bearer token": ("Authorization: Bearer yK7L_._HZ4RSJ9599kUZv1iNcPPjYVKxEvNm", "a bearer token"),
    "basic credentials": ("Basic ZXRsOmh1bnRlcjI=", "a Basic authorization credential"),
    "jwt": ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "a JWT"),
    "private key": ("-----BEGIN RSA PRIVATE KEY-----", "a private key"),
    "encrypted private key": ("-----BEGIN ENCRYPTED PRIVATE KEY-----", "a private key"),
    "service account json, base64": (SERVICE_ACCOUNT, "a base64-encoded credential"),
    # connection strings
    "url with password": ("postgresql://admin:s3cr3tPassw0rd@db.example.com:5432/sales", "a URL with a password"),
    "redis, no user": ("redis://:Rd1s-pa55word@cache.example.com:6379/0", "a URL with a password"),
    "postgres, / in password": ("postgresql://etl:Xy9/kq2Lm/Zp@db.example.com/sales", "a URL with a password"),
    "libpq dsn": ("host=db user=etl password=Tr0ub4dor-3x dbname=sales", "a password assignment"),
}

NOT_SECRETS = [
    "s3://bucket/x/", "s3://someone@bucket/x/", "postgresql://host/db", "postgresql://user@host:5432/db",
    "https://host:8080/path@v2", "https://example.com/a:b@c", "http://[::1]:8080/x@y",
    "mistralai/Mistral-7B-Instruct-v0.1", "anyscale/ray-llm:2.44.0-py311-cu124",
    "ghcr.io/org/trainer@sha256:" + "0f3a" * 16, "123e4567-e89b-12d3-a456-426614174000",
    "Data/Raw/Customers2024/January/DailyFiles/Partitioned", "FeatureStoreV2CustomerChurnDaily2024Q1Snapshot",
    "uses bearer authentication", "Basic classifier", "token budget", "rotate the secret yearly",
    "select body from t where updated_at >= '{{ data_interval_start }}'", "len(text) > 20", "0 3 * * mon-fri",
    "#ml-alerts", "team@example.com", "sk-learn", "ghp_short", "AIza", "hf_home",
]

CREDENTIAL_NAMES = ["dbPassword", "clientSecret", "x-api-key", "Authorization", "passphrase", "sessionToken",
                    "password", "DB_PASSWORD", "apiKey", "APIKey", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "accessKey",
                    "github_token", "private_key", "credentials", "basic_auth", "pwd", "secret", "db_pass"]
SETTING_NAMES = ["max_tokens", "max_new_tokens", "token_budget", "token_limit", "num_tokens", "tokenizer",
                 "eos_token", "pad_token", "auth_type", "author", "passwordless", "secretary", "key", "primary_key",
                 "partition_key", "keyword", "conn_id", "service_account", "hidden_units"]


@pytest.mark.parametrize("value, what", SECRETS.values(), ids=SECRETS.keys())
def test_every_format_is_detected(value: str, what: str):
    found = looks_like_secret(f"see {value} here")
    assert found is not None and what in found


@pytest.mark.parametrize("value", NOT_SECRETS)
def test_ordinary_values_are_not_secrets(value: str):
    assert looks_like_secret(value) is None


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_credential_names_in_any_case_style(name: str):
    assert is_credential_name(name)


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_settings_that_mention_tokens_or_keys_are_not_credentials(name: str):
    assert not is_credential_name(name)


def test_keyword_prefilter_covers_the_whole_denylist():
    """The keyword rule only runs on lines holding a root; a new denylist word without one would be skipped."""
    assert all(any(root in word for root in KEYWORD_ROOTS) for word in DENYLIST)


def test_words_splits_every_case_style():
    assert {words(k) for k in ("dbPassword", "db-password", "DB_PASSWORD", "db.password")} == {"db_password"}
    assert words("APIKey") == "api_key"


def _field_names(model: type[BaseModel], seen: set[type]) -> set[str]:
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for info in model.model_fields.values():
        stack = [info.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                names |= _field_names(tp, seen)
            stack.extend(typing.get_args(tp))
    return names


def test_no_spec_key_is_taken_for_a_credential():
    names = _field_names(PipelineSpec, set())
    assert {"conn_id", "service_account", "key", "params"} <= names  # the walk reached nested models
    assert sorted(n for n in names if is_credential_name(n)) == []


def _examples() -> list[Path]:
    files = [*ROOT.glob("pipelines/*.yaml"), *ROOT.glob("pipelines/templates/*.yaml"),
             *ROOT.glob("tests/cases/valid/*.yaml"), *ROOT.glob("tests/cases/valid/templates/*.yaml")]
    assert len(files) >= 10
    return sorted(files)


@pytest.mark.parametrize("path", _examples(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_false_positive_on_examples(path: Path):
    assert [d for d in check_file(path).diagnostics if d.code == "secret"] == []


def test_max_tokens_in_params_is_fine_and_a_token_beside_it_is_not():
    line = "    params: {max_tokens: 20000, eos_token: '</s>', hfToken: hf_secret_value}"
    found = find_secrets(load_text(f"train:\n  model:\n{line}\n", "x.yaml"))
    assert [(d.line, d.col, d.message.split(";")[0]) for d in found] == [
        (3, line.index("hfToken") + 1, "`hfToken` looks like a credential")]


def test_a_key_that_is_a_secret_is_not_spelled_in_the_path():
    root = load_text(f"env:\n  {GITHUB_PAT}: x\n", "x.yaml")
    [d] = find_secrets(root)
    assert d.message.startswith("this key looks like a GitHub token") and d.path == "env"
    for reporter in report.REPORTERS.values():
        assert GITHUB_PAT not in reporter([d], 1)


def test_strings_are_checked_one_by_one_only_after_a_match():
    """A pattern that only matches across two strings (joined for the one-pass check) is no finding."""
    root = load_text("a: 'postgresql://etl:pw'\nb: '@db/sales'\n", "x.yaml")
    assert find_secrets(root) == []


def test_reports_never_quote_a_finding_that_echoes_a_secret(tmp_path: Path):
    # A finding from any check (a validator, a policy rule) whose message quotes a secret-looking value.
    spec = tmp_path / "spec.yaml"
    spec.write_text("x: 1\n")
    leaky = Diagnostic(str(spec), 1, 1, f"env.{GITHUB_PAT}", f"`{GITHUB_PAT[:37]}...` is not allowed", code="policy")
    clean = Diagnostic(str(spec), 1, 1, "x", "expected a string", code="type")
    assert redact([clean]) == [clean]
    for reporter in report.REPORTERS.values():
        out = reporter([leaky, clean], 1)
        assert GITHUB_PAT[:20] not in out and "not shown" in out
    assert " 1 | x: 1" not in report.text([leaky, clean], 1)  # the line is not quoted either


def test_validation_messages_do_not_quote_secret_looking_values():
    assert GITHUB_PAT[:20] not in quote(GITHUB_PAT)
    assert GITHUB_PAT[:20] not in describe(GITHUB_PAT)
    assert quote("csvv") == "`csvv`"


def test_every_diagnostic_on_a_secret_line_loses_its_excerpt(tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("a: {format: csvv, password: hunter2-xyz}\nb: fine_line_marker\n")
    secret = Diagnostic(str(spec), 1, 19, "a.password", "`password` looks like a credential",
                        code="secret", redact_source=True)
    other = Diagnostic(str(spec), 1, 13, "a.format", "`csvv` is not allowed here")
    elsewhere = Diagnostic(str(spec), 2, 4, "b", "something else")
    out = report.text([other, secret, elsewhere], 1)
    assert "hunter2" not in out
    assert "fine_line_marker" in out  # other lines are still quoted


def test_check_file_never_returns_a_finding_that_echoes_a_secret(tmp_path, monkeypatch):
    """Consumers that bypass the reporters (the loader's placeholder DAG docs) get redacted findings too."""
    import pipespec.schemas.check as check_module

    token = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"
    monkeypatch.setattr(check_module, "run_checks",
                        lambda spec: [(("pipeline",), f"odd value {token}", f"try {token}")])
    spec = tmp_path / "p.yaml"
    spec.write_text("pipeline: p\ninference: null\ndata:\n  sources: [{name: a, type: local, path: a.csv, "
                    "format: csv}]\n  publishes: s3://p-bucket/x/\n")
    diagnostics = check_module.check_file(spec).diagnostics
    assert diagnostics and all(token not in f"{d.message} {d.hint} {d.path}" for d in diagnostics)
