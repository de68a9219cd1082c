"""The IR cache's per-parse memo (pipespec/compiler/build.py `_Seen`): a file judged for one spec is
judged again for a spec with another templates home (tests/schemas/test_guard_parse.py has the rest)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipespec.compiler import build
from pipespec.schemas import check

SPEC = """pipeline: {name}
{extends}data:
  sources:
    - {{name: raw, type: local, path: data/raw/, format: csv}}
  publishes: s3://bucket-{name}/curated/
"""


def test_a_template_listed_for_a_spec_in_another_home_is_a_miss(tmp_path, monkeypatch):
    root = tmp_path / "pipelines"
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "base.yaml").write_text("owner: team-a\n")
    (root / "p.yaml").write_text(SPEC.format(name="p", extends="extends: templates/base.yaml\n"))
    (root / "team" / "templates").mkdir(parents=True)  # team/ is its own templates home
    (root / "team" / "r.yaml").write_text(SPEC.format(name="r", extends="owner: team-r\n"))
    cache = tmp_path / "cache"
    assert [p.name for p in build.build_repo(root, cache).pipelines] == ["p", "r"]
    # r's entry lists p's template, with its true digest: allowed for p (same parse, judged first), not for r.
    template = str((root / "templates" / "base.yaml").resolve())
    [entry] = [e for e in cache.glob("*.json") if json.loads(e.read_text())["ir"]["name"] == "r"]
    data = json.loads(entry.read_text())
    data["files"][template] = hashlib.sha256(Path(template).read_bytes()).hexdigest()
    entry.write_text(json.dumps(data))
    checked: list[str] = []
    real = check.check_file
    monkeypatch.setattr(check, "check_file", lambda path, **kw: checked.append(Path(path).name) or real(path, **kw))
    assert [p.name for p in build.build_repo(root, cache).pipelines] == ["p", "r"]
    assert checked == ["r.yaml"]
