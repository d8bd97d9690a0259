"""Every code block of README.md and docs/*.md runs, or says why not (issue 28 item 4).

A fenced block tagged ``bash``, ``python``, ``yaml`` or ``toml`` is either preceded by
``<!-- not run: <reason> -->`` (a real budget, a cluster, a server, an install) or runs here, in the
order of its document, in one temporary folder per document that holds copies of ``search_spaces/``
and ``examples/``:

* a Python or YAML block whose first line is ``# NAME.py`` / ``# NAME.yaml`` is written to that file
  for the blocks after it (a YAML space file is then loaded by ``tune_lnl.config.load_experiment``);
* other Python blocks run as plain scripts, other YAML space files are loaded, TOML is parsed;
* bash blocks run with ``bash -e``; searches in them must use ``--smoke`` (or ``--plan``).

Every block, run or not, must at least parse (``bash -n``, ``compile``, YAML, TOML). The documents
that run a search or a training are ``slow``.
"""
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: TOML blocks are only parsed from 3.11 on
    tomllib = None

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LANGS = ("bash", "python", "yaml", "toml")
OPEN = re.compile(r"^(\s*)```(\w*)\s*$")
NOT_RUN = re.compile(r"^\s*<!-- not run: (.+?) -->\s*$")
FILE_NAME = re.compile(r"^#\s*([\w.-]+\.(?:py|yaml))\s*$")
HEAVY = re.compile(r"tune_lnl[. ](search|train)\b|tune_lnl\.(run|train)\(|tune-lnl (search|train)\b")


@dataclass
class Block:
    doc: Path
    line: int          # 1-based line of the opening fence
    lang: str
    text: str
    not_run: str | None  # the reason, when marked

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """``my_losses.py`` for a block whose first line is ``# my_losses.py``."""
        first = self.text.split("\n", 1)[0]
        m = FILE_NAME.match(first)
        return m.group(1) if m and self.lang in ("python", "yaml") else None


def blocks(doc: Path) -> list[Block]:
    """The fenced blocks of one Markdown file (any indentation; untagged fences are skipped)."""
    lines, found, i = doc.read_text().split("\n"), [], 0
    while i < len(lines):
        m = OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2), i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        if lang in LANGS:
            prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            mark = NOT_RUN.match(prev)
            found.append(Block(doc, start + 1, lang, "\n".join(body) + "\n", mark.group(1) if mark else None))
    return found


ALL = [b for d in DOCS for b in blocks(d)]


def _is_space_file(data) -> bool:
    return isinstance(data, dict) and ("method" in data or "methods" in data)


def test_the_documents_have_blocks_and_the_parser_finds_them():
    """A guard for the parser itself: the README's smoke command and a marked block are found."""
    readme = [b for b in ALL if b.doc.name == "README.md"]
    assert any("--smoke" in b.text and b.not_run is None for b in readme)
    assert any(b.not_run for b in readme)
    assert any(b.lang == "python" and b.not_run is None for b in readme)


@pytest.mark.parametrize("block", ALL, ids=lambda b: b.where)
def test_every_block_parses(block, tmp_path):
    """Run or not, a block is valid in its language."""
    if block.lang == "python":
        compile(block.text, block.where, "exec")
    elif block.lang == "yaml":
        yaml.safe_load(block.text)
    elif block.lang == "toml":
        if tomllib is None:
            pytest.skip("tomllib needs Python >= 3.11")
        tomllib.loads(block.text)
    else:
        proc = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
        assert proc.returncode == 0, f"{block.where}: {proc.stderr}"


def test_a_block_not_run_says_why():
    empty = [b.where for b in ALL if b.not_run is not None and len(b.not_run.strip()) < 10]
    assert not empty, f"<!-- not run: --> without a reason: {empty}"


def test_searches_that_run_use_a_smoke_budget():
    """A block that runs (not marked) never starts a search at its real budget."""
    bad = []
    for b in (b for b in ALL if b.not_run is None):
        for line in b.text.replace("\\\n", " ").splitlines():
            search = re.search(r"tune_lnl\.search\b|tune-lnl search\b", line)
            if b.lang == "bash" and search and "--smoke" not in line and "--plan" not in line:
                bad.append(f"{b.where}: {line.strip()}")
            if b.lang == "python" and "tune_lnl.run(" in line and "smoke=True" not in line:
                bad.append(f"{b.where}: {line.strip()}")
    assert not bad, "searches at their real budget in blocks that run:\n" + "\n".join(bad)


def _sandbox(tmp_path: Path) -> Path:
    box = tmp_path / "box"
    box.mkdir()
    ignore = shutil.ignore_patterns("results", "__pycache__", "*.pyc")
    shutil.copytree(REPO / "search_spaces", box / "search_spaces", ignore=ignore)
    shutil.copytree(REPO / "examples", box / "examples", ignore=ignore)
    return box


def _run(cmd: list[str], box: Path, env: dict, block: Block) -> None:
    proc = subprocess.run(cmd, cwd=box, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, (f"{block.where} failed ({block.lang}):\n{block.text}\n"
                                  f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    assert "Traceback" not in proc.stderr, f"{block.where}:\n{proc.stderr[-3000:]}"


def _load_space(path: Path, box: Path, env: dict, block: Block) -> None:
    code = "import sys; from tune_lnl.config import load_experiment; load_experiment(sys.argv[1])"
    _run([sys.executable, "-c", code, str(path)], box, env, block)


def run_block(block: Block, box: Path, env: dict) -> None:
    """Execute one block in the document's sandbox, as the text around it says a user would."""
    name = block.file_name
    if block.lang == "python":
        path = box / (name or f"_block_{block.line}.py")
        path.write_text(block.text)
        if name is None:
            _run([sys.executable, path.name], box, env, block)
    elif block.lang == "yaml":
        path = box / (name or f"_block_{block.line}.yaml")
        path.write_text(block.text)
        if _is_space_file(yaml.safe_load(block.text)):
            _load_space(path, box, env, block)
    elif block.lang == "toml" and tomllib is not None:
        tomllib.loads(block.text)
    elif block.lang == "bash":
        _run(["bash", "-e", "-o", "pipefail", "-c", block.text], box, env, block)


def _doc_param(doc: Path):
    runnable = [b for b in blocks(doc) if b.not_run is None]
    slow = any(HEAVY.search(b.text) for b in runnable if b.lang in ("bash", "python"))
    return pytest.param(doc, id=str(doc.relative_to(REPO)), marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("doc", [_doc_param(d) for d in DOCS if any(b.not_run is None for b in blocks(d))])
def test_the_blocks_of_a_document_run_in_order(doc, tmp_path, data_root):
    box = _sandbox(tmp_path)
    env = {**os.environ, "TUNE_LNL_DATA": str(data_root), "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(box)}
    for block in blocks(doc):
        if block.not_run is None:
            run_block(block, box, env)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    text = re.sub(r"^\s*```.*?^\s*```", "", doc.read_text(), flags=re.S | re.M)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_links_between_the_documents_resolve():
    """Moving text from the README to docs/ kept every relative link and #anchor pointing somewhere."""
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            if not dest.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
