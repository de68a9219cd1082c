"""`pipespec graph` (Mermaid/DOT of the IR) and `pipespec diff` (IR changes between git refs)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipespec.schemas.check import check_file
from pipespec.compiler.compile import compile_checked
from pipespec.compiler.diff import GitRefError, diff_pipelines, diff_refs, load_at_ref
from pipespec.compiler.graph import describe_schedule, to_dot, to_mermaid
from pipespec.compiler.ir import Dag, Mapping, Pipeline, Retry, Schedule, Task

from tests.support.paths import ROOT as REPO  # noqa: E402
PIPELINES = REPO / "pipelines"
SPECS = sorted(PIPELINES.glob("*.yaml"))


def compile_file(path: Path) -> Pipeline:
    checked = check_file(path)
    assert checked.ok and checked.spec is not None, checked.diagnostics
    return compile_checked(checked)


def edited_copy(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    """A copy of pipelines/ under tmp_path with `name` edited; templates come along for `extends`."""
    root = tmp_path / "pipelines"
    shutil.copytree(PIPELINES, root, dirs_exist_ok=True)
    spec = root / name
    text = spec.read_text()
    for old, new in edits:
        assert old in text, f"edit target {old!r} not in {name}"
        text = text.replace(old, new, 1)
    spec.write_text(text)
    return spec


def weird_pipeline() -> Pipeline:
    """Names Mermaid and DOT would misread: reserved words, quotes, '#', '<', ids that collide once sanitised."""
    retry = Retry(1, 60, False, None)
    extract = Task("end", "data.extract", mapping=Mapping("source", items=({"name": 'a"b#c<d>'}, {"name": "o|x"})),
                   outlets=("s3://a/b", "s3://a_b", 's3://we"ird/#1'))
    gate = Task("o1", "data.gate", upstream=("end",), kind="branch", branches={'go "now"': "x1"})
    after = Task("x1", "data.publish", upstream=("o1",), trigger_rule="all_done")
    first = Dag("end", Schedule("assets_or_cron", "0 * * * *", {"all": ["s3://a/b", "s3://a b"]}), "", "", "", (),
                retry, (), (extract, gate, after))
    second = Dag("graph", Schedule("none"), "", "", "", (), retry, (), (Task("node", "x.y"),))
    return Pipeline('p"q', "f.yaml", "0", (first, second))


# --- Mermaid ----------------------------------------------------------------------

ID = r"[A-Za-z][A-Za-z0-9_]*"
QUOTED = r'"[^"]*"'  # labels are quoted and never hold a raw quote
NODE = re.compile(rf'^\s*({ID})(?:\[{QUOTED}\]|\{{{QUOTED}\}}|\{{\{{{QUOTED}\}}\}}|\[\({QUOTED}\)\])$')
EDGE = re.compile(rf'^\s*({ID}) (?:-->|-\.->)(?:\|{QUOTED}\|)? ({ID})$')
SUBGRAPH = re.compile(rf'^\s*subgraph ({ID}) \[{QUOTED}\]$')
MERMAID_WORDS = {"end", "graph", "subgraph", "flowchart", "direction", "style", "class", "click", "default"}


def check_mermaid(text: str) -> tuple[set[str], set[str]]:
    """A small grammar of what to_mermaid may emit; returns (node ids, subgraph ids)."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes, subgraphs, depth, endpoints = set(), set(), 0, []
    for line in lines[1:]:
        if match := SUBGRAPH.match(line):
            subgraphs.add(match[1])
            depth += 1
        elif line.strip() == "end":
            depth -= 1
            assert depth >= 0, "`end` without `subgraph`"
        elif line.strip() == "direction LR":
            assert depth == 1
        elif match := NODE.match(line):
            assert match[1] not in nodes, f"node {match[1]} declared twice"
            nodes.add(match[1])
        elif match := EDGE.match(line):
            endpoints += [match[1], match[2]]
        else:
            raise AssertionError(f"line is not valid for to_mermaid's grammar: {line!r}")
    assert depth == 0, "unbalanced subgraph/end"
    ids = nodes | subgraphs
    assert not {i.lower() for i in ids} & MERMAID_WORDS
    assert len(ids) == len(nodes) + len(subgraphs), "a node and a subgraph share an id"
    assert set(endpoints) <= ids, f"edges to undeclared ids: {set(endpoints) - ids}"
    return nodes, subgraphs


def test_mermaid_shows_dags_mapping_branches_and_asset_wiring() -> None:
    text = to_mermaid(compile_file(PIPELINES / "user_feedback.yaml"))
    nodes, subgraphs = check_mermaid(text)
    assert subgraphs == {"user_feedback__data", "user_feedback__train", "user_feedback__inference"}
    assert '  subgraph user_feedback__data ["user_feedback__data · cron @daily"]' in text
    assert '  subgraph user_feedback__train ["user_feedback__train · assets: s3://feedback/curated/"]' in text
    assert ('  subgraph user_feedback__inference ["user_feedback__inference · assets model://user_feedback '
            'or cron @hourly"]') in text
    lines = text.splitlines()
    assert ('    user_feedback__data__extract["extract<br/>[mapped over sources: zendesk, slack]<br/>'
            'then dedupe → drop_empty → normalize_text → redact_pii"]') in lines
    assert '    user_feedback__inference__predict["predict<br/>[mapped over plan_shards]"]' in lines
    # Branches are decision shapes; their edges carry the decision.
    assert '    user_feedback__data__measure{"measure"}' in lines
    assert '  user_feedback__data__measure -->|"pass"| user_feedback__data__publish' in lines
    assert '  user_feedback__data__measure -->|"blocked"| user_feedback__data__notify_gate_blocked' in lines
    assert '  user_feedback__train__decide -->|"promote"| user_feedback__train__shadow' in lines
    assert '  user_feedback__train__decide -->|"reject"| user_feedback__train__reject' in lines
    assert '    user_feedback__train__rollback["rollback<br/>⟂ one_failed"]' in lines
    # The data DAG publishes the Asset that schedules the train DAG.
    assert '  asset_s3_feedback_curated[("s3://feedback/curated/")]' in lines
    assert "  user_feedback__data__publish -.-> asset_s3_feedback_curated" in lines
    assert "  asset_s3_feedback_curated -.-> user_feedback__train" in lines
    assert "  user_feedback__train__promote -.-> asset_model_user_feedback" in lines
    # Plain upstream edges are solid and unlabelled.
    assert "  user_feedback__train__shadow --> user_feedback__train__rollback" in lines


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_mermaid_grammar_for_every_spec(spec: Path) -> None:
    pipeline = compile_file(spec)
    text = to_mermaid(pipeline)
    nodes, subgraphs = check_mermaid(text)
    assert subgraphs == {d.dag_id for d in pipeline.dags}
    assert len([n for n in nodes if not n.startswith("asset_")]) == sum(len(d.tasks) for d in pipeline.dags)
    assert to_mermaid(compile_file(spec)) == text  # deterministic


def test_mermaid_schedule_expressions_and_kinds() -> None:
    genai = to_mermaid(compile_file(PIPELINES / "genai_content.yaml"))
    title = ("genai_content__train · assets any(all(s3://content/curated/, s3://content/style-guide/), "
             "s3://feedback/curated/) or cron @weekly")
    assert f'  subgraph genai_content__train ["{title}"]' in genai
    # Every Asset in the condition feeds the DAG, including one published by another pipeline.
    for asset in ("asset_s3_content_curated", "asset_s3_content_style_guide", "asset_s3_feedback_curated"):
        assert f"  {asset} -.-> genai_content__train" in genai.splitlines()
    xray = to_mermaid(compile_file(PIPELINES / "xray_classifier.yaml"))
    assert '    xray_classifier__train__train["train<br/>(kubernetes_pod)"]' in xray
    assert '    xray_classifier__train__approval{{"approval"}}' in xray


def test_mermaid_escapes_hostile_names() -> None:
    text = to_mermaid(weird_pipeline())
    nodes, subgraphs = check_mermaid(text)
    assert "end" not in subgraphs | nodes and "graph" not in subgraphs
    # Ids that collide after sanitising stay distinct.
    assert {"asset_s3_a_b", "asset_s3_a_b_2"} <= nodes
    assert '#quot;' in text and "#35;" in text and "#lt;" in text
    assert '-->|"go #quot;now#quot;"|' in text
    assert "[mapped over sources: a#quot;b#35;c#lt;d#gt;, o|x]" in text
    assert "⟂ all_done" in text and '["graph · manual"]' in text


def test_describe_schedule() -> None:
    assert describe_schedule(Schedule("none")) == "manual"
    assert describe_schedule(Schedule("cron", "@daily")) == "cron @daily"
    assert describe_schedule(Schedule("assets", assets={"all": ["s3://a", {"any": ["s3://b", "s3://c"]}]})) == \
        "assets: all(s3://a, any(s3://b, s3://c))"
    assert describe_schedule(Schedule("assets_or_cron", "@weekly", "s3://x")) == "assets s3://x or cron @weekly"
    assert describe_schedule(Schedule("every", every_s=7 * 86400 + 5400)) == "every 7d1h30m"


# --- DOT --------------------------------------------------------------------------

def check_dot(text: str) -> None:
    """Balanced braces outside strings; every edge endpoint and lhead is declared."""
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    depth = 0
    for char in unquoted:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0, "unbalanced braces"
    assert unquoted.startswith('digraph "" {') and unquoted.rstrip().endswith("}")
    nodes = re.findall(rf"^\s*({ID}) \[label=", unquoted, re.M)
    clusters = set(re.findall(rf"^\s*subgraph (cluster_{ID}) \{{", unquoted, re.M))
    assert len(nodes) == len(set(nodes))
    edges = re.findall(rf"^\s*({ID}) -> ({ID})(?: \[([^\]]*)\])?;$", unquoted, re.M)
    assert edges
    for src, dst, attrs in edges:
        assert {src, dst} <= set(nodes), (src, dst)
        lhead = re.search(rf"lhead=({ID})", attrs)
        assert lhead is None or lhead[1] in clusters


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_dot_structure_for_every_spec(spec: Path) -> None:
    check_dot(to_dot(compile_file(spec)))


def test_dot_content() -> None:
    text = to_dot(compile_file(PIPELINES / "user_feedback.yaml"))
    lines = text.splitlines()
    assert '    label="user_feedback__train · assets: s3://feedback/curated/";' in lines
    assert ('    user_feedback__data__extract [label="extract\\n[mapped over sources: zendesk, slack]\\nthen dedupe → '
            'drop_empty → normalize_text → redact_pii", shape=box, style=rounded];') in lines
    assert '    user_feedback__data__measure [label="measure", shape=diamond];' in lines
    assert '  user_feedback__data__measure -> user_feedback__data__publish [label="pass"];' in lines
    assert "  user_feedback__data__publish -> asset_s3_feedback_curated [style=dashed];" in lines
    assert ("  asset_s3_feedback_curated -> user_feedback__train__train "
            "[style=dashed, lhead=cluster_user_feedback__train];") in lines
    check_dot(to_dot(weird_pipeline()))
    assert 'label="go \\"now\\""' in to_dot(weird_pipeline())


# --- diff -------------------------------------------------------------------------

def test_diff_reports_exact_lines(tmp_path: Path) -> None:
    old = compile_file(PIPELINES / "user_feedback.yaml")
    new = compile_file(edited_copy(
        tmp_path, "user_feedback.yaml",
        ("tags+: [feedback]", "tags+: [feedback]\nretries: {count: 5}"),
        ("  publishes: s3://feedback/curated/\n",
         "  publishes: s3://feedback/curated/\n  threshold: {min_records: 200, min_new_records: 500}\n"
         "  transforms+:\n    - {drop_empty: [text]}\n"),
        ('or_cron: "@hourly"}', 'or_cron: "@daily"}'),
        ("shard_size: 500", "shard_size: 800"),
        ("floor: 0.6", "floor: 0.7"),
    ))
    assert diff_pipelines({"user_feedback": old}, {"user_feedback": new}) == [
        "user_feedback__data:",
        "  retries: count 3 → 5",
        "  extract: transforms [{dedupe: {key: [text]}}, {drop_empty: [text, label]}, {normalize_text: {columns: "
        "[text], lowercase: true, strip: true, collapse_whitespace: true}}, {redact_pii: [text]}] → "
        "[{dedupe: {key: [text]}}, {drop_empty: [text, label]}, {normalize_text: {columns: [text], lowercase: true, "
        "strip: true, collapse_whitespace: true}}, {redact_pii: [text]}, {drop_empty: [text]}]",
        "  measure: threshold.min_new_records 100 → 500",
        "user_feedback__train:",
        "  retries: count 3 → 5",
        "  decide: floor 0.6 → 0.7",
        "user_feedback__inference:",
        "  schedule: assets model://user_feedback or cron @hourly → assets model://user_feedback or cron @daily",
        "  retries: count 3 → 5",
        "  plan_shards: shard_size 500 → 800",
    ]


def test_diff_of_an_unchanged_copy_is_empty(tmp_path: Path) -> None:
    # spec_dir, spec_file and spec_hash all differ between the two; none is a change to the DAGs.
    old = compile_file(PIPELINES / "user_feedback.yaml")
    new = compile_file(edited_copy(tmp_path, "user_feedback.yaml"))
    assert old.dags[0].tasks[0].params["spec_dir"] != new.dags[0].tasks[0].params["spec_dir"]
    assert diff_pipelines({"user_feedback": old}, {"user_feedback": new}) == []


def test_diff_groups_a_section_retry_override(tmp_path: Path) -> None:
    old = compile_file(PIPELINES / "user_feedback.yaml")
    override = "tags+: [feedback]\nretries: {overrides: {data: {count: 1}}}"
    new = compile_file(edited_copy(tmp_path, "user_feedback.yaml", ("tags+: [feedback]", override)))
    # The DAG default is unchanged, so no `retries:` line; the tasks that follow the override share one line,
    # and notify_gate_blocked (on the DAG default) is not named.
    assert diff_pipelines({"p": old}, {"p": new}) == [
        "user_feedback__data:",
        "  extract, measure, publish: retries count 3 → 1",
    ]


def test_diff_task_level_changes() -> None:
    old = compile_file(PIPELINES / "user_feedback.yaml")
    data, train, inference = old.dags

    def edit(dag: Dag, task_id: str, **changes) -> Dag:
        tasks = tuple(dataclasses.replace(t, **changes) if t.task_id == task_id else t for t in dag.tasks)
        return dataclasses.replace(dag, tasks=tasks)

    extract = data.task("extract")
    zendesk, slack = extract.mapping.items
    new_data = edit(data, "extract", mapping=dataclasses.replace(
        extract.mapping, items=({**zendesk, "path": "data/zd/"}, slack, {"name": "email"})))
    new_data = edit(new_data, "publish", outlets=("s3://feedback/v2/",))
    new_train = edit(train, "rollback", trigger_rule="all_done")
    new_train = edit(new_train, "decide", branches={"promote": "promote", "reject": "reject"})
    # notify_* tasks have no retry of their own (None: the DAG's); giving one is a change.
    new_train = edit(new_train, "notify_rejected", retry=Retry(1, 120, True, 1800))
    new = dataclasses.replace(old, dags=(new_data, new_train, inference))
    assert diff_pipelines({"p": old}, {"p": new}) == [
        "user_feedback__data:",
        "  extract: mapped over sources: zendesk, slack → mapped over sources: zendesk, slack, email",
        "  extract: sources.zendesk.path data/feedback/zendesk/ → data/zd/",
        "  publish: outlets s3://feedback/curated/ → s3://feedback/v2/",
        "user_feedback__train:",
        "  decide: branch promote: shadow → promote",
        "  rollback: trigger rule one_failed → all_done",
        "  notify_rejected: retries count 3 → 1",
    ]


def test_diff_dags_added_and_removed(tmp_path: Path) -> None:
    full = compile_file(PIPELINES / "user_feedback.yaml")
    block = ('inference:\n  schedule: {assets: model://user_feedback, or_cron: "@hourly"}   # a new champion, '
             'or every hour\n  input: s3://feedback/incoming/\n  format: jsonl\n  output: s3://feedback/predictions/\n'
             '  shard_size: 500\n')
    shorter = compile_file(edited_copy(tmp_path, "user_feedback.yaml", (block, "inference: null\n")))
    assert [d.dag_id for d in shorter.dags] == ["user_feedback__data", "user_feedback__train"]
    assert diff_pipelines({"user_feedback": shorter}, {"user_feedback": full}) == [
        "user_feedback__inference: DAG added (assets model://user_feedback or cron @hourly; "
        "tasks: load_champion, plan_shards, predict, publish_predictions)"]
    assert diff_pipelines({"user_feedback": full}, {"user_feedback": shorter}) == [
        "user_feedback__inference: DAG removed"]
    assert diff_pipelines({}, {}) == []


# --- git refs ---------------------------------------------------------------------

def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", "-C", str(repo), *identity, *args], stdin=subprocess.DEVNULL, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two commits: pipelines/ as in this repo, then a raised threshold and a broken churn spec."""
    root = tmp_path_factory.mktemp("repo")
    git(root, "init", "-q")
    shutil.copytree(PIPELINES, root / "pipelines")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    spec = root / "pipelines" / "user_feedback.yaml"
    spec.write_text(spec.read_text().replace(
        "  publishes: s3://feedback/curated/\n",
        "  publishes: s3://feedback/curated/\n  threshold: {min_records: 200, min_new_records: 500}\n"))
    churn = root / "pipelines" / "churn.yaml"
    churn.write_text(churn.read_text() + "\nnot_a_key: 1\n")
    git(root, "commit", "-qam", "raise the threshold")
    return root


def test_diff_between_commits(repo: Path) -> None:
    old, new = load_at_ref(repo, "HEAD~1", ["pipelines"]), load_at_ref(repo, "HEAD", ["pipelines"])
    assert sorted(old) == ["churn", "feedback_llm_finetune", "genai_content", "genai_knowledge_base", "user_feedback",
                           "weekly_retrain", "xray_classifier", "xray_own_code"]
    assert old.errors == {}
    assert new.errors == {"churn": "churn: spec has errors at HEAD (1 diagnostic)"}
    assert "churn" not in new
    assert diff_refs(repo, "HEAD~1", "HEAD") == [
        "churn: spec has errors at HEAD (1 diagnostic)",
        # churn is left out rather than reported as three removed DAGs
        "user_feedback__data:",
        "  measure: threshold.min_new_records 100 → 500",
    ]


def test_diff_against_the_working_tree(repo: Path) -> None:
    assert diff_refs(repo, "HEAD") == ["churn: spec has errors at HEAD (1 diagnostic)",
                                       "churn: spec has errors in the working tree (1 diagnostic)",
                                       "no changes to compiled DAGs"]
    spec = repo / "pipelines" / "weekly_retrain.yaml"
    original = spec.read_text()
    try:
        spec.write_text(original.replace("schedule: 7d", 'schedule: "@daily"', 1))
        assert "  schedule: every 7d → cron @daily" in diff_refs(repo, "HEAD")
    finally:
        spec.write_text(original)


def test_bad_refs_are_clear_errors(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(GitRefError, match="unknown git ref `no-such-branch`"):
        load_at_ref(repo, "no-such-branch", ["pipelines"])
    with pytest.raises(GitRefError, match="unknown git ref `--output=x`"):
        load_at_ref(repo, "--output=x", ["pipelines"])
    with pytest.raises(GitRefError, match="not a git repository"):
        load_at_ref(tmp_path, "HEAD", ["pipelines"])
    # A ref where pipelines/ does not exist yet is empty, not an error.
    empty = git(repo, "commit-tree", git(repo, "mktree"), "-m", "empty")
    snapshot = load_at_ref(repo, empty, ["pipelines"])
    assert dict(snapshot) == {} and snapshot.errors == {}
