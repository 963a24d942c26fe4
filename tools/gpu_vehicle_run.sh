#!/usr/bin/env bash
# One device call on a lent GPU machine, in the order the project spends one (weights/README.md,
# "A run on a lent GPU"): a vehicle-net training stage, then the GPU throughput at 1024 px,
# then the CUDA parity tests. Here first: python tools/pack_training_data.py (writes
# .pack/data); then the device tool's run with command "bash tools/gpu_vehicle_run.sh",
# carry [".pack"], timeout_s 580. What it writes under $OUT comes back: the log, the best
# weights (only if a checkpoint beat the start net on the selection split), the last
# checkpoint, the throughput rows. Extra arguments go to tools/train_vehicle_net.py after
# these (a later one wins).
set -uo pipefail
: "${OUT:?run this on the device machine, where OUT is set}"
export PYTHONUNBUFFERED=1
log="$OUT/u2netp_vehicle_gpu.log"
{
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, cv2, skimage, safetensors; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
workers=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
timeout 420 python3 tools/train_vehicle_net.py --data .pack/data --device cuda --workers "$workers" --threads 2 \
    --init weights/u2netp_vehicle.safetensors --init-head training/checkpoints/u2netp_vehicle_mirror.pt \
    --ckpt "$OUT/u2netp_vehicle_gpu.pt" --out "$OUT/u2netp_vehicle_gpu.safetensors" \
    --batch 32 --steps 3000 --sizes 224,288,320 --lr 5e-5 --mirror-weight 6 --mirror-score 0.05 \
    --eval-every 300 --iou-floor 0.001 --seed 11 --minutes 5 "$@"
echo "training exit $?"
timeout 75 python3 benchmarks/throughput.py --device cuda --batch 1,8 --sizes 1024 --modes default \
    --data .pack/data/carparts/JPEGImages --limit 16 --rounds 2 --json "$OUT/throughput_cuda.json"
echo "throughput exit $?"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_api.py -k cuda
echo "parity tests exit $?"
} 2>&1 | tee "$log"
