"""``python -m aiinfra.project_template``: rewrite the template's component files from their schemas."""

from aiinfra.project_template import regenerate

for path in regenerate():
    print(f"rewrote {path}")
