#!/usr/bin/env bash
# Reproduce the shipped base models in checkpoints/ from ../shared/data (docs/models.md).
#
#   bash scripts/train_base.sh [DATA=../shared/data] [WORK=work/base]
#
# 1. prepare every clip (talking and silent) into avatars;
# 2. the audio models on every checked talking clip of every source (scripts/train_audio.py)
#    -> checkpoints/audio/, and with a 120 ms look-ahead for `dhlive stream` ->
#    checkpoints/audio_live/, predicting the mouth PCA fitted on the clips of talking/;
# 3. train-render on all clips but LivePortrait__d6, which is kept unseen for the
#    per-avatar fine-tune report -> checkpoints/render_fast.pt. On a CPU this uses
#    configs/render_base_cpu.yaml in two phases, then continues that model with prompts
#    through the audio model's mouth PCA, as inference sends them
#    (configs/render_base_cpu_prompts.yaml); with a GPU, configs/render_fast.yaml with
#    that PCA from the start.
# 4. checkpoints/SHA256SUMS, which the tests verify.
# Every step resumes: prepared avatars are skipped, training continues from its state.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
WORK=${2:-work/base}
PY=${PYTHON:-.venv/bin/python}
DHLIVE=${DHLIVE:-.venv/bin/dhlive}
HELD_OUT=LivePortrait__d6
mkdir -p "$WORK/avatars" checkpoints/audio

for f in "$DATA"/talking/*.mp4 "$DATA"/silent/*.mp4; do
  name=$(basename "$f" .mp4)
  [ -f "$WORK/avatars/$name/meta.json" ] || "$DHLIVE" prepare "$f" --name "$name" --out "$WORK/avatars" --quiet
done

# the mouth PCA of record: fitted on the 12 clips of talking/ by the first distill-audio run
# (the renderer is trained on it); the shipped audio models then learn its coefficients from
# every checked talking clip of every source (scripts/train_audio.py, about 2 min each)
if [ ! -f checkpoints/audio/pca.pkl ]; then
  talking=()
  for f in "$DATA"/talking/*.mp4; do talking+=("$WORK/avatars/$(basename "$f" .mp4)"); done
  resume=(); [ -f "$WORK/audio_pca/train_state.pt" ] && resume=(--resume)
  "$DHLIVE" distill-audio --avatars "${talking[@]}" --out "$WORK/audio_pca" --config configs/audio.yaml "${resume[@]}"
  cp "$WORK/audio_pca/pca.pkl" checkpoints/audio/
fi
"$PY" scripts/train_audio.py --data "$DATA" --work "$WORK/audio_all" --mouth checkpoints/audio/pca.pkl --install checkpoints

render=()
for d in "$WORK"/avatars/*/; do
  [ "$(basename "$d")" = "$HELD_OUT" ] || render+=("${d%/}")
done
resume=(); [ -f "$WORK/render/train_state.pt" ] && resume=(--resume)
if "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  "$DHLIVE" train-render --avatars "${render[@]}" --out "$WORK/render" --config configs/render_fast.yaml \
    --mouth checkpoints/audio/pca.pkl "${resume[@]}"
  cp "$WORK/render/render_model.pt" checkpoints/render_fast.pt
else
  # CPU: 3500 steps, then resumed to 6500 with a warm restart of the cosine schedule
  # (2 x ~40 min on 2 cores). Each phase resumes if it was stopped.
  "$DHLIVE" train-render --avatars "${render[@]}" --out "$WORK/render" --config configs/render_base_cpu.yaml "${resume[@]}"
  "$DHLIVE" train-render --avatars "${render[@]}" --out "$WORK/render" --config configs/render_base_cpu.yaml --steps 6500 --resume
  # third phase (41 min): the same avatars, prompts through the shipped audio model's PCA
  resume=(); [ -f "$WORK/render_prompts/train_state.pt" ] && resume=(--resume)
  "$DHLIVE" train-render --avatars "${render[@]}" --out "$WORK/render_prompts" --init "$WORK/render/render_model.pt" \
    --mouth checkpoints/audio/pca.pkl --holdout 0 --config configs/render_base_cpu_prompts.yaml "${resume[@]}"
  # fourth phase (30 min): packs of version 2, windows cut from the source video as inference cuts
  # them. (The shipped model ran phases 1-3 on version-1 packs cut from the crops; with this
  # dhlive every phase gets version-2 packs.)
  resume=(); [ -f "$WORK/render_source/train_state.pt" ] && resume=(--resume)
  "$DHLIVE" train-render --avatars "${render[@]}" --out "$WORK/render_source" --init "$WORK/render_prompts/render_model.pt" \
    --mouth checkpoints/audio/pca.pkl --holdout 0 --config configs/render_base_cpu_source.yaml "${resume[@]}"
  cp "$WORK/render_source/render_model.pt" checkpoints/render_fast.pt
fi

(cd checkpoints && sha256sum audio/audio_model.pt audio/pca.pkl audio_live/audio_model.pt audio_live/pca.pkl \
  render_fast.pt > SHA256SUMS)
echo "base models in checkpoints/ (see checkpoints/SHA256SUMS)"
