"""The docs are tests: every ```python and ```bash block of README.md and docs/*.md runs.

One test per file. Its blocks run in order, as written, in a fresh temporary folder, with
the venv of the running interpreter first on PATH (so `nirs4all-store` and `python` are the
checkout's). Python blocks of one file share one interpreter and one namespace, as when a
reader pastes them one after the other into the same session; bash blocks run with
`bash -e -o pipefail` in the same folder. A block whose info string says `notest`
(```` ```bash notest ````) is skipped: the README's install line (CI runs it itself), a
PostgreSQL URL, a placeholder. A failure names the file, the block number and its line, and
shows the output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
RUNNABLE = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
# Guards against a hung block only (a lock wait, a server URL): nothing asserts on duration.
FILE_TIMEOUT_S = 900
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\n]*)$")


@dataclass
class Block:
    number: int  # 1-based among the python/bash blocks of the file
    line: int  # line of the opening fence
    lang: str  # "python" or "bash"
    code: str
    skip: bool


def code_blocks(text: str) -> list[Block]:
    """The python/bash fenced blocks of a Markdown text, in order (others are ignored)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match.group(1), match.group(2).split()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        lang = RUNNABLE.get(info[0].lower()) if info else None
        if lang is not None:
            blocks.append(
                Block(len(blocks) + 1, start + 1, lang, "\n".join(body) + "\n", "notest" in info)
            )
    return blocks


# Runs in a fresh folder: argv[1] is a JSON file of the blocks, argv[2] the doc's name.
DRIVER = r"""
import json, subprocess, sys, traceback
sys.stderr = sys.stdout
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__"}
for b in blocks:
    where = f"{sys.argv[2]} block {b['number']} ({b['lang']}, line {b['line']})"
    print(f"\n@@@ {where}", flush=True)
    if b["lang"] == "python":
        try:
            exec(compile(b["code"], where, "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"@@@ FAILED {where}", flush=True)
            sys.exit(1)
        sys.stdout.flush()
    else:
        status = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", b["code"]], stderr=subprocess.STDOUT
        ).returncode
        if status != 0:
            print(f"@@@ FAILED {where}: exit status {status}", flush=True)
            sys.exit(1)
"""


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NIRS4ALL_STORE_URL", "PYTHONPATH")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_the_collector_finds_marks_and_numbers_blocks() -> None:
    text = (
        "intro\n```bash notest\npip install x\n```\n\n```python\nx = 1\n```\n"
        "```text\nnot code\n```\n````python\n```nested```\nprint(x)\n````\n"
    )
    blocks = code_blocks(text)
    assert [(b.number, b.line, b.lang, b.skip) for b in blocks] == [
        (1, 2, "bash", True),
        (2, 6, "python", False),
        (3, 12, "python", False),
    ]
    assert blocks[2].code == "```nested```\nprint(x)\n"


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_doc_examples_run_as_written(doc: Path, tmp_path: Path) -> None:
    blocks = [b for b in code_blocks(doc.read_text(encoding="utf-8")) if not b.skip]
    if not blocks:
        pytest.skip(f"{doc.name}: no runnable block")
    name = doc.relative_to(REPO_ROOT).as_posix()
    work = tmp_path / "work"
    work.mkdir()
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps([asdict(b) for b in blocks]), encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, "-c", DRIVER, str(spec), name],
            cwd=work,
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=FILE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"{name}: timed out after {FILE_TIMEOUT_S}s\n{out[-6000:]}")
    if result.returncode != 0:
        failed = [ln for ln in result.stdout.splitlines() if ln.startswith("@@@ FAILED")]
        pytest.fail(
            f"{(failed[-1][11:] if failed else name)} (exit {result.returncode}); "
            f"mark a block that must not run ```bash notest\n{result.stdout[-6000:]}"
        )
