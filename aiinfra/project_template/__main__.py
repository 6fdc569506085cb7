"""``python -m aiinfra.project_template``: rewrite the template's component files from their schemas
and refresh its copy of the repository's ``dvc.yaml``."""

from aiinfra.project_template import regenerate, sync_dvc_yaml

for path in [*regenerate(), *sync_dvc_yaml()]:
    print(f"rewrote {path}")
