"""Finding spec files. Light on purpose: the DAG loader lists files on every parse,
and with a warm IR cache it never needs the models or the checker.

The spec tree is a closed world: a spec or template whose real path (symlinks
resolved) lies outside it is refused, not read, and the refusal quotes nothing
from the target, since diagnostics end up in DAG docs and CI logs.
"""

from __future__ import annotations

from pathlib import Path

from pipespec.schemas.diagnostics import Diagnostic

SPEC_SUFFIXES = (".yaml", ".yml")
TEMPLATES_DIR = "templates"


def discover(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Spec files under `paths`; a path that does not exist is a diagnostic, not a silent skip.

    A directory is the root of its files; a file named on its own is held to its directory.
    Symlinks inside a root are followed when they stay inside it (a symlinked root is fine).
    """
    files: list[Path] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            root = path.resolve()
            # rglob does not descend into symlinked directories, so only file symlinks can leave.
            for p in sorted(path.rglob("*")):
                if (p.suffix in SPEC_SUFFIXES and p.is_file()
                        and not any(part.startswith(".") for part in p.relative_to(path).parts)):
                    _keep_inside(p, root, path.name or root.name, files, problems)
        elif path.is_file():
            root = path.absolute().parent.resolve()
            _keep_inside(path, root, path.parent.name or root.name, files, problems)
        else:
            problems.append(Diagnostic(str(path), 1, 1, "", "no such file or directory",
                                       "pass spec files or directories that hold them", code="usage"))
    return list(dict.fromkeys(files)), problems


def _keep_inside(file: Path, root: Path, root_name: str, files: list[Path], problems: list[Diagnostic]) -> None:
    try:
        str(file).encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8: no DAG id, doc or JSON report can carry the name
        shown = str(file).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        problems.append(Diagnostic(shown, 1, 1, "", "this file name is not valid UTF-8; it is not read",
                                   "rename the file with UTF-8 characters (pipeline names are lower_snake_case)",
                                   code="filename", redact_source=True))
        return
    if within(file, root):
        files.append(file)
    else:
        problems.append(escapes(str(file), 1, 1, f"`{file.name}`", root_name, code="symlink"))


def escapes(file: str, line: int, col: int, what: str, root_name: str, code: str) -> Diagnostic:
    """`what` (a spec, a template, `templates/`) leads outside the directory `root_name` through a
    symlink. Neither the target's path nor its content is named, and the reporter must not quote
    `file`'s line (it may be the symlink itself, whose "lines" are the target's)."""
    where = f"{root_name}/"
    return Diagnostic(file, line, col, "", f"{what} is a symlink to a place outside {where}; it is not read",
                      f"specs and templates must be files inside {where}: copy the file in, or point the "
                      f"symlink at a file inside {where}", code=code, redact_source=True)


def within(path: Path, root: Path) -> bool:
    """Whether `path`'s real location (every symlink resolved) is inside the real directory `root`."""
    return path.resolve().is_relative_to(root)


def templates_home(file: Path) -> Path | None:
    """The real directory that holds the `templates/` serving `file`: the nearest one at or above
    the file's real location. Everything `extends` reads for a spec must lie inside it."""
    for directory in file.resolve().parents:
        if directory.name == TEMPLATES_DIR:
            return directory.parent
        if (directory / TEMPLATES_DIR).is_dir():
            return directory
    return None
