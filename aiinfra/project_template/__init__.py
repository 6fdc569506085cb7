"""A minimal aiinfra project (``conf/``) that :mod:`aiinfra.testing` copies into temporary projects.

Small on purpose (a test's stage run finishes fast), but every component file lists every key of
its schema: Hydra accepts command-line overrides only of keys present in the composed files. When
a schema gains a key, ``python -m aiinfra.project_template`` rewrites the files (values already set
and the comment lines at the top are kept); a test fails until then.
"""

from __future__ import annotations

from pathlib import Path

CONF_DIR = Path(__file__).parent / "conf"


def regenerate(conf_dir: Path = CONF_DIR) -> list[Path]:
    """Rewrite ``conf_dir/<group>/<name>.yaml`` with every key of the component's schema."""
    from omegaconf import OmegaConf

    from aiinfra.plugins.manager import get_plugins

    registry = get_plugins().registry
    changed = []
    for path in sorted(conf_dir.glob("*/*.yaml")):
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        current = OmegaConf.load(path)
        schema = registry.get(path.parent.name, str(current.type)).load_schema()
        if schema is None:
            continue
        full = OmegaConf.merge(OmegaConf.structured(schema), current)
        text = "\n".join([*header, OmegaConf.to_yaml(full).rstrip()]) + "\n"
        if text != path.read_text():
            path.write_text(text)
            changed.append(path)
    return changed


