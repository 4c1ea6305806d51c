"""Plotly figures of a run: importance weights, the weight heatmap, effective sample size, masked fraction, and
the step at which each token was revealed."""
from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

# The live text's chips: still masked, new this step, written earlier, rewritten after remasking, changed (uniform)
COLORS = {"mask": "#c9c9c9", "new": "#f28e2b", "filled": "#59a14f", "rewritten": "#b07aa1", "changed": "#e15759"}


def colors_for(process: str) -> dict[str, str]:
    """The denoising view's legend for one noise process: masked diffusion has masks and no rewrites of a revealed
    token by noise ("changed"); uniform noise has no masks, and tokens that change."""
    drop = ("mask",) if process in ("uniform", "continuous") else ("changed",)  # every other process masks
    return {kind: color for kind, color in COLORS.items() if kind not in drop}


REVEAL_LABELS = {"absorbing": "When each token of the fill appeared (step that revealed it)",
                 "uniform": "How often each token of the fill was written (uniform noise rewrites tokens)",
                 "continuous": "Where each span position is in embedding space (continuous noise moves points)"}

pio.templates.default = "none"  # the app styles its own figures (see LAYOUT)

# A plain layout instead of a named template: copying plotly's template costs ~50 ms per figure, more than a
# denoiser step, and the app draws figures while it streams.
_AXIS = dict(gridcolor="#e8e8e8", zerolinecolor="#d0d0d0")
LAYOUT = dict(height=260, margin=dict(l=50, r=20, t=40, b=40), template=None, plot_bgcolor="white",
              paper_bgcolor="white", font=dict(family="sans-serif", size=12), xaxis=_AXIS, yaxis=_AXIS)


def _title(text: str) -> dict:
    """A short left-aligned subtitle: the component's label names the chart, so on a phone nothing is clipped."""
    return dict(text=text, x=0.01, xanchor="left", font=dict(size=12, color="#555"))


def _empty(title: str, note: str) -> go.Figure:
    fig = go.Figure(layout=dict(LAYOUT, title=_title("")))
    fig.add_annotation(text=note, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(color="#888"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def weights_bar(weights: list[float] | None, chosen: int | None, step: int | None,
                log_weights: list[float] | None = None) -> go.Figure:
    """The k normalised importance weights of the latest IS step; the kept candidate in orange; the
    unnormalised log-weight (what the energy said) on hover."""
    if not weights:
        return _empty("Importance weights", "no importance-sampling step yet (mdlm, or outside the IS window)")
    colors = ["#f28e2b" if i == chosen else "#4e79a7" for i in range(len(weights))]
    logs = log_weights if log_weights and len(log_weights) == len(weights) else [float("nan")] * len(weights)
    fig = go.Figure(go.Bar(x=[f"#{i + 1}" for i in range(len(weights))], y=weights, marker_color=colors,
                           customdata=logs, hovertemplate="candidate %{x}<br>weight %{y:.3f}<br>log-weight "
                                                          "%{customdata:.2f}<extra></extra>"))
    fig.update_layout(**LAYOUT, title=_title(f"step {step} · orange: kept"))
    fig.update_xaxes(title="candidate")
    fig.update_yaxes(range=[0, 1], title="weight")
    return fig


def weights_heatmap(rows: list[tuple[int, list[float]]]) -> go.Figure:
    """Steps × candidates heatmap of the normalised weights over the run."""
    if not rows:
        return _empty("Weights over the run", "appears once importance sampling runs")
    steps = [s for s, _ in rows]
    z = [w for _, w in rows]
    fig = go.Figure(go.Heatmap(z=z, y=steps, x=[f"#{i + 1}" for i in range(len(z[0]))], colorscale="Blues",
                               zmin=0, zmax=1, hovertemplate="step %{y}, candidate %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(**LAYOUT, title=_title("one row per IS step, darker = heavier"))
    fig.update_xaxes(title="candidate (fresh draws at every step)")
    fig.update_yaxes(title="step", autorange="reversed")
    return fig


def run_weights(rows: list[tuple[int, list[float], list[int] | None]], particles: bool) -> go.Figure:
    """The weights over the run: particles and who continues whom (edlm-smc), or a steps x candidates heatmap
    (importance sampling draws fresh candidates at every step)."""
    return lineage(rows) if particles else weights_heatmap([(s, w) for s, w, _ in rows])


def lineage(rows: list[tuple[int, list[float], list[int] | None]]) -> go.Figure:
    """Particles over the run (edlm-smc): a dot per particle at each weighting step, sized and shaded by its
    weight; a line joins each particle to the one it continues (after a resampling: its ancestor, else itself),
    so a teacher can show heavy particles being copied and light ones dropped."""
    if not rows:
        return _empty("Particles over the run", "appears once the particles are weighted")
    xs, ys = [], []
    for (s0, w0, anc), (s1, w1, _) in zip(rows, rows[1:]):
        for j in range(len(w1)):
            xs += [s0, s1, None]
            ys += [(anc[j] if anc else j) + 1, j + 1, None]
    dots = [(s, j + 1, w) for s, ws, _ in rows for j, w in enumerate(ws)]
    fig = go.Figure([
        go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#bbbbbb", width=1), hoverinfo="skip",
                   showlegend=False),
        go.Scatter(x=[d[0] for d in dots], y=[d[1] for d in dots], mode="markers", showlegend=False,
                   marker=dict(size=[6 + 18 * d[2] for d in dots], color=[d[2] for d in dots], colorscale="Blues",
                               cmin=0, cmax=1, line=dict(width=0.5, color="#555555")),
                   hovertemplate="step %{x}, particle %{y}: weight %{marker.color:.3f}<extra></extra>")])
    fig.update_layout(**LAYOUT, title=_title("dot = a particle, size = its weight · lines: who continues whom"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="particle", dtick=1)
    return fig


def ess_line(points: list[tuple[int, float]], k: int) -> go.Figure:
    """Effective sample size per IS step: k means the energy agreed with the denoiser, 1 means one candidate won."""
    if not points:
        return _empty("Effective sample size", "appears once importance sampling runs")
    fig = go.Figure(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                               hovertemplate="step %{x}: ESS %{y:.2f}<extra></extra>"))
    fig.update_layout(**LAYOUT, title=_title(f"1 = one candidate won · {k} = all equal"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(range=[0, k + 0.5])
    return fig


def masked_line(points: list[tuple[int, float]], total_steps: int) -> go.Figure:
    """Fraction of the spans still masked after each step."""
    fig = go.Figure(go.Scatter(x=[0] + [p[0] for p in points], y=[1.0] + [p[1] for p in points],
                               mode="lines+markers", line=dict(shape="hv"),
                               hovertemplate="step %{x}: %{y:.0%} masked<extra></extra>"))
    fig.update_layout(**LAYOUT, title=_title("share of the span tokens"))
    fig.update_xaxes(title="step", range=[0, max(1, total_steps)])
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    return fig


def _token_bars(pieces: list[str], values: list[int], top: int, colorscale: str, cmin: int, note: str,
                y_title: str, hover: str) -> go.Figure:
    """One bar per filled token of the spans, labelled with its text (the last chart of a run)."""
    if not pieces:
        return _empty("", "shown when the run ends")
    fig = go.Figure(go.Bar(x=list(range(len(pieces))), y=values, text=pieces, textposition="outside",
                           marker=dict(color=values, colorscale=colorscale, cmin=cmin, cmax=max(1, top)),
                           hovertemplate="%{text}: " + hover + "<extra></extra>"))
    fig.update_layout(**LAYOUT, title=_title(note))
    fig.update_xaxes(title="token of the spans", showticklabels=False)
    fig.update_yaxes(title=y_title, range=[0, max(1, top) * 1.2])
    return fig


def revealed_at(pieces: list[str], steps: list[int], total_steps: int) -> go.Figure:
    """Each filled token of the spans, coloured by the step that revealed it (early = dark)."""
    return _token_bars(pieces, steps, total_steps, "Viridis", 1, "step each filled token appeared; dark = early",
                       "step", "step %{y}")


def changes_bar(pieces: list[str], changes: list[int]) -> go.Figure:
    """Uniform-noise runs: how many times each token of the spans was written (every token may change at every
    step, so a count above 1 is the model correcting itself)."""
    return _token_bars(pieces, changes, max(changes, default=1), "Reds", 0,
                       "uniform noise: times each token of the spans was written", "writes", "written %{y} times")


def embedding_view(words: tuple[list[float], list[float], list[str]] | None, trails: list[list[tuple[float, float]]],
                   pieces: list[str], step: int, total_steps: int) -> go.Figure:
    """Continuous diffusion: the words of the vocabulary as faint dots in the model's fixed 2-D view of its
    embedding space, and each span position as a point moving toward a word (its trail so far, and its nearest
    word as the label), zoomed to where the positions have been."""
    if not trails:
        return _empty("", "continuous diffusion: the span positions appear here as they move")
    fig = go.Figure()
    if words is not None:
        fig.add_trace(go.Scattergl(x=words[0], y=words[1], mode="markers", text=words[2], name="words",
                                   marker=dict(size=3, color="#d0d0d0"), hovertemplate="%{text}<extra></extra>"))
    for j, (trail, word) in enumerate(zip(trails, pieces)):
        xs, ys = [p[0] for p in trail], [p[1] for p in trail]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(width=1, color=COLORS["filled"]), opacity=0.35,
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=xs[-1:], y=ys[-1:], mode="markers+text", text=[word.strip() or "·"],
                                 textposition="top center", marker=dict(size=8, color=COLORS["new"]),
                                 showlegend=False, hovertemplate=f"position {j + 1}: nearest word %{{text}}"
                                 "<extra></extra>"))
    fig.update_layout(**{**LAYOUT, "height": 360}, showlegend=False,
                      title=_title(f"step {step} of {total_steps}: each span position in embedding space (2-D view), "
                                   "labelled with its nearest word; grey dots: the words"))
    # Zoomed to where the span positions have been: isotropic noise projects near the middle of the words' cloud,
    # so a view of every word would show the points as one dot until the last steps.
    xs = [p[0] for trail in trails for p in trail]
    ys = [p[1] for trail in trails for p in trail]
    pad_x, pad_y = 0.15 * (max(xs) - min(xs)) + 0.1, 0.15 * (max(ys) - min(ys)) + 0.1
    fig.update_xaxes(showticklabels=False, title=None, range=[min(xs) - pad_x, max(xs) + pad_x])
    fig.update_yaxes(showticklabels=False, title=None, range=[min(ys) - pad_y, max(ys) + pad_y])
    return fig


def side_by_side(series: dict[str, list[tuple[int, float]]], note: str, y_title: str, y_range: list[float],
                 percent: bool = False) -> go.Figure:
    """One line per sampler of the compare tab (the same quantity, the same steps), e.g. the share still masked.
    A sampler with no points (no weighting steps: mdlm has none to chart an ESS for) is named in the title."""
    missing = [name for name, pts in series.items() if not pts]
    if missing:
        note += " · " + ", ".join(missing) + ": none (no weighting steps)"
    if not any(series.values()):
        return _empty("", note)
    fig = go.Figure([go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=name,
                                line=dict(shape="hv" if percent else "linear"),
                                hovertemplate=name + ", step %{x}: %{y:" + (".0%" if percent else ".2f") +
                                "}<extra></extra>") for name, pts in series.items() if pts])
    fig.update_layout(**LAYOUT, title=_title(note), legend=dict(orientation="h", x=1, xanchor="right", y=1.0,
                                                                yanchor="bottom"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title=y_title, range=y_range, tickformat=".0%" if percent else None)
    return fig

