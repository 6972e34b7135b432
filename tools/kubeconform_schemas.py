"""Kubernetes JSON schemas for kubeconform, offline, from the kubernetes-validate package.

kubernetes-validate ships the schemas of each Kubernetes minor version (``v1.XX.0-local`` and
``-local-strict``), but every schema names itself ``https://kubernetes.io/api/...`` (``$id``)
and points at ``/api/_definitions.json``, which resolves to that web address. This writes a copy
whose references are relative to the file, so kubeconform loads them from disk:

    .venv/bin/python tools/kubeconform_schemas.py OUT_DIR 1.25.0 1.37.0

and kubeconform is run with ``-schema-location`` set to
``OUT_DIR/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/`` followed by
``{{ .ResourceKind }}{{ .KindSuffix }}.json`` (tests/support/deploy_tools.py).
Idempotent: a version already converted from the same kubernetes-validate release is kept.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata, resources
from pathlib import Path

REMOTE_DEFINITIONS = '"/api/_definitions.json#'


def convert(source: Path, target: Path) -> int:
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(source.glob("*.json")):
        schema = json.loads(path.read_text())
        schema.pop("$id", None)  # else references resolve against kubernetes.io
        text = json.dumps(schema).replace(REMOTE_DEFINITIONS, '"_definitions.json#')
        (target / path.name).write_text(text)
        count += 1
    return count


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, versions = Path(argv[0]), argv[1:]
    package = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    release = metadata.version("kubernetes-validate")
    for version in versions:
        for flavour in ("local", "local-strict"):
            name = f"v{version.removeprefix('v')}-{flavour}"
            source = Path(str(package / name))
            if not source.is_dir():
                shipped = sorted(p.name for p in Path(str(package)).iterdir() if p.is_dir())
                print(f"kubernetes-validate {release} has no {name}; it ships {shipped}")
                return 1
            target = out / name
            stamp = target / ".kubernetes-validate-version"
            if stamp.is_file() and stamp.read_text() == release:
                continue
            count = convert(source, target)
            stamp.write_text(release)
            print(f"kubeconform schemas: {count} files for {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
