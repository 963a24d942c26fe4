"""A weighted average of matte nets trained from the same start ("weight averaging"):
writes ``weights/u2netp_vehicle_half.safetensors``.

    python tools/average_weights.py --evaluate   # reproduces the shipped file (the same tensors)

The shipped default matte net is 0.7 x the distilled net (`tools/distill_half_top.py`,
``training/u2netp_vehicle_half_distilled.safetensors``) + 0.3 x that net fine-tuned by the
batch-32 recipe (``training/u2netp_vehicle_half_b32.safetensors``, weights/README.md).
Both share their start, so their tensors average sensibly; the mix was chosen on the
selection split only (`train_vehicle_net.SelectionSet`: 0.5 lost more than the 0.001 of
Carvana IoU that a stage may lose there, 0.3 did not and beat the distilled net's score).
With ``--evaluate`` the selection figures are worked out and written into the metadata
(they need ``../shared/data``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

DEFAULT_SOURCES = (
    (ROOT / "training" / "u2netp_vehicle_half_distilled.safetensors", 0.7),
    (ROOT / "training" / "u2netp_vehicle_half_b32.safetensors", 0.3),
)


def average(sources: list[tuple[Path, float]]) -> dict[str, torch.Tensor]:
    """sum_i w_i x file_i, tensor by tensor (float32, accumulated in source order); every
    file must hold the same names and shapes, and the weights sum to 1."""
    from safetensors.torch import load_file

    if abs(sum(w for _, w in sources) - 1.0) > 1e-9:
        raise ValueError(f"the weights must sum to 1, not {sum(w for _, w in sources)}")
    out: dict[str, torch.Tensor] = {}
    for path, weight in sources:
        state = load_file(str(path), device="cpu")
        if out and (set(state) != set(out) or any(state[k].shape != out[k].shape for k in out)):
            raise ValueError(f"{path} does not hold the same tensors as {sources[0][0]}")
        for k, v in state.items():
            out[k] = out[k] + weight * v if k in out else weight * v
    return {k: v.contiguous() for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", action="append", default=None, metavar="FILE=WEIGHT",
                    help="a net and its weight, repeated (default: the shipped mix)")
    ap.add_argument("--model", default="u2netp_vehicle_half")
    ap.add_argument("--out", type=Path, default=ROOT / "weights" / "u2netp_vehicle_half.safetensors")
    ap.add_argument("--evaluate", action="store_true", help="work out the selection figures (../shared/data)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    from safetensors.torch import save_file

    sources = ([(Path(s.rsplit("=", 1)[0]), float(s.rsplit("=", 1)[1])) for s in args.source]
               if args.source else list(DEFAULT_SOURCES))
    state = average(sources)
    meta = {
        "model": args.model,
        "init": "; ".join(f"{w:g} x {p.relative_to(ROOT).as_posix() if p.is_relative_to(ROOT) else p} "
                          f"(sha256 {hashlib.sha256(p.read_bytes()).hexdigest()})" for p, w in sources),
        "data": "Carvana Image Masking Challenge (Kaggle competition terms) and Car Parts Dataset "
                "(Pasupa et al. 2021); see weights/README.md",
        "command": "python tools/average_weights.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "input": "RGB 0..1, ImageNet-normalised; output (B, 1, H, W): the vehicle",
    }
    if args.evaluate:
        import train_vehicle_net as T
        from bgr_core.models import MODEL_BUILDERS

        net = MODEL_BUILDERS[args.model]()
        net.load_state_dict(state, strict=True)
        res = T.SelectionSet(args.data).evaluate(net.eval(), mirror_score=0.05)
        meta["selection"] = json.dumps({k: round(v, 6) for k, v in res.items()})
        print("selection:", meta["selection"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=meta)
    print(f"wrote {args.out} (sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
