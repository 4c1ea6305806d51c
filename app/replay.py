"""A finished run kept step by step, so the page can scrub and replay it (text, status and every chart in sync)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import charts

REPLAY_CHARS = 400_000  # characters of text kept per run (a long text x many steps keeps every n-th step)


def revealed_tokens(segments) -> list[str]:
    """The pieces of text a step wrote (new, or rewritten after remasking), in reading order."""
    return [text.strip() for text, kind, _ in segments if kind in ("new", "rewritten") and text.strip()]


def kept_note(kept: bool, segments) -> str:
    """The candidates table's note: the kept candidate, and which of its tokens this step actually revealed."""
    if not kept:
        return ""
    new = revealed_tokens(segments)
    if not new:
        return "kept; this step revealed none of its tokens (it only shaped the later ones)"
    return "kept; revealed from it now: " + ", ".join(f"“{t}”" for t in new)


CANDIDATE_HEADERS = ["#", "weight", "log-weight (best = 0)", "kept", "its fill of the spans"]


def candidate_rows(weights, log_weights, chosen: int, candidates, note: str) -> list[list]:
    """The candidates table of one weighting step: each candidate's weight, its log-weight against the best one
    (how many nats the energy and the proposal put it behind), the kept one's note, and its fill."""
    logs = list(log_weights) if log_weights is not None and len(log_weights) == len(weights) else None
    top = max(logs) if logs else None
    rows = []
    for i, (w, c) in enumerate(zip(weights, candidates)):
        behind = "" if logs is None else f"{logs[i] - top:+.2f}" if logs[i] < top else "0"
        rows.append([i + 1, float(f"{w:.2g}"), behind, note if i == chosen else "", c])
    return rows


@dataclass
class Replay:
    k: int
    text_chars: int
    steps_planned: int
    total_steps: int = 0
    frames: list = field(default_factory=list)     # (step, highlighted text, status)
    masked: list = field(default_factory=list)     # (step, share still masked)
    is_steps: list = field(default_factory=list)   # (step, weights, chosen, candidates, ess, log-weights, note,
    #                                                 ancestors)
    particles: bool = False                        # edlm-smc: the weights chart shows the particles' lineage
    pieces: list = field(default_factory=list)     # final: each filled token ...
    revealed_at: list = field(default_factory=list)  # ... and the step that revealed it
    changes: dict = field(default_factory=dict)    # uniform noise: step -> times each span token was written
    stopped: bool = False                          # ended by the writer's Stop (its last frame: where it stopped)
    revealed: dict = field(default_factory=dict)   # IS step -> the tokens it revealed from the kept candidate
    top: list = field(default_factory=list)        # final: per filled token, the denoiser's likeliest tokens then
    token_chips: list = field(default_factory=list)  # final: the text in pieces, each filled token its own
    points: list = field(default_factory=list)     # continuous: (step, each span position's 2-D point, its word)
    words: tuple | None = None                     # continuous: the model's word map (x, y, labels), shared

    @property
    def stride(self) -> int:
        return max(1, math.ceil(self.text_chars * self.steps_planned / REPLAY_CHARS))

    def add(self, ev, highlighted, status: str) -> None:
        """Record one step of the run (the event and what the page showed for it)."""
        self.total_steps = ev.total_steps
        self.masked.append((ev.step, ev.masked / max(1, ev.to_fill)))
        if ev.is_step:
            self.is_steps.append((ev.step, ev.weights, ev.chosen, ev.candidates, ev.ess, ev.log_weights,
                                  kept_note(True, ev.segments), ev.ancestors))
            self.revealed[ev.step] = revealed_tokens(ev.segments)
            self.particles = self.particles or ev.particles
        if ev.step % self.stride == 0 or ev.final or ev.step == 1:
            self.frames.append((ev.step, highlighted, status))
        if ev.changed or self.changes:
            self.changes[ev.step] = ev.changes
        if ev.points:
            self.points.append((ev.step, ev.points, ev.pieces))
        if ev.final:
            self.pieces, self.revealed_at = ev.pieces, ev.revealed_at
            self.top, self.token_chips = ev.top, ev.token_chips

    def stop(self, ev, highlighted, status: str) -> None:
        """The run was stopped at `ev`: its last frame is that step, with the status saying so."""
        self.stopped = True
        if self.frames and self.frames[-1][0] == ev.step:
            self.frames[-1] = (ev.step, highlighted, status)
        else:
            self.frames.append((ev.step, highlighted, status))

    def to_json(self) -> dict:
        """The run for a lesson or a notebook: every kept step's text and status, every weighting step's
        candidates, weights and ESS (and a particle sampler's ancestors), the masked share per step, and when each
        token of the result appeared (uniform noise: how often it was written; continuous noise: where each span
        position was at each step)."""
        return {"format": "edlm-run", "version": 1, "k": self.k, "total_steps": self.total_steps,
                "stopped": self.stopped,
                "steps": [{"step": s, "text": "".join(t for t, _ in chips), "status": status}
                          for s, chips, status in self.frames],
                "weighting_steps": [{"step": s, "weights": w, "log_weights": lw, "ess": e, "chosen": c,
                                     "candidates": cands, "ancestors": anc}
                                    for s, w, c, cands, e, lw, _, anc in self.is_steps],
                "masked_share": [{"step": s, "share": m} for s, m in self.masked],
                "tokens": [{"text": p, "revealed_at": r} for p, r in zip(self.pieces, self.revealed_at)],
                "writes_per_token": self.changes.get(self.total_steps),
                # continuous noise: each span position's point in the model's 2-D view, and its nearest word
                "points": [{"step": s, "points": pts, "nearest": words} for s, pts, words in self.points] or None}

    @property
    def last_step(self) -> int:
        return self.frames[-1][0] if self.frames else 0

    def view(self, step: int) -> tuple:
        """What the page shows at `step` (the latest kept frame at or before it): text, status, weights bar,
        heatmap, ESS line, masked line, candidates table, and the token chart (`token_chart`)."""
        frame = max((f for f in self.frames if f[0] <= step), key=lambda f: f[0], default=self.frames[0])
        step = frame[0]
        seen = [s for s in self.is_steps if s[0] <= step]
        last = seen[-1] if seen else None
        table = [] if last is None else candidate_rows(last[1], last[5], last[2], last[3], last[6])
        shown = [(p, r) for p, r in zip(self.pieces, self.revealed_at) if 0 < r <= step]
        status = f"**replay: step {step} of {self.last_step}** · " + frame[2].split(" · ", 1)[-1]
        return (frame[1], status,
                charts.weights_bar(last and last[1], last and last[2], last and last[0], last and last[5]),
                charts.run_weights([(s[0], s[1], s[7]) for s in seen], self.particles),
                charts.ess_line([(s[0], s[4]) for s in seen], self.k),
                charts.masked_line([m for m in self.masked if m[0] <= step], self.total_steps),
                table, self.token_chart(step, shown))

    def token_chart(self, step: int, shown: list) -> object:
        """The last chart at `step`: the points in embedding space (continuous), writes per token (uniform), or
        the step that revealed each token (masked)."""
        if self.points:
            return embedding_chart(self.words, [p for p in self.points if p[0] <= step], self.total_steps)
        if step in self.changes:
            return charts.changes_bar(self.pieces, self.changes[step])
        return charts.revealed_at([p for p, _ in shown], [r for _, r in shown], self.total_steps)


def embedding_chart(words, seen: list, total_steps: int):
    """The embedding view from the recorded steps (step, points, nearest words): each position's trail so far."""
    if not seen:
        return charts.embedding_view(words, [], [], 0, total_steps)
    n = len(seen[-1][1])
    trails = [[pts[j] for _, pts, _ in seen if pts[j] is not None] for j in range(n)]
    return charts.embedding_view(words, trails, seen[-1][2], seen[-1][0], total_steps)


@dataclass
class CompareReplay:
    """A finished Compare run: each side kept as a Replay, scrubbed together (each side at its latest step at or
    before the one asked), with the masked share and ESS of both charted up to that step."""
    left: Replay
    right: Replay
    names: tuple = ("left", "right")

    @property
    def frames(self) -> list:
        return [(s,) for s in sorted({f[0] for side in (self.left, self.right) for f in side.frames})]

    @property
    def last_step(self) -> int:
        return max(self.left.last_step, self.right.last_step)

    def side(self, replay: Replay, step: int) -> tuple:
        frame = max((f for f in replay.frames if f[0] <= step), key=lambda f: f[0], default=replay.frames[0])
        return frame[1], f"**replay: step {frame[0]} of {replay.last_step}** · " + frame[2].split(" · ", 1)[-1]

    def charts_at(self, step: int) -> tuple:
        sides = dict(zip(self.names, (self.left, self.right)))
        k = max(self.left.k, self.right.k)
        return (charts.side_by_side({n: [m for m in r.masked if m[0] <= step] for n, r in sides.items()},
                                    "share of the span tokens still masked", "masked", [0, 1.05], percent=True),
                charts.side_by_side({n: [(s[0], s[4]) for s in r.is_steps if s[0] <= step] for n, r in sides.items()},
                                    f"effective sample size: 1 = one candidate won, {k} = all equal", "ESS",
                                    [0, k + 0.5]))

    def view(self, step: int) -> tuple:
        """Left text and status, right text and status, the masked chart and the ESS chart at `step`."""
        return (*self.side(self.left, step), *self.side(self.right, step), *self.charts_at(step))

