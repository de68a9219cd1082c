"""The platform policy: what a spec may ask of shared infrastructure.

Compute settings hand out privileges (a namespace, a service account, a volume, a
connection, an image, files the worker uploads), so a spec's `owner` gets only what
the platform team allows it in a policy file that lives outside the specs (path from
`$PIPESPEC_POLICY` or `pipespec check --policy`):

    default:                      # every team, unless its own section says otherwise
      images: [ghcr.io/acme/]     # registry/repository prefixes; tag or digest required
      namespaces: [ml-jobs]
      limits: {max_cpu: "8", max_memory: 32Gi, max_gpus: 1, max_retries: 3, max_timeout: 6h}
    teams:
      ml-imaging:                 # a spec's `owner`; a field set here replaces `default`'s
        namespaces: [ml-imaging]
        pvcs: [xray-pvc]

A field left out (or no policy file at all) falls back to a safe built-in: no
Kubernetes system namespaces, only the `default` service account, any pinned image,
volume, connection and URI. Always refused, whatever the policy: control-plane
tolerations and node selectors, an Anyscale `working_dir` or `containerfile` on the
worker's disk, pip options or URLs in `requirements`, and `env` that overrides the
platform's own variables (MLFLOW_*, AWS_*, PIP_*, PATH, LD_* ...).

`pipespec check` and the steps (tasklib/compute, at run time on the worker) call the
same functions here, so a spec is refused by the same rule in both places. This
module imports neither Airflow nor the task library.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError

from pipespec.schemas.diagnostics import Diagnostic, SpecError, format_path
from pipespec.schemas.diagnostics import YamlPath
from pipespec.schemas.models.common import Duration, Quantity, StrictModel, parse_duration, parse_quantity
from pipespec.schemas.policy_location import POLICY_ENV, policy_location  # noqa: F401 - POLICY_ENV is part of this interface
from pipespec.schemas.yamlload import load_file


SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
DEFAULT_SERVICE_ACCOUNT = "default"
CONTROL_PLANE_LABELS = frozenset({"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"})
# The platform's own settings: where models register (MLFLOW_), credentials (AWS_, GOOGLE_, AZURE_),
# where pip installs from (PIP_, UV_), what the interpreter and loader run (PYTHON*, LD_, DYLD_, PATH).
RESERVED_ENV_PREFIXES = ("MLFLOW_", "AWS_", "AIRFLOW_", "PIPESPEC_", "ANYSCALE_", "RAY_", "GOOGLE_", "AZURE_",
                         "PIP_", "UV_", "CONDA_", "PYTHON", "LD_", "DYLD_", "KUBE", "SSL_", "REQUESTS_", "CURL_")
RESERVED_ENV_NAMES = frozenset({"PATH", "HOME", "SHELL", "USER", "TMPDIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                                "ALL_PROXY"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Remote working directories the Anyscale SDK downloads itself (a zip or a prefix); anything else is a local path.
REMOTE_WORKING_DIR_SCHEMES = ("s3", "gs", "https")
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "wasb", "wasbs"})

# Image references (github.com/distribution/reference): [domain[:port]/]path[:tag][@digest].
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"(?:localhost|{_LABEL}(?:\.{_LABEL})*)(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE = re.compile(rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
                    rf"(?::(?P<tag>[\w][\w.-]{{0,127}}))?(?:@(?P<digest>{_DIGEST}))?$")


class Limits(StrictModel):
    """Upper bounds on what one task may ask for."""

    max_cpu: Quantity | None = Field(None, description="Most CPUs one training pod may request (`8`, `500m`).")
    max_memory: Quantity | None = Field(None, description="Most memory one training pod may request (`32Gi`).")
    max_gpus: int | None = Field(None, ge=0, description="Most GPUs one training pod may request.")
    max_retries: int | None = Field(None, ge=0, description="Most retries of any task or Anyscale job.")
    max_timeout: Duration | None = Field(None, description="Longest timeout: sources, training, approval.")


class Rules(StrictModel):
    """Allowlists; a field left out falls back to `default`, then to the built-in safe default."""

    images: list[str] | None = Field(None, description="Registry/repository prefixes (`ghcr.io/acme/`); "
                                                       "built-in: any registry, pinned by tag or digest.")
    namespaces: list[str] | None = Field(None, description="Built-in: any but kube-system, kube-public, "
                                                           "kube-node-lease.")
    service_accounts: list[str] | None = Field(None, description="Built-in: only `default`.")
    pvcs: list[str] | None = Field(None, description="PersistentVolumeClaims a pod may mount; built-in: any.")
    conn_ids: list[str] | None = Field(None, description="Airflow connections a spec may name; built-in: any.")
    compute_configs: list[str] | None = Field(None, description="Anyscale compute configs (they decide the GPUs); "
                                                                "built-in: any.")
    buckets: list[str] | None = Field(None, description="Object-store buckets (s3://<bucket>/...) a spec may use.")
    uri_prefixes: list[str] | None = Field(None, description="URI prefixes a spec may use (`s3://shared/public/`); "
                                                             "with `buckets` unset too, built-in: any URI.")
    limits: Limits | None = None
    spec_paths: list[str] | None = Field(
        None, description="Teams only: the spec files this team owns, as globs relative to the specs folder "
                          "(`growth/*`). A spec may name this team as `owner` only there, so the team's rights "
                          "follow who may change those files (CODEOWNERS), not what a spec says of itself.")


PluginName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class Policy(StrictModel):
    """A policy file: default rules and per-team replacements."""

    default: Rules = Field(default_factory=Rules, description="Rules for every team.")
    teams: dict[str, Rules] = Field(default_factory=dict, description="Per spec `owner`: fields that replace "
                                                                      "`default`'s.")
    plugins: dict[str, list[PluginName]] = Field(
        default_factory=dict, description="Plugin packages this platform provides: distribution -> the names it "
                                          "registers. A spec naming one that is not installed is told to install "
                                          "that package; `pipespec check --plugins=declared` accepts it unchecked.")
    local_images: dict[str, str] = Field(
        default_factory=dict, description="Local runs only: image repository (`ghcr.io/acme/xray-train`, no tag) -> "
                                          "the folder that stands in for it, relative to this file. A `container` "
                                          "model runs its command there, without a shell, in a clean environment.")

    def declared_plugins(self) -> dict[str, str]:
        """name -> the distribution that provides it."""
        return {name: dist for dist, names in self.plugins.items() for name in names}

    def local_image_folder(self, image: str) -> str | None:
        """The folder standing in for `image` in local runs, or None when the policy maps none."""
        name = image_name(image)
        return next((folder for key, folder in self.local_images.items()
                     if name is not None and image_name(f"{key}:x") == name), None)


BUILT_IN = Policy()  # what applies without a policy file


# --- loading --------------------------------------------------------------------------------

class PolicyFileError(Exception):
    """The policy file is missing or invalid; each diagnostic points into it."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("\n".join(f"{d.file}:{d.line}:{d.col}: {d.message}" + (f" ({d.hint})" if d.hint else "")
                                   for d in diagnostics))
        self.diagnostics = diagnostics


def load_policy(path: Path, display: str | None = None) -> Policy:
    """Read a policy file with the specs' safe YAML loader; errors carry file:line:col."""
    name = display or str(path)
    try:
        root = load_file(path, name)
    except SpecError as exc:
        raise PolicyFileError([_policy_wording(exc.diagnostic)]) from None
    try:
        policy = Policy.model_validate(root.to_plain())
    except ValidationError as exc:
        # Here, not at the top: a task process reads a valid policy and needs not import detect-secrets.
        from pipespec.schemas.validation_errors import from_validation_error

        raise PolicyFileError(from_validation_error(exc, root, Policy)) from None
    # Folders are relative to the policy file, wherever the check or the worker runs.
    folders = {key: str((path.parent / folder).resolve()) for key, folder in policy.local_images.items()}
    return policy.model_copy(update={"local_images": folders})


def _policy_wording(d: Diagnostic) -> Diagnostic:
    """The YAML loader speaks of specs; an empty or non-mapping policy file needs its own words."""
    if d.message == "the file is empty" or d.message.startswith("a spec must be a mapping"):
        return replace(d, message=d.message.replace("a spec", "a policy file"),
                       hint="a policy file is a mapping with `default:` and `teams:`")
    return d


def active_policy() -> Policy:
    """The policy named by $PIPESPEC_POLICY (re-read when the file changes), or the built-in one.

    A named file that is missing or invalid raises PolicyFileError: a broken policy refuses, never allows.
    """
    location = policy_location()
    if location is None:
        return BUILT_IN
    try:
        stat = os.stat(location)
    except OSError as exc:
        raise PolicyFileError([Diagnostic(location, 1, 1, "", f"cannot read the policy file named by ${POLICY_ENV}: "
                                          f"{exc.strerror or exc}", "check the path, or unset the variable",
                                          code="policy")]) from None
    return _load_cached(location, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_cached(location: str, mtime_ns: int, size: int) -> Policy:
    return load_policy(Path(location))


# --- rules for one team ---------------------------------------------------------------------

@dataclass(frozen=True)
class Violation:
    """A spec setting the policy refuses, at its path in the spec."""

    path: YamlPath
    message: str
    hint: str
    key: bool = False  # the mapping key at `path` is the problem (an env name), not its value

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message} ({self.hint})"


class TeamRules:
    """The rules for one team: its own section over `default` over the built-in, with the rule's name."""

    def __init__(self, policy: Policy | None, team: str | None):
        policy = policy if policy is not None else BUILT_IN
        own = policy.teams.get(team) if team is not None else None
        self.sections = [(f"teams.{team}", own)] if own is not None else []
        self.sections.append(("default", policy.default))

    def allowlist(self, name: str) -> tuple[list[str] | None, str]:
        for label, rules in self.sections:
            value = getattr(rules, name)
            if value is not None:
                return value, f"{label}.{name}"
        return None, f"built-in {name}"

    def limit(self, name: str) -> tuple[Any, str]:
        for label, rules in self.sections:
            if rules.limits is not None and getattr(rules.limits, name) is not None:
                return getattr(rules.limits, name), f"{label}.limits.{name}"
        return None, f"built-in limits.{name}"


def _refuse(path: YamlPath, message: str, rule: str, advice: str, key: bool = False) -> Violation:
    return Violation(path, message, f"{advice}; policy rule `{rule}`", key)


def _allowed(rules: TeamRules, name: str, value: str, what: str, path: YamlPath) -> Iterator[Violation]:
    allowed, rule = rules.allowlist(name)
    if allowed is not None and value not in allowed:
        yield _refuse(path, f"{what} `{value}` is not allowed for this team", rule,
                      f"allowed: {_listing(allowed)}; ask the platform team to extend the policy file")


def _listing(values: list[str]) -> str:
    return ", ".join(f"`{v}`" for v in values) if values else "none"


# --- single settings (also used by the steps at run time) -----------------------------------

def check_conn_id(policy: Policy | None, team: str | None, conn_id: str, path: YamlPath = ()) -> list[Violation]:
    """Violations for an Airflow connection the team may not use."""
    return list(_allowed(TeamRules(policy, team), "conn_ids", conn_id, "connection", path))


def check_uri(policy: Policy | None, team: str | None, uri: str, path: YamlPath = ()) -> list[Violation]:
    """May `team` read or write `uri`? Its bucket or a prefix (on a path boundary) must be allowed,
    and `.`/`..` segments, which would walk out of an allowed prefix, are refused."""
    return list(_uri(TeamRules(policy, team), uri, path))


def _uri(rules: TeamRules, uri: str, path: YamlPath) -> Iterator[Violation]:
    parts = urlsplit(uri)
    segments = unquote(parts.path).replace("\\", "/").split("/")
    if any(s in (".", "..") for s in segments):
        yield _refuse(path, f"URI `{uri}` has `.` or `..` segments", "built-in uri_prefixes",
                      "write the location without relative segments")
        return
    buckets, bucket_rule = rules.allowlist("buckets")
    prefixes, prefix_rule = rules.allowlist("uri_prefixes")
    if buckets is None and prefixes is None:
        return
    scheme = parts.scheme.lower()
    if buckets and scheme in OBJECT_STORE_SCHEMES and parts.netloc.lower() in {b.lower() for b in buckets}:
        return
    normalized = f"{scheme}://{parts.netloc.lower()}{posixpath.normpath(parts.path) if parts.path else ''}"
    if any(_under(normalized, p) for p in prefixes or []):
        return
    rule = prefix_rule if prefixes is not None else bucket_rule
    allowed = [*(f"bucket {b}" for b in buckets or []), *(prefixes or [])]
    yield _refuse(path, f"URI `{uri}` is outside this team's buckets and prefixes", rule,
                  f"allowed: {_listing(allowed)}")


def _under(uri: str, prefix: str) -> bool:
    """`uri` is `prefix` or below it: `s3://a/x` is under `s3://a`, `s3://a-b/x` is not."""
    parts = urlsplit(prefix)
    prefix = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}".rstrip("/")
    return uri == prefix or uri.startswith(prefix + "/")


def image_name(image: str) -> str | None:
    """`[domain/]path` of an image reference, Docker Hub spelled out (`python` → docker.io/library/python);
    None when it is not a valid reference."""
    match = _IMAGE.match(image)
    if not match:
        return None
    domain, repository = match["domain"], match["path"]
    if domain is None or ("." not in domain and ":" not in domain and domain != "localhost"):
        # `acme/x` is Docker Hub's acme/x, not a registry named acme.
        repository = f"{domain}/{repository}" if domain else repository
        domain = "docker.io"
        if "/" not in repository:
            repository = f"library/{repository}"
    return f"{domain.lower()}/{repository}"


def check_image(policy: Policy | None, team: str | None, image: str, path: YamlPath = ()) -> list[Violation]:
    """Violations for an image that is unpinned or from a registry the team may not use."""
    return list(_image(TeamRules(policy, team), image, path))


def _image(rules: TeamRules, image: str, path: YamlPath) -> Iterator[Violation]:
    match, name = _IMAGE.match(image), image_name(image)
    if match is None or name is None:
        yield _refuse(path, f"`{image}` is not an image reference", "built-in images",
                      "write it as registry/repository:tag or registry/repository@sha256:<digest>")
        return
    if match["digest"] is None and match["tag"] in (None, "latest"):
        yield _refuse(path, f"image `{image}` is not pinned", "built-in images",
                      "add a version tag (not `latest`) or an @sha256: digest, so every run uses the same image")
    allowed, rule = rules.allowlist("images")
    if allowed is not None and not any(name == p or name.startswith(p + "/") for p in _image_prefixes(allowed)):
        yield _refuse(path, f"image `{image}` is not from an allowed registry or repository", rule,
                      f"allowed: {_listing(allowed)}")


def _image_prefixes(allowed: list[str]) -> Iterator[str]:
    """Allowlist entries as `domain/path` prefixes; without a registry they are Docker Hub's
    (`anyscale/` is docker.io/anyscale/, official images are `library/python`)."""
    for entry in allowed:
        first, _, rest = entry.rstrip("/").partition("/")
        is_domain = "." in first or ":" in first or first == "localhost"
        yield f"{first.lower()}/{rest}".rstrip("/") if is_domain else f"docker.io/{first}/{rest}".rstrip("/")


def check_requirement(text: str, path: YamlPath = ()) -> list[Violation]:
    """A `requirements` entry must be a plain PEP 508 requirement: no pip options, no URLs or local files."""
    from packaging.requirements import InvalidRequirement, Requirement

    if text.lstrip().startswith("-"):
        return [_refuse(path, f"`{text}` is a pip option, not a requirement", "built-in requirements",
                        "only package requirements such as `llmforge==0.5.9`; indexes are set by the platform")]
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return [_refuse(path, f"`{text}` is not a PEP 508 requirement", "built-in requirements",
                        "write `name`, `name==1.2.3` or `name[extra]>=1.2`")]
    if requirement.url:
        return [_refuse(path, f"`{text}` installs from a URL", "built-in requirements",
                        f"name a released version of `{requirement.name}` from the platform's index instead")]
    return []


def check_env_name(name: str, path: YamlPath = ()) -> list[Violation]:
    """Violations for an `env` name that is malformed or reserved for the platform."""
    upper = name.upper()
    if not _ENV_NAME.match(name):
        return [_refuse(path, f"`{name}` is not an environment variable name", "built-in env",
                        "use letters, digits and underscores", key=True)]
    if upper in RESERVED_ENV_NAMES or upper.startswith(RESERVED_ENV_PREFIXES):
        return [_refuse(path, f"`{name}` is reserved for the platform", "built-in env",
                        "pipespec sets the tracking server, credentials, package index and paths itself; "
                        "choose another name", key=True)]
    return []


# --- training compute -----------------------------------------------------------------------

def check_train(policy: Policy | None, team: str | None, compute: Mapping[str, Any],
                model: Mapping[str, Any] | None = None, dataset: str | None = None,
                path: YamlPath = ("train",)) -> list[Violation]:
    """Everything a `train` task asks for: its compute, the data it reads and where it writes.

    Plain mappings in (a spec's model_dump or a task's params), so check time and run time agree.
    """
    rules = TeamRules(policy, team)
    out: list[Violation] = []
    at = (*path, "compute")
    backend = compute.get("backend")
    if backend == "kubernetes":
        out += _kubernetes(rules, compute, at)
    elif backend == "anyscale":
        out += _anyscale(rules, compute, at)
    elif backend == "ray":
        out += _ray(rules, compute, at)
    if (model or {}).get("type") == "container":
        out += _container(rules, model.get("params") or {}, (*path, "model", "params"))  # type: ignore[union-attr]
    if dataset:
        out += _uri(rules, dataset, (*path, "dataset"))
    output_uri = ((model or {}).get("params") or {}).get("output_uri")
    if isinstance(output_uri, str):
        out += _uri(rules, output_uri, (*path, "model", "params", "output_uri"))
    return out


def check_inference(policy: Policy | None, team: str | None, compute: Mapping[str, Any]) -> list[Violation]:
    """The pods batch inference asks for: the same rules as a training pod's (image, namespace,
    service account, tolerations, volumes, resources)."""
    return list(_kubernetes(TeamRules(policy, team), compute, ("inference", "compute")))


def _container(rules: TeamRules, params: Mapping[str, Any], at: YamlPath) -> Iterator[Violation]:
    """A `container` model: its image, and the connections whose values become its environment.

    The image is code the spec chooses. Two things trust it beyond its own pod or job, so they need
    an image the platform vetted (an `images` allowlist): connection values in its environment, and
    pipespec's own metrics (`evaluation: {by: builtin}`), which load the model it wrote, an MLflow
    model that may carry code, on Airflow's workers."""
    if isinstance(params.get("image"), str):
        yield from _image(rules, params["image"], (*at, "image"))
    if rules.allowlist("images")[0] is None:
        if (params.get("evaluation") or {}).get("by", "builtin") == "builtin":
            yield _refuse((*at, "evaluation"), "pipespec's own metrics would load this image's model on Airflow's "
                          "workers, and the platform has vetted no image", "built-in images",
                          "evaluate with the team's own command (`evaluation: {by: command}`), or ask the platform "
                          "team to list allowed images (`images:`)")
        if params.get("connections"):
            yield _refuse((*at, "connections"), "connection values would go to an image the platform has not vetted",
                          "built-in images", "ask the platform team to list allowed images (`images:`)")
    for prefix, conn_id in (params.get("connections") or {}).items():
        yield from check_env_name(f"{prefix}_URI", (*at, "connections", prefix))
        yield from _allowed(rules, "conn_ids", conn_id, "connection", (*at, "connections", prefix))


def _kubernetes(rules: TeamRules, compute: Mapping[str, Any], at: YamlPath) -> Iterator[Violation]:
    if compute.get("image"):  # a `container` model's pod runs the model's image, checked with the model
        yield from _image(rules, compute["image"], (*at, "image"))
    yield from _namespace(rules, compute.get("namespace") or "default", (*at, "namespace"))
    yield from _allowed(rules, "conn_ids", compute.get("conn_id") or "kubernetes_default", "connection",
                        (*at, "conn_id"))
    account = compute.get("service_account") or DEFAULT_SERVICE_ACCOUNT
    allowed, rule = rules.allowlist("service_accounts")
    if account != DEFAULT_SERVICE_ACCOUNT and (allowed is None or account not in allowed):
        yield _refuse((*at, "service_account"), f"service account `{account}` is not allowed for this team", rule,
                      f"allowed: {_listing([DEFAULT_SERVICE_ACCOUNT, *(allowed or [])])}; a service account "
                      "carries cluster permissions, so the platform team grants it")
    for index, toleration in enumerate(compute.get("tolerations") or []):
        key = toleration.get("key") or ""
        if not key and toleration.get("operator") == "Exists":
            yield _refuse((*at, "tolerations", index), "a toleration without a key tolerates every taint, "
                          "the control plane's included", "built-in tolerations", "name the taint's key")
        elif key in CONTROL_PLANE_LABELS:
            yield _refuse((*at, "tolerations", index, "key"), f"`{key}` would schedule training onto the "
                          "control plane", "built-in tolerations", "remove this toleration")
    for label in compute.get("node_selector") or {}:
        if label in CONTROL_PLANE_LABELS:
            yield _refuse((*at, "node_selector", label), f"`{label}` selects control-plane nodes",
                          "built-in tolerations", "select worker nodes (e.g. by instance type) instead", key=True)
    for index, volume in enumerate(compute.get("volumes") or []):
        yield from _allowed(rules, "pvcs", volume["claim"], "PersistentVolumeClaim", (*at, "volumes", index, "claim"))
    resources = compute.get("resources") or {}
    for name, limit in (("cpu", "max_cpu"), ("memory", "max_memory")):
        yield from _quantity(rules, limit, str(resources.get(name, "")), (*at, "resources", name))
    gpus, rule = rules.limit("max_gpus")
    if gpus is not None and int(resources.get("gpu") or 0) > gpus:
        yield _refuse((*at, "resources", "gpu"), f"{resources['gpu']} GPUs is more than this team may request",
                      rule, f"at most {gpus}")
    yield from _timeout(rules, compute.get("startup_timeout"), (*at, "startup_timeout"))


def _namespace(rules: TeamRules, namespace: str, path: YamlPath) -> Iterator[Violation]:
    allowed, rule = rules.allowlist("namespaces")
    if allowed is None and namespace in SYSTEM_NAMESPACES:
        yield _refuse(path, f"namespace `{namespace}` belongs to Kubernetes itself", rule,
                      "run in your team's namespace")
    elif allowed is not None:
        yield from _allowed(rules, "namespaces", namespace, "namespace", path)


def _quantity(rules: TeamRules, limit: str, amount: str, path: YamlPath) -> Iterator[Violation]:
    most, rule = rules.limit(limit)
    if most is None:
        return
    try:
        too_much = parse_quantity(amount) > parse_quantity(most)
    except ValueError:
        too_much = True  # the models refuse this already; never let an unreadable amount through
    if too_much:
        yield _refuse(path, f"`{amount}` is more than this team may request", rule, f"at most `{most}`")


def _timeout(rules: TeamRules, duration: str | None, path: YamlPath) -> Iterator[Violation]:
    most, rule = rules.limit("max_timeout")
    if most is not None and duration and parse_duration(duration) > parse_duration(most):
        yield _refuse(path, f"timeout `{duration}` is longer than this team may set", rule, f"at most `{most}`")


def _retries(rules: TeamRules, count: int | None, path: YamlPath) -> Iterator[Violation]:
    most, rule = rules.limit("max_retries")
    if most is not None and count is not None and count > most:
        yield _refuse(path, f"{count} retries is more than this team may set", rule, f"at most {most}")


def _anyscale(rules: TeamRules, compute: Mapping[str, Any], at: YamlPath) -> Iterator[Violation]:
    if compute.get("image_uri"):
        yield from _image(rules, compute["image_uri"], (*at, "image_uri"))
    # A containerfile is a path on the worker that the SDK reads and builds from: it would read the
    # worker's files and build an image the `images` allowlist never saw. Build images in CI instead.
    if compute.get("containerfile"):
        yield _refuse((*at, "containerfile"), "a containerfile is read from the Airflow worker's disk",
                      "built-in containerfile", "build the image in CI and name it in `image_uri`")
    working_dir = compute.get("working_dir")
    if working_dir:
        if urlsplit(working_dir).scheme.lower() not in REMOTE_WORKING_DIR_SCHEMES:
            yield _refuse((*at, "working_dir"), f"working_dir `{working_dir}` is a local path: the Airflow worker "
                          "would upload its own files", "built-in working_dir",
                          "use a remote zip or prefix (s3://, gs://, https://), or leave it out")
        else:
            yield from _uri(rules, working_dir, (*at, "working_dir"))
    for index, requirement in enumerate(compute.get("requirements") or []):
        yield from check_requirement(requirement, (*at, "requirements", index))
    for name in compute.get("env") or {}:
        yield from check_env_name(name, (*at, "env", name))
    yield from _allowed(rules, "conn_ids", compute.get("conn_id") or "anyscale_conn", "connection", (*at, "conn_id"))
    if compute.get("compute_config"):
        yield from _allowed(rules, "compute_configs", compute["compute_config"], "compute config",
                            (*at, "compute_config"))
    yield from _timeout(rules, compute.get("timeout"), (*at, "timeout"))
    yield from _retries(rules, compute.get("max_retries"), (*at, "max_retries"))


def _ray(rules: TeamRules, compute: Mapping[str, Any], at: YamlPath) -> Iterator[Violation]:
    """A Ray job: its connection, its environment (no platform variables), its CPUs, GPUs and timeout."""
    for name in compute.get("env") or {}:
        yield from check_env_name(name, (*at, "env", name))
    yield from _allowed(rules, "conn_ids", compute.get("conn_id") or "ray_default", "connection", (*at, "conn_id"))
    yield from _quantity(rules, "max_cpu", str(compute.get("cpus", 1)), (*at, "cpus"))
    gpus, rule = rules.limit("max_gpus")
    if gpus is not None and float(compute.get("gpus") or 0) > gpus:
        yield _refuse((*at, "gpus"), f"{compute['gpus']} GPUs is more than this team may request", rule,
                      f"at most {gpus}")
    yield from _timeout(rules, compute.get("timeout"), (*at, "timeout"))


# --- a whole spec ---------------------------------------------------------------------------

def check_target(policy: Policy | None, team: str | None, target: Mapping[str, Any],
                 path: YamlPath = ("rollout", "target")) -> list[Violation]:
    """A serving target: the namespace and image of a Deployment, the image and compute config of a Service."""
    rules = TeamRules(policy, team)
    out: list[Violation] = []
    if target.get("type") == "kubernetes":
        out += _namespace(rules, target.get("namespace") or "default", (*path, "namespace"))
        if target.get("image"):
            out += _image(rules, target["image"], (*path, "image"))
    elif target.get("type") == "anyscale_service":
        if target.get("image_uri"):
            out += _image(rules, target["image_uri"], (*path, "image_uri"))
        if target.get("compute_config"):
            out += _allowed(rules, "compute_configs", target["compute_config"], "compute config",
                            (*path, "compute_config"))
    return out


def check_owner(policy: Policy | None, team: str | None, spec_path: str) -> list[Violation]:
    """May a spec at `spec_path` (relative to the specs folder, `/`-separated) name `team` as its owner?
    Only where the team's `spec_paths` say. Once any team has `spec_paths`, a team without them can
    be claimed by no spec: its rights would otherwise be anyone's for the writing of `owner:`."""
    teams = (policy or BUILT_IN).teams
    own = teams.get(team) if team is not None else None
    if own is None or (own.spec_paths is None and not any(t.spec_paths is not None for t in teams.values())):
        return []
    if any(fnmatch.fnmatchcase(spec_path, p) for p in own.spec_paths or ()):
        return []
    return [_refuse(("owner",), f"`{spec_path}` may not name team `{team}` as its owner", f"teams.{team}.spec_paths",
                    f"specs of `{team}` live at {_listing(own.spec_paths or [])}: move the spec there (its "
                    "reviewers then approve it) or name your own team")]


def check_spec(policy: Policy | None, spec: Mapping[str, Any], spec_path: str | None = None) -> list[Violation]:
    """Every policy finding for a validated spec (its model_dump), with the path of the setting.
    `spec_path` (relative to the specs folder) is checked against the owner team's `spec_paths`."""
    team = spec.get("owner")
    rules = TeamRules(policy, team)
    out: list[Violation] = [] if spec_path is None else check_owner(policy, team, spec_path)
    train = spec.get("train")
    if train:
        out += check_train(policy, team, train["compute"], train.get("model"), train.get("dataset"))
        if (train.get("model") or {}).get("type") == "container" and spec.get("inference") \
                and rules.allowlist("images")[0] is None:
            out.append(_refuse(("inference",), "batch inference would load a container model on Airflow's workers, "
                               "and the platform has vetted no image", "built-in images",
                               "ask the platform team to list allowed images (`images:`)"))
    if spec.get("rollout"):
        out += check_target(policy, team, spec["rollout"]["target"])
    inference_compute = (spec.get("inference") or {}).get("compute") or {}
    if inference_compute.get("backend") == "kubernetes":
        out += check_inference(policy, team, inference_compute)
    for path, uri in _spec_uris(spec):
        out += _uri(rules, uri, path)
    if rules.allowlist("conn_ids")[0] is not None:  # no list: any connection; skip walking the spec
        for path, conn_id in _conn_ids(spec, ()):
            if path[:2] not in (("train", "compute"), ("inference", "compute")):  # checked with the compute
                out += _allowed(rules, "conn_ids", conn_id, "connection", path)
    out += _spec_limits(rules, spec)
    return out


def _spec_uris(spec: Mapping[str, Any]) -> Iterator[tuple[YamlPath, str]]:
    """The URIs a spec reads or writes besides training's (local paths are the data root's business)."""
    data = spec.get("data") or {}
    for index, source in enumerate(data.get("sources") or []):
        if source.get("uri"):
            yield ("data", "sources", index, "uri"), source["uri"]
    for path in (("data", "publishes"), ("data", "drift", "reference"), ("data", "wait_for", "uri"), ("train", "publishes"),
                 ("evaluate", "holdout"), ("inference", "input"), ("inference", "output")):
        value: Any = spec
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            yield path, value
    for index, uri in enumerate(spec.get("external_assets") or []):
        yield ("external_assets", index), uri


def _conn_ids(value: Any, path: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "conn_id" and isinstance(item, str):
                yield (*path, key), item
            else:
                yield from _conn_ids(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _conn_ids(item, (*path, index))


def _spec_limits(rules: TeamRules, spec: Mapping[str, Any]) -> Iterator[Violation]:
    retries = spec.get("retries") or {}
    yield from _retries(rules, retries.get("count"), ("retries", "count"))
    for stage, override in (retries.get("overrides") or {}).items():
        if override:
            yield from _retries(rules, override.get("count"), ("retries", "overrides", stage, "count"))
    for index, source in enumerate((spec.get("data") or {}).get("sources") or []):
        yield from _timeout(rules, source.get("timeout"), ("data", "sources", index, "timeout"))
    for index, stage in enumerate((spec.get("rollout") or {}).get("stages") or []):
        approval = stage.get("approval") if isinstance(stage, Mapping) else None
        if approval:
            yield from _timeout(rules, approval.get("timeout"), ("rollout", "stages", index, "approval", "timeout"))
