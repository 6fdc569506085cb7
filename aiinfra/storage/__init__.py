"""Where aiinfra's files live: local paths or fsspec URLs (``s3://``, ``gs://``, ``az://``,
``abfs://``, ``file://``), one way for every stage (:mod:`aiinfra.storage.urls`), and the one
object-store endpoint setting that every process aiinfra starts inherits
(:mod:`aiinfra.storage.endpoint`). Import-light: fsspec and its protocol packages are imported
where a URL is opened."""
