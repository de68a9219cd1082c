"""Writing small file trees for tests."""

from pathlib import Path


def write(directory: Path, files: dict[str, str]) -> Path:
    """Write each `relative path: text` under `directory` (folders made as needed); return `directory`."""
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return directory
