"""``aiinfra plugins``: installed plugins, their status, hooks, components and commands."""

from __future__ import annotations

import json
from typing import Any


def list_plugins(as_json: bool = False) -> int:
    from aiinfra.plugins.manager import get_plugins

    plugins = get_plugins()
    by_provider = plugins.registry.by_provider()
    commands = plugins.commands()
    rows: list[dict[str, Any]] = []
    for info in plugins.infos:
        comps = by_provider.get(info.provider, []) if info.status == "loaded" else []
        rows.append(
            {
                "name": info.name,
                "distribution": info.dist,
                "version": info.version,
                "entry_point": info.value,
                "status": info.status,
                "reason": info.reason,
                "api": info.api,
                "hooks": info.hooks,
                "components": [
                    {"kind": c.kind, "name": c.name, "target": c.target, "description": c.description}
                    for c in sorted(comps, key=lambda c: (c.kind, c.name))
                ],
                "commands": sorted(n for n, (_, _, p) in commands.items() if p == info.provider),
            }
        )
    if as_json:
        print(json.dumps({"plugins": rows}, indent=2))
        return 0
    for row in rows:
        status = "" if row["status"] == "loaded" else f"  [{row['status']}: {row['reason']}]"
        print(f"{row['distribution']} {row['version']}  (entry point '{row['name']}' -> {row['entry_point']}){status}")
        if row["hooks"]:
            print(f"  hooks: {', '.join(row['hooks'])}")
        for comp in row["components"]:
            print(f"  {comp['kind']:<8} {comp['name']:<14} {comp['description']}")
        for name in row["commands"]:
            print(f"  command  {name}")
    if not rows:
        print("no plugins installed (aiinfra itself is not installed as a distribution?)")
    return 0
