"""The deploy package as a plugin object: its components (``components.py``) and its config dir
(``aiinfra/deploy/conf``: ``server/ray.yaml``), for a plugin manager that does not list them among
the built-ins yet (tests register it with ``aiinfra.testing``'s ``register_plugin``)."""

from __future__ import annotations

from aiinfra.deploy.components import COMPONENTS
from aiinfra.plugins import hookimpl
from aiinfra.plugins.registry import KINDS


@hookimpl
def aiinfra_register_components(register):
    for kind, name, target, schema, description in COMPONENTS:
        if kind in KINDS:  # the "deploy" kind once the registry knows it (the CLI finds targets without it)
            register(kind, name, target=target, schema=schema, description=description)


@hookimpl
def aiinfra_config_searchpath():
    return "pkg://aiinfra.deploy.conf"
