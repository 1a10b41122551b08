"""atomic_write_section: a generated part of a hand-written document is rewritten, the rest kept."""

from __future__ import annotations

from rnnkit.core.atomic import atomic_write_section

B, E = "<!-- s:begin -->", "<!-- s:end -->"


def test_replaces_only_between_the_markers(tmp_path):
    doc = tmp_path / "RESULTS.md"
    doc.write_text(f"# head\n\n{B}\nold figures\n{E}\n\n## tail, by hand\n", encoding="utf-8")
    atomic_write_section(doc, f"{B}\nnew figures\n{E}", B, E)
    assert doc.read_text(encoding="utf-8") == f"# head\n\n{B}\nnew figures\n{E}\n\n## tail, by hand\n"
    atomic_write_section(doc, f"{B}\nnew figures\n{E}", B, E)  # idempotent
    assert doc.read_text(encoding="utf-8").count("new figures") == 1


def test_without_markers_goes_before_the_anchor_or_at_the_end(tmp_path):
    doc = tmp_path / "RESULTS.md"
    doc.write_text("# head\n\n## first recipe\n", encoding="utf-8")
    atomic_write_section(doc, f"{B}\nx\n{E}", B, E, before="\n## ")
    text = doc.read_text(encoding="utf-8")
    assert text.index(B) < text.index("## first recipe") and text.startswith("# head\n")
    other = tmp_path / "other.md"
    other.write_text("# only a head\n", encoding="utf-8")
    atomic_write_section(other, f"{B}\ny\n{E}", B, E, before="\n## ")
    assert other.read_text(encoding="utf-8") == f"# only a head\n\n{B}\ny\n{E}\n"
