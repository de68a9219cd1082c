"""Airflow's rules for Asset URIs, without importing Airflow (`pipespec check` stays light).

Airflow normalises every Asset URI (`airflow.sdk.definitions.asset._sanitize_uri`), then hands it to
the sanitizer a provider registers for its scheme, and refuses names and URIs over 1,500 characters.
A URI any of these refuse raises while the DAG file is parsed, so `check` refuses it first.
tests/schemas/test_guard_limits.py compares `normalize` with Airflow's own `Asset(uri).uri`.
"""

from __future__ import annotations

import urllib.parse

MAX_LENGTH = 1500  # Airflow's `asset.uri` and `asset.name` columns

# Schemes whose provider sanitizer demands more than a scheme and a path, and the default port it adds:
# apache-airflow-providers-amazon (s3, redshift), -postgres, -snowflake.
_NEEDS_NETLOC = {"s3": "a bucket", "postgres": "a host", "postgresql": "a host", "redshift": "a host",
                 "snowflake": "an account"}
_TABLE_SCHEMES = {"postgres", "postgresql", "redshift", "snowflake"}
_DEFAULT_PORT = {"postgres": 5432, "postgresql": 5432, "redshift": 5439}
_EXAMPLE = {"s3": "s3://bucket/prefix/", "postgres": "postgres://host:5432/database/schema/table",
            "redshift": "redshift://host:5439/database/schema/table",
            "snowflake": "snowflake://account/database/schema/table"}


def normalize(uri: str) -> str:
    """The URI Airflow stores for `Asset(uri)`; ValueError where Airflow would refuse it."""
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port  # parsing it is what raises on `host:abc` or a port over 65535
    except ValueError as exc:
        raise ValueError(f"not a valid URI ({exc})") from None
    scheme = parts.scheme.lower()
    if not scheme or scheme.startswith("x-"):  # Airflow leaves these as written
        return uri
    if scheme == "airflow":
        raise ValueError("the `airflow://` scheme is reserved by Airflow")
    if parts.username is not None or parts.password is not None:
        # Airflow drops user info, so the Asset would not be the one written (and it may be a secret).
        raise ValueError("an Asset URI must not carry a user name or password")
    query = urllib.parse.urlencode(sorted(urllib.parse.parse_qsl(parts.query))) if parts.query else ""
    path = parts.path.rstrip("/") or "/"
    netloc = parts.netloc
    example = _EXAMPLE.get("postgres" if scheme == "postgresql" else scheme, "")
    if scheme in _NEEDS_NETLOC and not netloc:
        raise ValueError(f"an Asset URI with `{scheme}://` must name {_NEEDS_NETLOC[scheme]}, e.g. `{example}`")
    if scheme in _TABLE_SCHEMES:
        segments = path.split("/")
        if len(segments) != 4:
            raise ValueError(f"an Asset URI with `{scheme}://` names a database, schema and table, e.g. `{example}`")
        if scheme in _DEFAULT_PORT:
            if port is None:
                netloc = f"{netloc.rstrip(':')}:{_DEFAULT_PORT[scheme]}"
            if scheme != "redshift" and not segments[2]:
                segments[2] = "default"
            path = "/".join(segments)
        if scheme == "postgresql":
            scheme = "postgres"
    return urllib.parse.urlunsplit((scheme, netloc, path, query, ""))


def check(uri: str) -> str:
    """`uri` unchanged when Airflow accepts it as an Asset; ValueError with the reason otherwise."""
    if len(uri) > MAX_LENGTH:
        raise ValueError(f"an Asset URI has at most {MAX_LENGTH} characters (Airflow's limit); this has {len(uri)}")
    normalized = normalize(uri)
    if len(normalized) > MAX_LENGTH:
        raise ValueError(f"an Asset URI has at most {MAX_LENGTH} characters (Airflow's limit); normalised, "
                         f"this has {len(normalized)}")
    return uri
