"""The generated reference pages match the code, and every troubleshooting pointer lands."""

from __future__ import annotations

import importlib.util
import re
import sys

from runtime.troubleshooting import ANCHORS, GUIDE
from tests.support.paths import REPO


def generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "gen_reference_docs", REPO / "tools" / "gen_reference_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_reference_docs", module)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_generated_from_the_config_model() -> None:
    gen = generator()
    assert (REPO / "docs" / "configuration.md").read_text() == gen.config_reference(), (
        "docs/configuration.md is out of date: run tools/gen_reference_docs.py"
    )


def test_topics_reference_is_generated_from_the_schemas() -> None:
    gen = generator()
    assert (REPO / "docs" / "topics.md").read_text() == gen.topics_reference(), (
        "docs/topics.md is out of date: run tools/gen_reference_docs.py"
    )


def test_the_reference_names_every_key_and_topic() -> None:
    from runtime.config import Settings
    from schemas.topics import ALL_TOPICS

    config = (REPO / "docs" / "configuration.md").read_text()
    for section, field in Settings.model_fields.items():
        assert f"## `{section}`" in config
        model = field.annotation
        for key in getattr(model, "model_fields", {}):
            assert f"| `{key}` |" in config, f"{section}.{key}"
    topics = (REPO / "docs" / "topics.md").read_text()
    for spec in ALL_TOPICS:
        assert f"| `{spec.suffix}` |" in topics
        assert f"## {spec.model.__name__}" in topics


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_troubleshooting_pointer_names_a_section_that_exists() -> None:
    guide = (REPO / GUIDE).read_text()
    sections = {slug(m) for m in re.findall(r"^#{2,3} (.+)$", guide, re.M)}
    assert set(ANCHORS) <= sections, set(ANCHORS) - sections
    pointer = re.compile(r"troubleshooting\.md#([a-z0-9-]+)")
    files = [*REPO.glob("*.md"), *REPO.glob("docs/*.md")]
    for package in ("schemas", "runtime", "producers", "processors", "sinks", "sentinel"):
        files += (REPO / package).rglob("*.py")
    found = {(path.name, anchor) for path in files for anchor in pointer.findall(path.read_text())}
    assert found, "no pointer found: the pattern is wrong"
    assert sorted(a for _, a in found if a not in sections) == []
