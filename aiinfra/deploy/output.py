"""Writing rendered files: YAML with a header naming the command, stable key order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HEADER = "# Rendered by `aiinfra deploy` from the project's config: edit conf/ and render again.\n"


def write_yaml(path: Path, *docs: dict[str, Any]) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    text = "---\n".join(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False) for doc in docs)
    path.write_text(HEADER + text)
    return path


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def read_yaml_docs(path: Path) -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text()) if d]
