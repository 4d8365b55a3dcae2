"""Every README snippet as a new user meets it: Python blocks parse, their imports resolve,
self-contained ones run, and every command in a ``bash`` block parses with its own parser.

Robust to new snippets: blocks are found by their fences and parametrised by index, so a
block added to the README is checked without editing this file. Blocks that build their data
with ``get_loaders(`` are run by ``tests/test_readme.py``; the rest run here. A block over
variables it never defines (a fragment) only has to parse and import.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: words that make a block too slow for the default suite (big data, big networks)
SLOW_WORDS = ("cifar", "wrn-22-2", "resnet", "mnist1d-large", "test_size=20000")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


PY = _blocks("python")
SH = _blocks("bash")


def _free_names(code: str) -> set[str]:
    """Names a block reads but never binds (nor imports), builtins aside (scope-blind)."""
    tree = ast.parse(code)
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loaded - bound - set(dir(builtins))


def _imports_only(code: str) -> str:
    """The block's import statements, one module per line (to check they resolve)."""
    tree = ast.parse(code)
    keep = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return "\n".join(ast.unparse(n) for n in keep)


def test_the_readme_has_snippets() -> None:
    assert len(PY) >= 5 and len(SH) >= 3


@pytest.mark.parametrize("index", range(len(PY)))
def test_python_block_parses_and_its_imports_resolve(index: int) -> None:
    code = PY[index]
    compile(code, f"README.md[python block {index}]", "exec")  # SyntaxError names the block
    exec(compile(_imports_only(code), f"README.md[python block {index} imports]", "exec"), {})


def _self_contained() -> list[object]:
    params = []
    for i, code in enumerate(PY):
        if _free_names(code) or "get_loaders(" in code:  # fragment, or run by test_readme.py
            continue
        slow = any(w in code.lower() for w in SLOW_WORDS)
        params.append(pytest.param(i, marks=[pytest.mark.slow] if slow else []))
    return params


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Models a snippet registers vanish after the test."""
    from hvgp import registry

    registry.model_names()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))


@pytest.mark.parametrize("index", _self_contained())
def test_self_contained_python_block_runs(index: int, scratch_registry: None,
                                          monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # files a snippet writes (reliability.png, ...) land here
    code = re.sub(r"epochs=\d+", "epochs=1", PY[index])
    exec(compile(code, f"README.md[python block {index}]", "exec"), {})


def test_the_gp_snippet_defines_its_data() -> None:
    """Issue #16: the GP snippet used ``x_train`` without defining it."""
    gp = [code for code in PY if "SVGPClassifier(" in code]
    assert gp, "the README lost its GP snippet"
    for code in gp:
        assert _free_names(code) == set(), f"undefined in the GP snippet: {_free_names(code)}"


# ---- commands --------------------------------------------------------------------------------
def _commands() -> list[str]:
    """Each command line of the bash blocks (continuations joined, comments and env dropped)."""
    out = []
    for block in SH:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if not line or line.startswith("#") or "..." in line:
                continue
            words = shlex.split(line)
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                words = words[1:]  # HVGP_QUICK=1 make demo
            if words:
                out.append(shlex.join(words))
    return out


class _Refused(Exception):
    pass


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and its sub-command parsers, recursively."""
    subs = [q for a in parser._actions if isinstance(a, argparse._SubParsersAction)
            for q in a.choices.values()]
    return [parser, *(r for q in subs for r in _all_parsers(q))]


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse without exiting: a refused command raises with argparse's message."""
    def error(message: str) -> None:
        raise _Refused(message)

    for q in _all_parsers(parser):
        q.error = error  # type: ignore[method-assign]
    return parser.parse_args(argv)


@pytest.mark.parametrize("command", _commands())
def test_bash_command_parses_as_written(command: str) -> None:
    words = shlex.split(command)
    if words[0] == "hvgp":
        from hvgp.cli import build_parser

        _parse(build_parser(), words[1:])
    elif words[0] == "torchrun" or words[:3] == ["python", "-m", "hvgp.distributed"]:
        from hvgp.distributed import _parser

        assert "hvgp.distributed" in words
        _parse(_parser(), words[words.index("hvgp.distributed") + 1:])
    elif words[0] == "make":
        targets = re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
        assert set(words[1:]) <= set(targets), f"Makefile has no target {words[1:]}"
    elif words[0] in ("bash", "python", ".venv/bin/python") and len(words) > 1:
        script = next(w for w in words[1:] if not w.startswith("-"))
        assert (ROOT / script).is_file(), f"{script} does not exist"
    else:
        pytest.skip(f"not a command this test knows how to check: {words[0]}")
