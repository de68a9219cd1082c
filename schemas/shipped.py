"""The templates that ship inside the installed package: `pipespec:<name>@<version>`.

They live in `pipespec/templates/<name>/v<version>.yaml` (package data, read through
importlib.resources, so a wheel and a checkout find the same files). A released version is never
edited (tests/schemas/test_shipped_templates.py pins every file's hash): a change is a new
version file, and a spec moves to it by changing its pin.
"""

from __future__ import annotations

import difflib
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

PREFIX = "pipespec:"
PACKAGE_DIR = "templates"  # inside the `pipespec` package
_REF = re.compile(r"pipespec:(?P<name>[a-z][a-z0-9_]{0,62})(?:@(?P<version>[^@]*))?")
_FILE = re.compile(r"v([1-9][0-9]{0,5})\.yaml")


class TemplateRefError(ValueError):
    """A `pipespec:` reference that names no shipped template; `hint` says what would."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class Shipped:
    """One version of a shipped template."""

    name: str
    version: int
    path: Path

    @property
    def ref(self) -> str:
        """The pinned reference a spec writes: `pipespec:tabular@1`."""
        return f"{PREFIX}{self.name}@{self.version}"

    def description(self) -> str:
        """What the template is for (see `describe`)."""
        return describe(self.path)


def describe(path: Path) -> str:
    """A template's first comment line (not an editor directive), or its `description:` key."""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("#") and "yaml-language-server" not in text:
            return text.lstrip("#").strip()
        if text.startswith("description:"):
            return text.partition(":")[2].strip().strip("'\"")
    return ""


def is_ref(value: str) -> bool:
    """Whether an `extends` entry names a shipped template rather than a team template file."""
    return value.startswith(PREFIX)


def shipped_root() -> Path:
    """The directory of shipped templates in the installed package (or the checkout's `pipespec/`)."""
    # A package installed as files (wheels always are, with pip and uv) gives a real directory; a
    # zipped one would give none, and every `pipespec:` reference would then say "not found".
    return Path(str(importlib.resources.files("pipespec") / PACKAGE_DIR))


def is_shipped(path: Path) -> bool:
    """Whether the real path `path` is a shipped template file."""
    return path.is_relative_to(shipped_root().resolve())


def shipped_templates() -> list[Shipped]:
    """Every shipped template version, by name then version."""
    root = shipped_root()
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if not (folder.is_dir() and re.fullmatch(r"[a-z][a-z0-9_]{0,62}", folder.name)):
            continue
        for file in folder.iterdir():
            match = _FILE.fullmatch(file.name)
            if match and file.is_file():
                found.append(Shipped(folder.name, int(match[1]), file))
    return sorted(found, key=lambda s: (s.name, s.version))


def lookup(ref: str, pinned: bool = True) -> Shipped:
    """The shipped template `ref` names. Without `pinned`, a bare name means its latest version."""
    match = _REF.fullmatch(ref)
    if match is None:
        raise TemplateRefError(f"`{ref}` is not a shipped template reference",
                               "write `pipespec:<name>@<version>`, e.g. `pipespec:tabular@1`")
    name, version = match["name"], match["version"]
    if version is not None and re.fullmatch(r"[1-9][0-9]{0,5}", version):
        path = shipped_root() / name / f"v{version}.yaml"  # name and version are safe path parts
        if path.is_file():  # the common case, without listing the directory
            return Shipped(name, int(version), path)
    versions = [s for s in shipped_templates() if s.name == name]
    if not versions:
        names = sorted({s.name for s in shipped_templates()})
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean `{PREFIX}{close[0]}`? " if close else ""
        raise TemplateRefError(f"no shipped template `{PREFIX}{name}`",
                               f"{hint}shipped: {', '.join(names) or 'none'} (`pipespec templates` lists them)")
    latest = versions[-1]
    if version is None:
        if pinned:
            raise TemplateRefError(f"`{ref}` names no version",
                                   f"pin one, e.g. `{latest.ref}` (the latest): a pin keeps a pipespec upgrade "
                                   "from changing what this spec compiles to")
        return latest
    if not re.fullmatch(r"[1-9][0-9]{0,5}", version):
        raise TemplateRefError(f"`{ref}`: the version must be a whole number",
                               f"for example `{latest.ref}`")
    raise TemplateRefError(f"no version {version} of `{PREFIX}{name}`",
                           f"shipped versions: {', '.join(str(s.version) for s in versions)}; "
                           f"the latest is `{latest.ref}` (a newer pipespec may ship more)")
