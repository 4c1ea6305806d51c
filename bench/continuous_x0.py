"""The continuous process's x0 estimate in the reverse step, measured: the drawn word's point (Diffusion-LM's
clamping, the shipped step: an energy's choice among candidates moves the points) against the expected point under
the denoiser's distribution (CDCD's score interpolation: smoother, but an energy's choice only reaches the last
step). Runs the benchmark cells with each estimate on the same TEST windows and seeds; compare the two output
folders with bench/paired_models.py.

    python bench/continuous_x0.py --out results/continuous-x0 [--steps 8,16,32] [--samples 32]
    python bench/paired_models.py results/continuous-x0/drawn results/continuous-x0/expected
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edlm.continuous import GaussianProcess  # noqa: E402


class ExpectedPoint(GaussianProcess):
    """The continuous process with the expected point E_q[E[x0]] as the x0 estimate of every step but the last
    (the last writes the drawn words, as the shipped step does)."""

    name = "continuous-expected"

    def x0_point(self, ctx):
        return ctx.log_q.float().exp() @ self._space(ctx.x.device)  # rows of log_q: the predicted positions


def main() -> None:
    from edlm.bench import BenchConfig, run_bench
    from edlm.commands import DEFAULT_CORPUS
    from edlm.presets import load_bundle
    from edlm.processes import register_process

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/continuous-x0")
    ap.add_argument("--steps", default="8,16,32")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--variants", default="mdlm,mdlm+greedy")
    args = ap.parse_args()
    register_process("continuous-expected", ExpectedPoint.from_config)
    for estimate in ("drawn", "expected"):
        bundle = load_bundle("continuous")
        if estimate == "expected":
            bundle.denoiser.config.process = "continuous-expected"
        bundle.name = f"continuous-{estimate}"
        cfg = BenchConfig(corpus=str(DEFAULT_CORPUS), out=str(Path(args.out) / estimate), samples=args.samples,
                          batch=args.samples, steps=tuple(int(s) for s in args.steps.split(",")), top_p=0.95,
                          parts=("generate", "infill"), variants=tuple(args.variants.split(",")))
        print(f"## x0 estimate: {estimate}\n")
        run_bench(bundle, cfg)  # prints its table


if __name__ == "__main__":
    main()
