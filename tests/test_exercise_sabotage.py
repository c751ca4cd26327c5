"""Every exercise step's checks can fail: one plausible slip per step, through the step's own command.

Each test copies a reference module with one slip a learner makes when writing that step
(``_sabotaged`` of tests/test_impl_option.py), runs the **Checks:** command of the phase's
exercise.md (its paths and ``-k``, read from the file) with ``--impl`` pointing at the copy, and
expects a failure that names the test catching the slip. Steps whose command has no ``--impl``
(Phase 3 Step 4: the reference's scaling rules) get the module through the ``--impl`` name the
phase declares for it. Phase 4 Step 2 has no such name (its tests call Phase 2's ``derive`` and
``TokenLoader`` directly), so its slip was checked by hand on the reference, not here.

Slips that once passed their step (false greens), and the test that now catches each, are named
in the comments.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_exercises import parse, steps
from tests.test_impl_option import ENCODE_CHUNK, MERGES, TOKENIZER_FILE, _broken_copy, _pytest, _sabotaged


def _run_step(phase: str, step: int, impls: dict[str | None, Path], pythonpath: Path | None = None,
              extra: tuple[str, ...] = ()):
    """Run Step ``step`` of ``phases/<phase>/exercise.md``: its paths and -k, with ``impls``
    (name, None for the bare --impl -> file) for the files its command names, plus any others."""
    (command,) = [cmd for title, cmd, _ in steps(phase) if title.startswith(f"Step {step} ")]
    paths, named, expr = parse(command)
    missing = {name for name, _ in named} - set(impls)
    assert not missing, f"{phase} Step {step}'s command takes --impl {missing}: give a file for each"
    args = [f"--impl={path}" if name is None else f"--impl={name}={path}" for name, path in impls.items()]
    return _pytest(*paths, *args, "-k", expr, *extra, pythonpath=pythonpath)


def _fails_at(result, test: str) -> None:
    """The run failed (exit 1, not a usage error) and pytest's summary lists ``test`` as FAILED."""
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    named = re.compile(rf"::{re.escape(test)}(?=[\[ ]|$)")
    print("\n".join(failed))                  # what the step's command reported (pytest -s shows it)
    assert result.returncode == 1 and any(named.search(line) for line in failed), result.stdout[-3000:]


# -- Phase 0: the tokenizer --------------------------------------------------------------------

def test_phase0_step3_trusting_stale_heap_counts_fails(tmp_path):
    # Step 3 slip: the popped heap count is used without checking it is still current.
    stale_check = ("        if -neg != current:\n"
                   "            heapq.heappush(heap, (-current, pair))     # stale: requeue with the true count\n"
                   "            continue\n")
    path = _broken_copy(tmp_path, stale_check, "", reference=MERGES)
    _fails_at(_run_step("phase0_tokenizer", 3, {None: path}, tmp_path), "test_incremental_matches_naive_recount")


def test_phase0_step4_negative_ids_decoded_from_the_end_fails(tmp_path):
    # Step 4 slip: decode checks only `i < n`, so id -1 silently decodes as the last token.
    path = _sabotaged(tmp_path, "phases/phase0_tokenizer/bpe.py", "            if 0 <= i < n:\n",
                      "            if i < n:\n")
    _fails_at(_run_step("phase0_tokenizer", 4, {None: path}), "test_decode_rejects_ids_out_of_range")


def test_phase0_step6_load_without_the_missing_file_check_fails(tmp_path):
    # Step 6 slip: load reads the file without checking it exists (an OSError, no "no tokenizer").
    path = _broken_copy(tmp_path,
                        "    if not path.exists():\n"
                        "        raise UserError(f\"no tokenizer at {path}; train one with \"\n"
                        "                        f\"`mini-nanochat tokenizer train --vocab-size 8192`\")\n", "",
                        reference=TOKENIZER_FILE)
    _fails_at(_run_step("phase0_tokenizer", 6, {None: path}, tmp_path), "test_load_errors_name_the_file")


def test_phase0_step8_rightmost_pair_on_ties_fails(tmp_path):
    # Step 8 slip: the Python encoder merges the rightmost of equal-rank pairs (<=), not tiktoken's
    # leftmost. The golden text catches it (a run of 7 spaces); 300 random texts did not, when checked.
    path = _broken_copy(tmp_path, "(best_rank is None or r < best_rank)", "(best_rank is None or r <= best_rank)",
                        reference=ENCODE_CHUNK)
    _fails_at(_run_step("phase0_tokenizer", 8, {None: path}, tmp_path),
              "test_fast_path_matches_python_on_the_golden_text")


# -- Phase 1: the transformer ------------------------------------------------------------------

# Step 3 slips, both false greens once: RoPE on pairs (2i, 2i + 1) instead of (i, i + D/2) passed
# step 2's tests (both attention paths rotate alike); q rotated alone passed every model test
# (the model always starts at position 0). Each now fails at the test named beside it.
@pytest.mark.parametrize("old, new, caught_by", [
    ("x1, x2 = x[..., :d], x[..., d:]", "x1, x2 = x[..., 0::2], x[..., 1::2]",
     "test_rotary_turns_pairs_i_and_i_plus_half_by_position"),
    ("q, k = apply_rotary(q, q_cos, q_sin), apply_rotary(k, cos, sin)", "q = apply_rotary(q, q_cos, q_sin)",
     "test_attention_sees_relative_positions_only_rotary"),
], ids=["interleaved_pairs", "q_alone"])
def test_phase1_step3_rope_slips_fail(tmp_path, old, new, caught_by):
    layers = _sabotaged(tmp_path, "phases/phase1_transformer/layers.py", old, new,
                        used_by=("phases/phase1_transformer/model.py",))
    r = _run_step("phase1_transformer", 3, {None: tmp_path / "my_model.py", "layers": layers}, tmp_path)
    _fails_at(r, caught_by)


@pytest.mark.slow
def test_phase1_step6_softcap_loss_averaged_over_ignored_targets_fails(tmp_path):
    # Step 6 slip: the softcap loss's mean divides by every position, ignored (-1) targets included.
    layers = _sabotaged(tmp_path, "phases/phase1_transformer/layers.py",
                        "return per_token.sum() / (targets >= 0).sum()", "return per_token.mean()",
                        used_by=("phases/phase1_transformer/model.py",))
    r = _run_step("phase1_transformer", 6, {None: tmp_path / "my_model.py", "layers": layers}, tmp_path)
    _fails_at(r, "test_loss_equals_cross_entropy_of_the_logits")


# -- Phase 3: the optimizers -------------------------------------------------------------------

def test_phase3_step2_one_norm_for_a_whole_stack_fails(tmp_path):
    # Step 2 slip: a stack of matrices is divided by one Frobenius norm, not one per matrix.
    path = _sabotaged(tmp_path, "phases/phase3_optimizers/muon.py",
                      "X = X / (X.norm(dim=(-2, -1), keepdim=True) * 1.01 + 1e-6)", "X = X / (X.norm() * 1.01 + 1e-6)")
    _fails_at(_run_step("phase3_optimizers", 2, {None: path}), "test_newton_schulz_works_on_stacks")


def test_phase3_step4_weight_decay_scaled_by_the_batch_not_its_root_fails(tmp_path):
    # Step 4 slip (the step has no --impl: the scaling module goes in by its name): the weight
    # decay grows with B / B_ref instead of sqrt(B / B_ref).
    path = _sabotaged(tmp_path, "phases/phase3_optimizers/scaling.py",
                      "weight_decay=weight_decay * math.sqrt(batch / ref_batch) * d_ref / d",
                      "weight_decay=weight_decay * (batch / ref_batch) * d_ref / d")
    _fails_at(_run_step("phase3_optimizers", 4, {"scaling": path}), "test_scaling_rules_reproduce_nanochats_table")


def test_phase3_step5_normuon_with_beta2_swapped_fails(tmp_path):
    # Step 5 slip: NorMuon's running second moment takes the new value with weight beta2, not 1 - beta2.
    path = _sabotaged(tmp_path, "phases/phase3_optimizers/muon.py", 'v.lerp_(sq / U.size(dim), 1 - group["beta2"])',
                      'v.lerp_(sq / U.size(dim), group["beta2"])')
    _fails_at(_run_step("phase3_optimizers", 5, {None: path}), "test_normuon_matches_the_two_pass_formula")


# -- Phase 4: distributed training (torchrun launches) ------------------------------------------

@pytest.mark.slow
@pytest.mark.distributed
def test_phase4_step4_muon_gradients_summed_not_averaged_fails(tmp_path):
    # Step 4 slip: the Muon stack's reduce_scatter sums the ranks' gradients (the default op).
    path = _sabotaged(tmp_path, "phases/phase4_ddp/zero.py",
                      "work = reduce_scatter(mine, stack, op=avg_op(), async_op=True)",
                      "work = reduce_scatter(mine, stack, async_op=True)")
    _fails_at(_run_step("phase4_ddp", 4, {"zero": path}), "test_two_ranks_train_the_same_model_as_one_process[zero]")


@pytest.mark.slow
@pytest.mark.distributed
def test_phase4_step5_slice_of_an_unpadded_muon_stack_fails(tmp_path):
    # Step 5 slip: load_state_dict slices the Muon stack without padding it to a multiple of W first.
    path = _sabotaged(tmp_path, "phases/phase4_ddp/zero.py",
                      "                        v = torch.cat([v, v.new_zeros((per * self.world - K, *v.shape[1:]))])"
                      "  # (per*W, ...)\n", "")
    # -x: the in-process slice test (test_zero.py, first) catches it; the torchrun resumes after it
    # would each wait out the collective timeout (300 s) on the mismatched shapes.
    _fails_at(_run_step("phase4_ddp", 5, {"zero": path}, extra=("-x",)), "test_loading_a_full_state_keeps_this_ranks_slice")


# -- Phase 5: the data pipeline ----------------------------------------------------------------

def test_phase5_step2_locate_with_bisect_left_fails(tmp_path):
    # Step 2 slip: bisect_left puts a document that starts a row group into the previous one.
    path = _sabotaged(tmp_path, "phases/phase5_data/stream.py", "u = bisect.bisect_right(self.starts, offset) - 1",
                      "u = bisect.bisect_left(self.starts, offset) - 1")
    _fails_at(_run_step("phase5_data", 2, {"stream": path}), "test_document_numbers_run_across_epochs")


def test_phase5_step4_an_error_that_hides_the_file_fails(tmp_path):
    # Step 4 slip: the loader wraps the stream's error in one that no longer names the shard.
    path = _sabotaged(tmp_path, "phases/phase5_data/loader.py",
                      "        self.stream = DocumentStream(paths, rank, world_size)\n",
                      "        try:\n"
                      "            self.stream = DocumentStream(paths, rank, world_size)\n"
                      "        except Exception as e:\n"
                      "            raise UserError(\"cannot read the training shards\") from e\n")
    _fails_at(_run_step("phase5_data", 4, {None: path}), "test_corrupt_shard_is_named")


def test_phase5_step5_partial_file_reopened_for_writing_fails(tmp_path):
    # Step 5 slip: a retry opens the .partial file with "wb", so it starts over instead of continuing.
    path = _sabotaged(tmp_path, "phases/phase5_data/download.py", 'with open(partial, "ab") as f:',
                      'with open(partial, "wb") as f:')
    _fails_at(_run_step("phase5_data", 5, {"download": path}), "test_retries_continue_the_partial_file")
