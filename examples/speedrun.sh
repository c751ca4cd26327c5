#!/usr/bin/env bash
# The whole pipeline on one node of 8 x H100: data -> tokenizer -> pretraining (d24, the
# "time-to-GPT-2" shape) -> base evaluation -> SFT -> RL -> chat evaluation -> chat / serve.
#
#   bash examples/speedrun.sh                  # run it (from the repository root, venv active)
#   DRY_RUN=1 bash examples/speedrun.sh        # print the commands instead (tests/test_gpu_configs.py
#                                              # checks each against the real command line)
#   NPROC=4 bash examples/speedrun.sh          # fewer GPUs: the same model, more accumulation
#
# Expected time and cost — figures from nanochat's PUBLISHED runs, not measured by this project
# (we have had no GPU so far; /work/shared/reference/nanochat_spec.md section 11):
#   - nanochat's d24 speedrun pretraining: 1.65 h (99 min, leaderboard run 6) on 8 x H100, which
#     has FlashAttention-3 and fp8; this project uses SDPA and bf16, so expect it to be slower;
#   - nanochat's README: the speedrun takes "about 1.5 h" end to end (without RL);
#   - cost: about $3 per H100-hour, ~$24/h for the node, "about $48" for 2 h, ~$15 on spot.
# Measure your own: tests/gpu/smoke.sh (minutes) prints tok/s and MFU on your GPUs first.
#
# Several nodes: run the SAME torchrun lines on every node with a rendezvous instead of
# --standalone, e.g. on each of 2 nodes
#   TORCHRUN="torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \
#             --rdzv_endpoint=NODE0_ADDR:29500 --rdzv_id=speedrun" bash examples/speedrun.sh
# The run folders ($MINI_NANOCHAT_BASE_DIR/runs) must be on storage every node sees, and the data
# and tokenizer at the same paths on every node (download them on each, or share the folder).
# Only the download, tokenizer, chat and serve steps are single-process; run them on node 0
# (and the downloads/tokenizer on every node if storage is not shared). More in
# phases/phase4_ddp/README.md ("Several nodes") and docs/start/cpu-to-8xh100.md.
set -euo pipefail
cd "$(dirname "$0")/.."

NPROC="${NPROC:-8}"
BASE="${MINI_NANOCHAT_BASE_DIR:-$HOME/.cache/mini-nanochat}"
DATA="$BASE/data/climbmix-400b-shuffle"
TOK="$BASE/tokenizer_32k"
TORCHRUN="${TORCHRUN:-torchrun --standalone --nproc_per_node=$NPROC}"
PATHS=(--set "data_dir=$DATA" --set "tokenizer_dir=$TOK")   # the configs' defaults, under $BASE
export OMP_NUM_THREADS=1                      # one CPU thread per rank: 8 ranks share the node's cores
export PYTORCH_ALLOC_CONF=expandable_segments:True   # less fragmentation at d24 (nanochat does the same)

run() {  # print the command; run it unless DRY_RUN=1
    local arg line="+"
    for arg in "$@"; do                       # quoted only where the shell needs it
        if [[ "$arg" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then line+=" $arg"; else line+=" $(printf '%q' "$arg")"; fi
    done
    echo "$line"
    if [ "${DRY_RUN:-0}" != "1" ]; then "$@"; fi
}

# 1. Data: 8 shards now (enough for the tokenizer), the rest of the 170 in the background.
#    d24 at ratio 8 reads 5.84B tokens: ~170 shards of ~100 MB.
run mini-nanochat data download -n 8
if [ "${DRY_RUN:-0}" = "1" ]; then
    echo "+ mini-nanochat data download -n 170 &"
else
    mini-nanochat data download -n 170 > "$BASE/download.log" 2>&1 &
    DOWNLOAD=$!
fi

# 2. Tokenizer: 32,768 tokens on 2B characters of the first shards (nanochat's settings), then
#    its compression on the validation shard.
run mini-nanochat tokenizer train --vocab-size 32768 --data "$DATA" --out "$TOK"
run mini-nanochat tokenizer eval --tokenizer "$TOK" --no-compare

# 3. Pretraining on all GPUs (wait for the shards first). Prints its plan before the first step.
[ "${DRY_RUN:-0}" = "1" ] || wait "$DOWNLOAD" || { echo "the download failed: see $BASE/download.log"; exit 1; }
run $TORCHRUN -m mini_nanochat pretrain --config examples/gpu_d24_speedrun_8xh100.toml "${PATHS[@]}"

# 4. Base evaluation: bits per byte, CORE (the DCLM eval bundle, downloaded once) -> report.md.
run $TORCHRUN -m mini_nanochat eval base d24_speedrun --source bundle,offline

# 5. SFT (nanochat's mixture: SmolTalk, MMLU auxiliary x3, GSM8K x4; downloaded on first use).
run $TORCHRUN -m mini_nanochat sft --config examples/gpu_sft_8xh100.toml

# 6. RL on GSM8K (optional in nanochat's speedrun; skip with SKIP_RL=1).
CHAT=d24_sft
if [ "${SKIP_RL:-0}" != "1" ]; then
    run $TORCHRUN -m mini_nanochat rl --config examples/gpu_rl_8xh100.toml
    CHAT=d24_rl
fi

# 7. Chat evaluation: ARC, MMLU, GSM8K, HumanEval (sandboxed), ChatCORE -> the run's report.md.
run $TORCHRUN -m mini_nanochat eval chat "$CHAT" --source hub

# 8. Talk to it: one question here; `mini-nanochat chat --run $CHAT` for a conversation, and the
#    OpenAI-compatible server with its web page (127.0.0.1 only; --host 0.0.0.0 needs --api-key).
run mini-nanochat chat --run "$CHAT" -p "What is 12 times 34?"
echo "serve it:  mini-nanochat serve --run $CHAT --port 8000   (then open http://127.0.0.1:8000)"
if [ "${SERVE:-0}" = "1" ]; then run mini-nanochat serve --run "$CHAT" --port 8000; fi
