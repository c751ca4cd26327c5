"""The project's own rules, checked: phase layout, import direction, dependencies vs ADR-0001."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PHASES = sorted(p for p in (REPO / "phases").iterdir() if p.is_dir() and p.name.startswith("phase"))
EXPECTED = ["phase0_tokenizer", "phase1_transformer", "phase2_training", "phase3_optimizers", "phase4_ddp",
            "phase5_data", "phase6_inference", "phase7_eval", "phase8_sft", "phase9_serving"]


def _built(phase: Path) -> bool:
    return "not built yet" not in (phase / "README.md").read_text().lower()


def test_ten_phase_packages_exist():
    assert [p.name for p in PHASES] == EXPECTED


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.name)
def test_phase_layout(phase):
    assert (phase / "README.md").is_file()
    files = {f.name for f in phase.iterdir() if f.is_file()}
    if not _built(phase):  # a phase not started holds its scope and nothing that pretends
        assert files == {"README.md"}, f"{phase.name} is 'not built yet' but has {sorted(files)}"
        return
    for name in ("ADR.md", "COMPARISON.md", "exercise.md", "__init__.py"):
        assert name in files, f"{phase.name} has no {name}"
    assert any(f.startswith("test_") and f.endswith(".py") for f in files), "no checkpoint tests"
    modules = [f for f in files if f.endswith(".py") and not f.startswith(("test_", "conftest", "__init__"))]
    assert modules, "no module of its own"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.name)
def test_import_rules(phase):
    """A phase imports only earlier phases (or itself); nothing in phases/ imports mini_nanochat."""
    number = int(re.match(r"phase(\d+)_", phase.name).group(1))
    for path in phase.rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith("mini_nanochat"), f"{path} imports {name}"
            m = re.match(r"phases\.phase(\d+)_", name)
            if m:
                assert int(m.group(1)) <= number, f"{path} imports a later phase: {name}"


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    return rel.name if rel.parts[0] == "tools" else ".".join(rel.parts).removesuffix(".__init__")


def test_no_import_cycles():
    """phases/, mini_nanochat/ and tools/ import each other without a cycle (function-level imports too)."""
    files = [*(REPO / "phases").rglob("*.py"), *(REPO / "mini_nanochat").glob("*.py"), *(REPO / "tools").glob("*.py")]
    modules = {_module_name(f): f for f in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{a.name}" for a in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


FORMAT_NAMES = ("metrics.jsonl", "meta.json", "model.safetensors", "optim.pt", "tokenizer.json", "train_info.json",
                "manifest.json")
FORMULAS = ("warmdown_ratio *", "* warmdown_ratio", "** 0.383", "2 ** 19", "1 - 0.9 **", "log2(")
FORBIDDEN_IMPORTS = ("pyarrow", "safetensors", "mini_nanochat")


@pytest.mark.parametrize("tool", sorted((REPO / "tools").glob("*.py")), ids=lambda p: p.name)
def test_tools_are_views(tool):
    """ADR 0002: a tool parses arguments and displays phase functions; it defines no format, formula
    or schedule of its own (file names, parquet or safetensors reading, scaling and schedule
    arithmetic live in the phases), and stays under 350 lines."""
    source = tool.read_text()
    assert len(source.splitlines()) <= 350, f"{tool.name} has {len(source.splitlines())} lines; the cap is 350"
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in FORMAT_NAMES:
            pytest.fail(f"{tool.name}:{node.lineno} spells the file name {node.value!r}; import it from its phase")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            bad = [n for n in names if n.split(".")[0] in FORBIDDEN_IMPORTS]
            assert not bad, f"{tool.name}:{node.lineno} imports {bad[0]}: read the format through its phase"
    code = "\n".join(line.split("#")[0] for line in source.splitlines())
    for formula in FORMULAS:
        assert formula not in code, f"{tool.name} computes {formula!r} itself; call the phase that owns it"


@pytest.mark.parametrize("phase", [p for p in PHASES if _built(p)], ids=lambda p: p.name)
def test_one_test_file_per_module(phase):
    """A checkpoint test file is named after the module it tests: test_<module>.py."""
    for test in phase.glob("test_*.py"):
        module = test.name.removeprefix("test_")
        assert (phase / module).is_file(), f"{test.relative_to(REPO)} tests no module {module} of its phase"


def test_modules_have_a_top_docstring_and_stay_readable():
    for path in list((REPO / "phases").rglob("*.py")) + list((REPO / "mini_nanochat").glob("*.py")) \
            + list((REPO / "tools").glob("*.py")):
        if path.name == "__init__.py" and path.parent.name.startswith("phase"):
            continue
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{path} has no top docstring"
        if not path.name.startswith("test_"):
            lines = len(path.read_text().splitlines())
            assert lines <= 400, f"{path} has {lines} lines; split it (budget: 100-300, hard cap 400)"


def test_dependencies_match_adr():
    """ADR-0001 names every dependency pyproject.toml declares (core and extras)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        pytest.skip("tomllib needs Python 3.11")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    adr = (REPO / "docs" / "adrs" / "0001-dependency-policy.md").read_text().lower()
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    for spec in declared:
        name = re.match(r"[A-Za-z0-9_.\-]+", spec).group(0).lower()
        assert name in adr or name.replace("_", "-") in adr, f"{name} is not recorded in ADR-0001"


def test_readme_phase_table_matches_the_phases():
    readme = (REPO / "README.md").read_text()
    for phase in PHASES:
        row = next(line for line in readme.splitlines() if f"phases/{phase.name}/README.md" in line)
        assert ("not built yet" in row) == (not _built(phase)), f"README status of {phase.name} is stale"


def test_demo_switches_follow_the_ablation():
    """Phase 1's ADR: GPTConfig keeps nanochat's switches; the CPU demo sets its own from the
    ablation table (value embeddings and residual scalars off; QK-norm, softcap, "L" on)."""
    from mini_nanochat.pretrain import load_config
    from phases.phase1_transformer.config import GPTConfig
    demo = load_config(REPO / "examples" / "cpu_demo.toml")
    assert (demo.value_embeds, demo.resid_scalars, demo.qk_norm, demo.window_pattern) == (False, False, True, "L")
    assert demo.softcap > 0 and demo.optimizer == "muon"
    # Phase 3's three-seed comparison: nanochat's Muon, with Gram Newton-Schulz's restart off (same bpb, less work)
    assert (demo.normuon, demo.gram_restart, demo.cautious_wd, demo.ns_precondition) == (True, 0, True, "frobenius")
    base = GPTConfig()
    assert base.value_embeds and base.resid_scalars and base.qk_norm and base.softcap > 0
