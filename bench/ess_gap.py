"""Why EDLM-AR's importance weights pick one candidate: the gap between the two best candidates' log-weights
against the span length, on TEST windows of the embedded models (untempered weights, as the energy gives them).

    python bench/ess_gap.py [--windows 16]
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from edlm.commands import DEFAULT_CORPUS
    from edlm.data import consecutive_windows, read_split, token_stream
    from edlm.limits import validate
    from edlm.presets import load_bundle
    from edlm.runner import run

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=16)
    args = p.parse_args()
    b = load_bundle("default")
    L, mask = b.window, b.tokenizer.mask_token_id
    test = consecutive_windows(token_stream(b.tokenizer, read_split(DEFAULT_CORPUS, "test")), L, args.windows)
    req = validate(sampler="edlm-ar", k=4, is_window=0.5, steps=32, unmask="confidence-noisy", temperature=1.0,
                   ar_weighting="product", target_ess=0.0, seed=0)
    print("| masked tokens | median gap between the best two log-weights (nats) | mean ESS of 4 |\n|---|---|---|")
    for span in (8, 16, 32, 64):
        ids = test.clone()
        a = L // 2 - span // 2
        ids[:, a:a + span] = mask
        gaps, ess = [], []
        for ev, _ in run(b, ids, req, ids[0] == mask):
            if ev.is_step:
                top2 = ev.log_weights.double().topk(2, -1).values
                gaps += (top2[:, 0] - top2[:, 1]).tolist()
                ess += ev.ess.tolist()
        print(f"| {span} | {statistics.median(gaps):.2f} | {statistics.mean(ess):.2f} |", flush=True)


if __name__ == "__main__":
    main()
