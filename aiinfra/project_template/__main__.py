"""``python -m aiinfra.project_template``: rewrite the template's component files from their schemas
and refresh its copies of the repository's ``dvc.yaml`` and ``conf/`` (what ``aiinfra init`` writes)."""

from aiinfra.project_template import regenerate, sync_dvc_yaml, sync_project_conf

for path in [*regenerate(), *sync_dvc_yaml(), *sync_project_conf()]:
    print(f"rewrote {path}")
