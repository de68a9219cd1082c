"""What steps read from an Airflow connection besides what its provider hook reads."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit


def base_url(connection: Any, default_scheme: str | None = "http") -> str:
    """The connection's service URL: `host` (a URL, or a bare host with `schema` as the scheme), with
    `port` put into the network location, never after a path (`https://h/v1` + 8000 → `https://h:8000/v1`).
    Without a scheme anywhere and no `default_scheme`, the host is returned as written."""
    host = (connection.host or "").rstrip("/")
    scheme = connection.schema or default_scheme
    if "://" not in host:
        if not scheme:
            return host
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if connection.port and parts.port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:{connection.port}")
    return urlunsplit(parts)
