"""The `pipespec` command. Subcommands import only what they need, so
`pipespec check` never imports Airflow."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

EXAMPLES = """\
examples:
  pipespec check                          check every spec under pipelines/
  pipespec check pipelines/x.yaml --format github
  pipespec check --policy /etc/pipespec/policy.yaml
  pipespec init my-pipelines             a team repository of specs that works at once
  pipespec templates                      the shipped templates, name@version and what each is for
  pipespec plugins                        installed plugins: name, kind, distribution, version
  pipespec check --plugins=declared       CI without the platform's plugin packages (listed as warnings)
  pipespec new churn_eu --from pipespec:tabular@1
  pipespec new churn_eu --from templates/tabular.yaml
  pipespec schema                         regenerate schemas/pipeline.schema.json
  pipespec reference                      regenerate docs/spec-reference.md
  pipespec graph pipelines/x.yaml --format dot
  pipespec diff origin/main               compiled-DAG changes since main
  pipespec export --to dag-factory pipelines/x.yaml -o dags/x.dagfactory.yml
  pipespec run pipelines/user_feedback.yaml --until train
  pipespec up --port 8080                 Airflow UI on this project's DAGs
"""


def main(argv: list[str] | None = None) -> int:
    """Run the `pipespec` command; its exit code."""
    parser = argparse.ArgumentParser(prog="pipespec", description="Production ML pipelines on Airflow, from YAML.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate specs and templates (no Airflow needed)")
    check.add_argument("paths", nargs="*", type=Path, default=[Path("pipelines")])
    check.add_argument("--format", choices=["text", "json", "github"], default="text")
    check.add_argument("--policy", type=Path, metavar="FILE",
                       help="the platform policy file (default: $PIPESPEC_POLICY; without one, built-in safe rules)")
    check.add_argument("--plugins", choices=["installed", "declared"], default=None,
                       help="`installed` (default; $PIPESPEC_PLUGINS): every plugin a spec names must be installed. "
                            "`declared`: names the policy's `plugins:` declares may be missing; their params go "
                            "unchecked and each is listed as a warning")

    plugin_list = commands.add_parser("plugins", help="list installed plugins: name, kind, distribution, version")
    plugin_list.add_argument("--format", choices=["text", "json"], default="text")

    schema = commands.add_parser("schema", help="write the JSON Schema of a spec")
    schema.add_argument("--output", type=Path, default=Path("schemas/pipeline.schema.json"))
    schema.add_argument("--check", action="store_true", help="fail if the file on disk is stale")

    reference = commands.add_parser("reference", help="write the spec reference (Markdown) generated from the models")
    reference.add_argument("--output", type=Path, default=Path("docs/spec-reference.md"))
    reference.add_argument("--check", action="store_true", help="fail if the file on disk is stale")

    new = commands.add_parser("new", help="start a spec from a template")
    new.add_argument("name")
    new.add_argument("--from", dest="template", required=True,
                     help="a shipped template, e.g. pipespec:tabular@1 (a bare name pins the latest), "
                          "or a team template path, e.g. templates/text_classifier.yaml")
    new.add_argument("--dir", type=Path, default=Path("pipelines"))

    init = commands.add_parser("init", help="create a team repository of specs (CI, pre-commit, editor, DAG file)")
    init.add_argument("directory", nargs="?", type=Path, default=Path("."), metavar="DIR")
    init.add_argument("--force", action="store_true", help="overwrite files that exist (default: keep them)")

    listing = commands.add_parser("templates", help="list the shipped templates (and the team's, under --dir)")
    listing.add_argument("--dir", type=Path, default=Path("pipelines"), help="specs folder (default: pipelines)")

    graph = commands.add_parser("graph", help="draw a spec's DAGs and their Asset wiring (Mermaid or DOT)")
    graph.add_argument("spec", type=Path)
    graph.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")

    diff = commands.add_parser("diff", help="what a change does to the compiled DAGs between two git refs")
    diff.add_argument("base", metavar="BASE_REF")
    diff.add_argument("head", metavar="HEAD_REF", nargs="?", help="default: the working tree")
    diff.add_argument("--path", dest="paths", action="append", metavar="DIR",
                      help="spec directory relative to the repository root (default: pipelines; repeatable)")

    export = commands.add_parser("export", help="write a spec's DAGs as another tool's config (no Airflow needed)")
    export.add_argument("--to", required=True, choices=["dag-factory"], help="target format")
    export.add_argument("spec", type=Path)
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")

    run = commands.add_parser("run", help="run a pipeline's DAGs locally in order (dag.test, SQLite), following Assets")
    run.add_argument("spec", type=Path)
    run.add_argument("--until", choices=["data", "train", "inference"], default="inference")

    up = commands.add_parser("up", help="start Airflow (standalone) on this project; Ctrl-C stops it")
    up.add_argument("--port", type=int, default=8080)

    args = parser.parse_args(argv)
    handler = {"check": _check, "plugins": _plugins, "schema": _schema, "reference": _reference, "new": _new, "init": _init,
               "templates": _templates, "graph": _graph,
               "diff": _diff, "export": _export, "run": _run, "up": _up}[args.command]
    return handler(args)


def _check(args: argparse.Namespace) -> int:
    from pipespec.schemas import reporters as report
    from pipespec.schemas.check import check_file, discover, sort_key
    from pipespec.schemas.repo import check_repo

    files, problems = discover(args.paths)
    roots = _specs_roots(args.paths, files)
    policy, policy_problems = _policy(args.policy, args.paths + sorted(set(roots.values())))
    # A path that does not exist or a broken policy is a usage error: nothing is checked. A refused
    # spec (a symlink out of the tree) is a finding like any other; the rest are still checked.
    usage = [d for d in problems if d.code == "usage"] + policy_problems
    if usage:
        print(report.REPORTERS[args.format](usage, 0), file=sys.stderr)
        return 2
    # Every checked tree stays alive until the repo checks: full GC passes would rescan them all
    # (about a third of the time on 1,000 specs). A short-lived command needs no cycle collection.
    gc.disable()
    plugin_problems = _use_plugins(args.plugins, policy)
    checked = [check_file(f, policy, roots[f]) for f in files]
    _mark_unchecked_plugins(checked)
    # A broken template is reported once, not once per spec that extends it.
    found = dict.fromkeys(problems + plugin_problems + [d for c in checked for d in c.diagnostics]
                          + check_repo(checked, _context(args.paths, files, roots, checked)))
    diagnostics = sorted(found, key=sort_key)
    print(report.REPORTERS[args.format](diagnostics, len(files)))
    return 1 if any(d.severity == "error" for d in diagnostics) else 0


def _use_plugins(mode, policy) -> list:
    """Set the plugin mode and the policy's declarations for this check; plugin packages that could not
    be loaded, as errors (a broken package must fail CI, not quietly narrow what specs may name)."""
    from pipespec.schemas import plugins
    from pipespec.schemas.diagnostics import Diagnostic

    plugins.set_mode(mode)
    plugins.use_declarations(policy.declared_plugins())
    return [Diagnostic("<plugins>", 1, 1, "", problem, "fix or uninstall the package", code="plugin")
            for problem in plugins.registry().problems]


def _mark_unchecked_plugins(checked: list) -> None:
    """In declared mode, each plugin name accepted without its package is a warning on its spec: the
    check says what it could not verify, never passes it silently."""
    from dataclasses import replace

    from pipespec.schemas import plugins

    for result in checked:
        spec = result.spec
        if spec is None or not plugins.unverified:
            continue
        for path, kind, name in plugins.named(spec):
            if plugins.is_unverified(kind, name):
                dist = plugins.declarations().get(name, "?")
                result.diagnostics.append(replace(result.at_path(
                    path, f"`{name}` was not checked: its plugin package `{dist}` is not installed here",
                    "its params are unchecked; a check with the package installed verifies them",
                    code="plugin-unchecked"), severity="warning"))


def _plugins(args: argparse.Namespace) -> int:
    import json

    from pipespec.schemas import plugins

    rows = [{"name": i.plugin.name, "kind": i.plugin.kind, "distribution": i.distribution, "version": i.version,
             "description": i.plugin.description} for i in plugins.listing()]
    problems = plugins.registry().problems
    if args.format == "json":
        print(json.dumps({"plugins": rows, "problems": problems}, indent=2))
    else:
        widths = [max([len(h)] + [len(r[h]) for r in rows]) for h in ("name", "kind", "distribution", "version")]
        for row in [{"name": "NAME", "kind": "KIND", "distribution": "DISTRIBUTION", "version": "VERSION"}, *rows]:
            print("  ".join(row[h].ljust(w) for h, w in zip(("name", "kind", "distribution", "version"), widths)).rstrip())
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _specs_roots(paths: list[Path], files: list[Path]) -> dict[Path, Path]:
    """Each file's specs folder: a directory given is the one of what it holds; a file named on its own
    lies in the specs folder around it (pipespec.schemas.check.specs_root)."""
    from pipespec.schemas.check import specs_root

    given = [p.resolve() for p in paths if p.is_dir()]
    return {f: next((d for d in given if f.resolve().is_relative_to(d)), None) or specs_root(f) for f in files}


def _context(paths: list[Path], files: list[Path], roots: dict[Path, Path], checked: list) -> list:
    """The other specs of the specs folders around files named on their own (the pre-commit hook passes
    only the changed ones): their names and Assets take part in the repository rules, unreported."""
    from pipespec.schemas.context import context_facts

    given = {p.resolve() for p in paths if p.is_dir()}
    alone = {roots[c.file] for c in checked if c.spec is not None and roots[c.file] not in given}
    return context_facts(alone, files) if alone else []


def _policy(path: Path | None, spec_paths: list[Path]):
    """The policy `check` applies, or the diagnostics that say why it cannot be read (exit code 2)."""
    import os

    from pipespec.schemas.check import display_name
    from pipespec.schemas.diagnostics import Diagnostic
    from pipespec.schemas.policy import BUILT_IN, PolicyFileError, load_policy
    from pipespec.schemas.policy_location import policy_location

    if path is None and policy_location():
        path = Path(policy_location())
    if path is None:
        return BUILT_IN, []
    display = display_name(path)
    # Spec authors edit what lies among the specs; a policy there would let them grant themselves anything.
    spec_dirs = [p if p.is_dir() else p.parent for p in spec_paths]
    inside = [d for d in spec_dirs if path.resolve().is_relative_to(d.resolve())]
    if inside:
        return None, [Diagnostic(display, 1, 1, "", f"the policy file lies inside the spec directory {inside[0]}",
                                 "keep it where only the platform team can change it", code="policy")]
    if not path.is_file():
        return None, [Diagnostic(display, 1, 1, "", "no such policy file", "check --policy or $PIPESPEC_POLICY",
                                 code="policy")]
    try:
        return load_policy(path, display), []
    except PolicyFileError as exc:
        return None, exc.diagnostics


def _schema(args: argparse.Namespace) -> int:
    from pipespec.schemas.jsonschema import render_schema

    return _write_generated(args, render_schema(), "schema")


def _reference(args: argparse.Namespace) -> int:
    from pipespec.schemas.reference import render_reference

    return _write_generated(args, render_reference(), "reference")


def _write_generated(args: argparse.Namespace, text: str, command: str) -> int:
    """Write a generated file, or with --check fail when the one on disk differs."""
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run `pipespec {command}`", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


def _new(args: argparse.Namespace) -> int:
    from pipespec.local.scaffold import ScaffoldError, new_spec

    try:
        path = new_spec(args.name, args.template, args.dir)
    except ScaffoldError as exc:
        print(f"pipespec new: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}; edit it, then run `pipespec check {path}`")
    return 0


def _init(args: argparse.Namespace) -> int:
    from pipespec.local.scaffold import ScaffoldError, init_repo

    try:
        result = init_repo(args.directory, args.force)
    except (ScaffoldError, OSError) as exc:
        print(f"pipespec init: {exc}", file=sys.stderr)
        return 2
    for path in result.written:
        print(f"wrote {path}")
    for path in result.kept:
        print(f"kept {path} (it exists; --force overwrites it)")
    print(f"next: cd {args.directory}; pipespec check; pre-commit install; see README.md")
    return 0


def _templates(args: argparse.Namespace) -> int:
    from pipespec.schemas.shipped import describe, shipped_templates

    # One line each, named as `extends:` and `new --from` take them.
    for template in shipped_templates():
        print(f"{template.ref:<30} {template.description()}")
    team = args.dir / "templates"
    for path in sorted(team.glob("*.y*ml")) if team.is_dir() else ():
        print(f"{'templates/' + path.name:<30} {describe(path)}")
    return 0


def _compile_one(spec: Path, command: str):
    """Check and compile one spec for `graph`/`export`; returns (pipeline, exit code when it failed)."""
    from pipespec.schemas import reporters as report
    from pipespec.schemas.check import check_file, sort_key
    from pipespec.compiler.compile import compile_checked

    if not spec.is_file():
        print(f"pipespec {command}: {spec}: no such file", file=sys.stderr)
        return None, 2
    checked = check_file(spec)
    if checked.is_template:
        print(f"pipespec {command}: {checked.display} is a template; use a spec that extends it", file=sys.stderr)
        return None, 2
    if not checked.ok or checked.spec is None:
        # stdout carries the output (often redirected to a file): diagnostics go to stderr.
        print(report.text(sorted(checked.diagnostics, key=sort_key), 1), file=sys.stderr)
        return None, 1
    return compile_checked(checked), 0


def _graph(args: argparse.Namespace) -> int:
    from pipespec.compiler.graph import to_dot, to_mermaid

    pipeline, code = _compile_one(args.spec, "graph")
    if pipeline is None:
        return code
    print((to_dot if args.format == "dot" else to_mermaid)(pipeline), end="")
    return 0


def _export(args: argparse.Namespace) -> int:
    from pipespec.compiler.export_dagfactory import ExportError, export_dagfactory

    pipeline, code = _compile_one(args.spec, "export")
    if pipeline is None:
        return code
    try:
        text = export_dagfactory(pipeline)
    except ExportError as exc:
        print(f"pipespec export: {exc}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(text)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}; load it with dagfactory.load_yaml_dags(globals(), config_filepath=...)",
          file=sys.stderr)
    return 0


def _diff(args: argparse.Namespace) -> int:
    from pipespec.compiler.diff import GitRefError, diff_refs, repo_root

    try:
        lines = diff_refs(repo_root(Path.cwd()), args.base, args.head, args.paths)
    except GitRefError as exc:
        print(f"pipespec diff: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))  # ends with "no changes to compiled DAGs" when nothing changed
    return 0


def _run(args: argparse.Namespace) -> int:
    if not args.spec.is_file():
        print(f"pipespec run: {args.spec}: no such file", file=sys.stderr)
        return 2
    from pipespec.local.local_env import configure, ensure_db  # before Airflow is imported

    configure(pipelines=args.spec.parent)
    ensure_db()
    from pipespec.local.run import run_pipeline

    try:
        outcomes = run_pipeline(args.spec, args.until)
    except ValueError as exc:
        print(f"pipespec run: {exc}", file=sys.stderr)
        return 1
    return 0 if outcomes and all(o.state == "success" for o in outcomes) else 1


def _up(args: argparse.Namespace) -> int:
    from pipespec.local.local_env import configure, ensure_db

    configure()
    ensure_db()
    from pipespec.local.up import up

    return up(args.port)


if __name__ == "__main__":
    sys.exit(main())
