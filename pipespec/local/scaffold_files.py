"""The files `pipespec init` writes into a team repository, as text (`{version}` and `{first}`
are filled in by pipespec.local.scaffold)."""

DAGS_FILE = '''\
"""Airflow's entry point: every spec under pipelines/ becomes DAGs (pipespec.airflow.loader)."""

from pathlib import Path

from pipespec.airflow.loader import load_project

load_project(Path(__file__).resolve().parent.parent, globals())
'''

# A local hook rather than `repo: <pipespec's URL>`: it runs the pipespec installed in this
# environment, the version the team pins for Airflow and CI, so the hook, CI and the DAGs agree on
# what a spec (and a shipped template version) means; and it needs no repository URL or network.
# Its fields are those of pipespec's own .pre-commit-hooks.yaml.
PRE_COMMIT = '''\
# `pre-commit install` once; then every commit checks the specs it changes. The hook runs the
# pipespec installed here, the version your Airflow image and CI use, so all three agree.
repos:
  - repo: local
    hooks:
      - id: pipespec-check
        name: pipespec check
        description: Validate pipespec pipeline specs (no Airflow needed).
        entry: pipespec check
        language: system
        files: ^pipelines/.*\\.ya?ml$
        require_serial: true
'''

WORKFLOW = '''\
# pipespec on pull requests: check every spec (errors annotate the PR's lines), keep the editor
# schema current, and comment what the change does to the compiled DAGs (graph and diff).
name: pipespec
on:
  pull_request:
    paths: ["pipelines/**", ".pipespec/**", ".github/workflows/pipespec.yml"]
permissions:
  contents: read
  pull-requests: write  # the comment with the graph and the diff
jobs:
  check:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with: {fetch-depth: 0}  # `pipespec diff` compiles the base branch too
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: pip install "pipespec=={version}"  # the version your Airflow image installs
      - name: Check specs
        # The platform team's policy file (allowlists, limits, which team owns which specs): fetch it
        # from where they keep it, outside this repository, and name it here. Without it, CI only
        # applies the built-in rules and a policy violation shows up after merge as a placeholder DAG.
        env: {PIPESPEC_POLICY: ""}
        run: pipespec check pipelines/ --format github
      - name: Editor schema is current
        run: pipespec schema --check --output .pipespec/pipeline.schema.json
      - name: Graph and diff of the compiled DAGs
        env:
          GH_TOKEN: ${{ github.token }}
          BASE: ${{ github.base_ref }}
          PR: ${{ github.event.pull_request.number }}
        run: |
          {
            echo "### pipespec: what this pull request does to the compiled DAGs"
            echo '```'
            pipespec diff "origin/$BASE"
            echo '```'
            git diff --name-only --diff-filter=AM "origin/$BASE...HEAD" -- 'pipelines/*.yaml' 'pipelines/*.yml' |
              grep -v '^pipelines/templates/' | while read -r spec; do
                echo "#### $spec"
                echo '```mermaid'
                pipespec graph "$spec"
                echo '```'
              done
          } > pipespec-comment.md
          cat pipespec-comment.md >> "$GITHUB_STEP_SUMMARY"
          # A fork's token cannot comment; the job summary above still shows it.
          gh pr comment "$PR" --body-file pipespec-comment.md --edit-last ||
            gh pr comment "$PR" --body-file pipespec-comment.md || true
'''

GITIGNORE = '''\
# pipespec's IR cache (the DAG loader rebuilds it) and local run data
.pipespec-cache/
.pipespec-data/
'''

README = '''\
# ML pipelines

Each file in `pipelines/` is a [pipespec](https://pypi.org/project/pipespec/) spec: one ML
pipeline (data, training, evaluation, rollout, inference) that Airflow runs as DAGs.

## The day-to-day loop

1. **Start a pipeline** from a shipped template: `pipespec templates` lists them, then
   `pipespec new churn_eu --from pipespec:tabular@1` writes `pipelines/churn_eu.yaml`
   (`pipelines/{first}.yaml` is one to read first).
2. **Edit it.** VS Code (with the YAML extension) completes and checks keys against
   `.pipespec/pipeline.schema.json` (bound in `.vscode/settings.json`).
3. **Check it**: `pipespec check` (every spec) or `pipespec check pipelines/churn_eu.yaml`.
   `pre-commit install` once, and every commit checks the specs it changes.
4. **See it**: `pipespec graph pipelines/churn_eu.yaml` draws its DAGs;
   `pipespec run pipelines/churn_eu.yaml --until data` runs them locally (`pipespec[airflow]`).
5. **Open a pull request.** CI (`.github/workflows/pipespec.yml`) checks every spec, with errors
   on the changed lines, and comments the graph and `pipespec diff` of the compiled DAGs.
6. **Merge.** Airflow loads every spec under `pipelines/` through `dags/pipespec_dags.py`.

Shared defaults go in team templates, `pipelines/templates/*.yaml`, which may themselves
extend a shipped one (`extends: pipespec:base@1`); specs extend them with
`extends: templates/<name>.yaml`.

## Deploying

Add `pipespec[airflow]=={version}` to your Airflow image, point `dags_folder` at `dags/`
(or copy `dags/pipespec_dags.py` and `pipelines/` into it), and create the connections the
specs name (`conn_id`).

## Upgrading pipespec

Templates are pinned (`pipespec:tabular@1`): an upgrade never changes what a pinned spec
compiles to. To adopt a new template version, change the pin and read `pipespec diff`. After an
upgrade, run `pipespec schema --output .pipespec/pipeline.schema.json` and bump the version in
`.github/workflows/pipespec.yml`; CI fails until the editor schema is current.
'''
