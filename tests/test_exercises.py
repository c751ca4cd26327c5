"""Every exercise step is checkable: it names one ``pytest … -k …`` command and the tests it runs.

Each ``## Step`` of ``phases/phase0…5/exercise.md`` holds one line

    **Checks:** `pytest <paths> [--impl …] -k "<expression>"` runs `test_a`, `test_b`, …

and this test collects the phase's checkpoint once (``--collect-only``, with a probe plugin)
and checks, for every step, that

* the ``-k`` expression selects exactly the tests the step lists (by function name): no test
  of a later step slips in (Phase 0 Step 1's ``-k split`` used to select a test needing
  ``train``), none is missing;
* every ``--impl NAME`` of the command is a module the phase declares, and every selected test
  loads one of the learner's files, so no test of the step runs on the reference alone while the
  learner thinks it ran theirs;
* every test of the exercise's checkpoint file(s) is listed by some step (nothing unexplained).

The ``-k`` expression is evaluated with pytest's own matcher (the one ``-k`` uses), so one
collection serves all the steps of a phase.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PHASES = ["phase0_tokenizer", "phase1_transformer", "phase2_training", "phase3_optimizers",
          "phase4_ddp", "phase5_data"]
# Checkpoint tests that no step claims, with the reason (reviewed, not forgotten).
UNCLAIMED_OK = {
    "test_phase_of_matches_the_multiplier": "Phase 2: the tools' display helpers, not the exercise's lr_multiplier",
    "test_ctrl_c_saves_the_last_completed_step": "Phase 2: calls the reference loop with a Recipe",
    "test_recipe_hooks_are_called": "Phase 2: calls the reference loop with a Recipe",
    "test_compute_dtype_policy": "bf16 policy: Phase 1 lesson §8, no exercise step",
    "test_bf16_compute_keeps_fp32_weights": "bf16 policy: Phase 1 lesson §8, no exercise step",
    "test_a_warmup_as_long_as_the_run_is_warned_about": "Phase 2: a warning of the reference loop (hardening)",
    "test_ctrl_c_says_how_to_continue": "Phase 2: the reference loop's message on Ctrl-C (hardening)",
    "test_a_block_inside_a_joined_group_reuses_it": "Phase 4: the pipeline's contract with the reference (ADR 0004), no exercise step",
    "test_leaving_the_group_stops_its_threads": "Phase 4: a torch teardown workaround in the reference, no exercise step",
    "test_logits_at_chosen_positions_equal_the_full_forward": "Phase 1: the speed path Phase 7's scorer uses (lesson §1), no exercise step",
    "test_a_shard_rewritten_since_the_checkpoint_is_refused": "Phase 5: hardening of the reference loader (issue 15), no exercise step",
}

PROBE = '''
import json, os
from _pytest.mark import KeywordMatcher
from _pytest.mark.expression import Expression

def pytest_collection_finish(session):
    import conftest
    exprs = json.loads(os.environ["EXERCISE_PROBE_EXPRS"])
    compiled = [Expression.compile(e) for e in exprs]
    items = [dict(nodeid=i.nodeid, name=getattr(i, "originalname", i.name),
                  fixtures=sorted(getattr(i, "fixturenames", ())),
                  selected=[c.evaluate(KeywordMatcher.from_item(i)) for c in compiled])
             for i in session.items]
    specs = [dict(phase=s.phase, name=s.name, fixture=s.fixture, main=s.main) for s in conftest._SPECS.values()]
    with open(os.environ["EXERCISE_PROBE_OUT"], "w") as f:
        json.dump(dict(items=items, specs=specs), f)
'''

CHECKS = re.compile(r"\*\*Checks:\*\*\s*`(pytest [^`]+)`(.*?)(?=\n\n|\n## |\Z)", re.S)


def steps(phase: str) -> list[tuple[str, str, list[str]]]:
    """[(step title, command, listed test names)] of a phase's exercise.md."""
    text = (REPO / "phases" / phase / "exercise.md").read_text(encoding="utf-8")
    out = []
    for section in re.split(r"\n(?=## )", text)[1:]:
        title = section.splitlines()[0].lstrip("# ").strip()
        if not title.startswith("Step"):
            continue
        found = CHECKS.findall(section)
        assert len(found) == 1, f"{phase} {title!r}: needs exactly one '**Checks:** `pytest … -k …`' line, has {len(found)}"
        command, tail = found[0]
        out.append((title, command, re.findall(r"`(test_\w+)`", tail)))
    assert out, f"{phase}/exercise.md has no '## Step' sections"
    return out


def parse(command: str) -> tuple[list[str], list[tuple[str | None, str]], str]:
    """``pytest PATHS --impl [NAME=]PATH … -k EXPR`` -> (paths, impls, expression)."""
    words = shlex.split(command)[1:]
    paths, impls, expr = [], [], None
    while words:
        word = words.pop(0)
        if word == "-k":
            expr = words.pop(0)
        elif word.startswith("--impl"):
            value = word.split("=", 1)[1] if word.startswith("--impl=") else words.pop(0)
            name, _, path = value.rpartition("=")
            impls.append((name or None, path))
        elif word.startswith("-"):
            raise AssertionError(f"{command!r}: unexpected option {word}")
        else:
            paths.append(word)
    assert expr, f"{command!r} names no -k expression"
    return paths, impls, expr


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """phase -> (its steps, the probe's items and specs), one collection per phase."""
    cache: dict[str, tuple] = {}

    def get(phase: str):
        if phase not in cache:
            tmp = tmp_path_factory.mktemp(phase)
            (tmp / "exercise_probe.py").write_text(PROBE)
            parsed = [(title, parse(cmd), names) for title, cmd, names in steps(phase)]
            env = {**os.environ, "EXERCISE_PROBE_EXPRS": json.dumps([p[2] for _, p, _ in parsed]),
                   "EXERCISE_PROBE_OUT": str(tmp / "out.json"),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH", "")]))}
            r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "exercise_probe",
                                "--collect-only", "-q", f"phases/{phase}"],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            cache[phase] = (parsed, json.loads((tmp / "out.json").read_text()))
        return cache[phase]

    return get


@pytest.mark.parametrize("phase", PHASES)
def test_every_step_selects_exactly_its_tests_on_the_learners_file(phase, collected):
    parsed, probe = collected(phase)
    specs = [s for s in probe["specs"] if s["phase"] == phase]
    problems = []
    for index, (title, (paths, impls, expr), listed) in enumerate(parsed):
        where = f"{phase} {title!r} (-k {expr!r})"
        if not listed:
            problems.append(f"{where}: lists no tests after its Checks command")
        for path in paths:
            if not (REPO / path).exists():
                problems.append(f"{where}: {path} does not exist")
        items = [i for i in probe["items"] if i["selected"][index]
                 and any(i["nodeid"] == p or i["nodeid"].startswith(p.rstrip("/") + ("/" if (REPO / p).is_dir() else "::"))
                         for p in paths)]
        names = {i["name"] for i in items}
        if names != set(listed):
            problems.append(f"{where}: selects {sorted(names)}, the step lists {sorted(set(listed))}")
        fixtures = []
        for name, _ in impls:
            found = [s["fixture"] for s in specs if (s["name"] == name if name else s["main"])]
            if not found:        # a bare --impl PATH replaces every main module (Phase 3: adamw and muon)
                problems.append(f"{where}: --impl {name or 'PATH'} is not one of {phase}'s modules")
            fixtures += found
        for item in items if impls else ():
            if not set(fixtures) & set(item["fixtures"]):
                problems.append(f"{where}: {item['nodeid']} loads none of the learner's files "
                                f"(fixtures {fixtures}): it would pass on the reference")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("phase", PHASES)
def test_every_checkpoint_test_belongs_to_a_step(phase, collected):
    parsed, probe = collected(phase)
    claimed = {name for _, _, listed in parsed for name in listed}
    files = {p for _, (paths, _, _), _ in parsed for p in paths}
    covered = [i for i in probe["items"]
               if any(i["nodeid"].startswith(f.rstrip("/")) for f in files)]
    unclaimed = sorted({i["name"] for i in covered} - claimed - set(UNCLAIMED_OK))
    assert not unclaimed, f"{phase}: tests of the exercise's files that no step lists: {unclaimed}"
