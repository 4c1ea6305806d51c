"""A context cache for bidirectional denoisers (the idea of Fast-dLLM's dual cache, for infilling).

In a fill most of the window is text the sampler never writes. A full pass stores every layer's keys and values;
the passes after it recompute only the *active* positions (those whose token may change, and those whose output is
asked for) and let them attend to the stored keys and values of the rest. A row refreshes with a full pass every
`refresh` passes. The saving is the share of the window that is fixed; the price is that, between refreshes, the
fixed text's keys and values do not yet see the span's newest tokens (exact at every full pass, and exact when
nothing changed since it).
"""
from __future__ import annotations

import torch


def active_positions(editable: torch.Tensor, shift: bool) -> torch.Tensor:
    """The network-input positions a cached pass recomputes, as bool [B, L_in]. Unshifted, input i is token i and
    predicts it. Shifted ([BOS] + x_t, output i read at input i), input i holds token i - 1 and predicts token i,
    so both the inputs that predict an editable token and the inputs that hold one are active."""
    if not shift:
        return editable
    none = torch.zeros_like(editable[:, :1])
    return torch.cat([editable, none], 1) | torch.cat([none, editable], 1)


class ContextCache:
    """Per-row stored keys and values of each layer, for one sampler run. `editable` (bool [B, L]) is where the
    sampler may write; `refresh` (>= 1) the passes per full pass (1: every pass is full, the cache changes
    nothing). Rows refresh on their own schedule, so a row's result never depends on the rows beside it."""

    def __init__(self, editable: torch.Tensor, refresh: int, shift: bool):
        if refresh < 1:
            raise ValueError(f"a context cache refreshes every 1 or more passes, not {refresh}")
        self.refresh = refresh
        act = active_positions(editable, shift)
        width = max(1, int(act.sum(-1).max()))
        # Active positions first in increasing order; a row with fewer pads with some of its fixed positions (which
        # are then recomputed too: more exact, not less).
        self.active = act.float().argsort(dim=1, descending=True, stable=True)[:, :width]  # [B, A]
        self.slot = torch.empty_like(act, dtype=torch.long).scatter_(
            1, self.active, torch.arange(width, device=act.device).expand_as(self.active))  # input pos -> slot
        self.age = torch.zeros(editable.shape[0], dtype=torch.long, device=editable.device)
        self.ready = torch.zeros(editable.shape[0], dtype=torch.bool, device=editable.device)
        self.keys: list[torch.Tensor] = []    # per layer [B, H_kv, L_in, d]
        self.values: list[torch.Tensor] = []

    def take(self, index: list[int] | torch.Tensor) -> None:
        """Reorder the rows (particles resampled from their ancestors: each inherits its ancestor's cache)."""
        index = torch.as_tensor(index, device=self.age.device)
        self.active, self.slot, self.age, self.ready = (v[index] for v in (self.active, self.slot, self.age,
                                                                             self.ready))
        self.keys, self.values = [k[index] for k in self.keys], [v[index] for v in self.values]

    def run(self, logits_fn, input_ids: torch.Tensor, positions: torch.Tensor,
            rows: torch.Tensor | None = None) -> torch.Tensor:
        """The network's output at `positions` (bool [b, L]) for `input_ids` [b, L], the cache's rows `rows`
        (long [b]; default all): a full pass, storing, for rows that are due, a cached pass for the others.
        `logits_fn(ids, positions, layer_pass)` is the network's forward; the outputs keep row-major order."""
        rows = torch.arange(input_ids.shape[0], device=input_ids.device) if rows is None else rows
        due = ~self.ready[rows] | (self.age[rows] >= self.refresh - 1)
        parts = {}
        for full in (True, False):
            pick = due if full else ~due
            if bool(pick.any()):
                parts[full] = logits_fn(input_ids[pick], positions[pick], LayerPass(self, rows[pick], full))
        self.age[rows[due]] = 0
        self.ready[rows[due]] = True
        self.age[rows[~due]] += 1
        if len(parts) == 1:
            return next(iter(parts.values()))
        counts = positions.sum(-1)
        pieces = {f: iter(parts[f].split(counts[due if f else ~due].tolist())) for f in parts}
        return torch.cat([next(pieces[bool(d)]) for d in due.tolist()])


class LayerPass:
    """One pass's view of the cache for rows `rows`: full (compute every position, store keys and values) or
    cached (compute the active positions only, read the stored keys and values of the rest)."""

    def __init__(self, cache: ContextCache, rows: torch.Tensor, full: bool):
        self.cache, self.rows, self.full = cache, rows, full
        self.active = None if full else cache.active[rows]  # [b, A] input positions this pass computes

    def inputs(self, ids: torch.Tensor) -> torch.Tensor:
        """The input ids this pass runs: all of them, or the active ones [b, A]."""
        return ids if self.full else ids.gather(1, self.active)

    def rotary(self, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary tables [L_in, d] for the positions this pass computes ([b, 1, A, d] when cached)."""
        if self.full:
            return cos, sin
        return cos[self.active].unsqueeze(1), sin[self.active].unsqueeze(1)

    def keys_values(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values [b, H_kv, L_in, d] to attend to: this pass's own (stored) when full; else the stored
        ones with this pass's active positions written in."""
        c = self.cache
        if self.full:
            if len(c.keys) <= layer:  # first full pass: room for every row
                B = c.age.shape[0]
                c.keys.append(k.new_zeros(B, *k.shape[1:]))
                c.values.append(v.new_zeros(B, *v.shape[1:]))
            c.keys[layer][self.rows], c.values[layer][self.rows] = k, v
            return k, v
        where = self.active[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[-1])
        return (c.keys[layer][self.rows].scatter(2, where, k), c.values[layer][self.rows].scatter(2, where, v))

    def outputs(self, h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Hidden states [N, D] of the output positions `positions` (bool [b, L]) from a cached pass's [b, A, D]
        (output j is read at input position j, shifted or not)."""
        b, j = positions.nonzero(as_tuple=True)
        return h[b, self.cache.slot[self.rows][b, j]]
