#!/usr/bin/env bash
# A vehicle-net training stage on a lent GPU machine, in one device call (weights/README.md,
# "A run on a lent GPU"). Here first: python tools/pack_training_data.py (writes .pack/data);
# then the device tool's run with command "bash tools/gpu_vehicle_run.sh", carry [".pack"],
# timeout_s 560. What it writes under $OUT comes back: the log, the best weights (only if a
# checkpoint beat the start net on the selection split) and the last checkpoint.
# Extra arguments go to tools/train_vehicle_net.py after these (a later one wins).
set -euo pipefail
: "${OUT:?run this on the device machine, where OUT is set}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import torch, cv2, skimage, safetensors; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
workers=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
python3 tools/train_vehicle_net.py --data .pack/data --device cuda --workers "$workers" --threads 2 \
    --init weights/u2netp_vehicle.safetensors --init-head training/checkpoints/u2netp_vehicle_mirror.pt \
    --ckpt "$OUT/u2netp_vehicle_gpu.pt" --out "$OUT/u2netp_vehicle_gpu.safetensors" \
    --batch 32 --steps 3000 --sizes 224,288,320 --lr 5e-5 --mirror-weight 6 --mirror-score 0.05 \
    --eval-every 300 --seed 11 --minutes 6 "$@" 2>&1 | tee "$OUT/u2netp_vehicle_gpu.log"
