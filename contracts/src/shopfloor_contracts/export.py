"""Export one JSON Schema per event (envelope + payload) and an AsyncAPI document.

`python -m shopfloor_contracts.export` rewrites contracts/schemas/;
`python -m shopfloor_contracts.export --check` exits 1 when a checked-in file is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shopfloor_contracts.registry import EVENTS
from shopfloor_contracts.topics import TOPICS, Topic

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "schemas"


def event_schema(event_type: str) -> dict[str, Any]:
    spec = EVENTS[event_type]
    schema = spec.message_model().model_json_schema(mode="serialization")
    schema["title"] = event_type
    schema["$id"] = f"urn:shopfloor:{spec.topic}:{event_type}:v{spec.version}"
    props = schema["properties"]
    props["event_type"] = {"const": event_type, "title": "Event Type", "type": "string"}
    props["schema_version"] = {"const": spec.version, "title": "Schema Version", "type": "integer"}
    return schema


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for topic in TOPICS.values():
        types = sorted(t for t, s in EVENTS.items() if s.topic == topic.name)
        channels[topic.name] = {
            "address": topic.name,
            "description": f"key: {topic.key}; {topic.partitions} partitions; "
            f"producer: {topic.producer}; {_access(topic)}",
            "tags": [{"name": "private" if topic.private else "public"}],
            "x-private": topic.private,
            "x-readers": list(topic.readers),
            "messages": {
                t: {"payload": {"$ref": f"{topic.name}/{t}.v{EVENTS[t].version}.json"}}
                for t in types
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "shopfloor events", "version": "1"},
        "defaultContentType": "application/json",
        "channels": channels,
    }


def _access(topic: Topic) -> str:
    readers = ", ".join(topic.readers)
    if topic.private:
        return f"PRIVATE (personal data): readable only by {readers}; never by analysts"
    return f"public (no personal data): readers {readers}"


def rendered() -> dict[str, str]:
    files = {
        f"{spec.topic}/{name}.v{spec.version}.json": event_schema(name)
        for name, spec in EVENTS.items()
    }
    files["asyncapi.json"] = asyncapi()
    return {path: json.dumps(doc, indent=2, sort_keys=True) + "\n" for path, doc in files.items()}


def stale_files(root: Path) -> list[str]:
    wanted = rendered()
    stale = [
        p
        for p, text in wanted.items()
        if not (root / p).is_file() or (root / p).read_text() != text
    ]
    extra = [
        str(p.relative_to(root))
        for p in root.rglob("*.json")
        if str(p.relative_to(root)) not in wanted
    ]
    return sorted(stale + extra)


def write(root: Path) -> None:
    for old in root.rglob("*.json"):
        old.unlink()
    for path, text in rendered().items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when files are stale")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    if args.check:
        stale = stale_files(args.dir)
        for path in stale:
            print(f"stale contract schema: {path} (run `make contracts`)", file=sys.stderr)
        return 1 if stale else 0
    write(args.dir)
    print(f"wrote {len(rendered())} files under {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
