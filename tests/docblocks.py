"""The bash blocks of a Markdown page, as a reader pastes them: their text, where they start, whether they
are exempt (a visible `# no-run: reason` line inside the block), and the answers they show (`# -> {...}`
lines after a command)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FENCE = re.compile(r"^```(\w*)\s*$")
NO_RUN = re.compile(r"^\s*#\s*no-run:\s*(?P<reason>\S.*)$")
ANSWER = re.compile(r"^\s*#\s*->\s*(?P<answer>.+)$")
ANSWER_KEY = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:')
EXEMPT = pytest.StashKey[list]()  # "page:line: reason" of each exempt block, printed at the end of the run


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    text: str
    no_run: str | None = None
    answer_keys: list[str] = field(default_factory=list)  # JSON keys the block's shown answers name

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def bash_blocks(path: Path, page: str | None = None) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang, body = i + 1, m.group(1), []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        block = Block(page or path.name, start, "\n".join(body) + "\n")
        for line in body:
            if (no_run := NO_RUN.match(line)) and block.no_run is None:
                block.no_run = no_run.group("reason")
            if answer := ANSWER.match(line):
                block.answer_keys += [k for k in ANSWER_KEY.findall(answer.group("answer")) if k not in
                                      block.answer_keys]
        blocks.append(block)
    return blocks


def script(blocks: list[Block]) -> str:
    """One bash script running the blocks in order in one shell (variables carry over, as when pasted
    into one terminal), stopping at the first failing command; a marker line before each block's output."""
    parts = ["set -eo pipefail"]
    for n, b in enumerate(blocks):
        parts.append(f"printf '\\n@@block {n} {b.where}\\n'")
        parts.append(b.text)
    parts.append("printf '\\n@@done\\n'")
    return "\n".join(parts) + "\n"


def outputs(stdout: str) -> dict[int, str]:
    """Each block's output, by its index, from a run of script()."""
    out: dict[int, str] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("@@block "):
            current = int(line.split()[1])
            out[current] = ""
        elif line == "@@done":
            current = None
        elif current is not None:
            out[current] += line + "\n"
    return out
