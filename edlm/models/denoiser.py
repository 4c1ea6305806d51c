"""The diffusion denoiser: a DiT predicting x0 from x_t with the SUBS parameterisation, as a transformers model."""
from __future__ import annotations

import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from ..continuous import Points, embedding_space, projection
from ..noise import get_schedule
from ..processes import process_name
from .dit import DiTBackbone, DiTConfig


def subs_log_probs(logits: torch.Tensor, x_t: torch.Tensor, mask_id: int) -> torch.Tensor:
    """SUBS: the mask token gets zero probability, and visible tokens are copied (log one-hot)."""
    no_mask = torch.zeros(logits.shape[-1], device=logits.device)
    no_mask[mask_id] = float("-inf")
    log_probs = (logits.float() + no_mask).log_softmax(-1)
    copied = torch.full_like(log_probs, float("-inf")).scatter(-1, x_t.unsqueeze(-1), 0.0)
    return torch.where((x_t != mask_id).unsqueeze(-1), copied, log_probs)


class DenoiserModel(PreTrainedModel):
    """p_theta(x0 | x_t): returns SUBS log-probabilities [B, L, V] as `logits` (for the uniform process: plain
    log-probabilities over every token but the mask)."""

    config_class = DiTConfig
    base_model_prefix = "backbone"
    _no_split_modules = ["DiTBlock"]

    def __init__(self, config: DiTConfig):
        super().__init__(config)
        self.backbone = DiTBackbone(config)
        self.schedule = get_schedule(config.schedule)
        self.post_init()

    def _init_weights(self, module):  # keep the DiT's own initialisation (zeroed adaLN and output layer)
        pass

    def embedding_space(self) -> torch.Tensor:
        """The continuous process's space: the token table, rows scaled to norm sqrt(D) (`edlm.continuous`)."""
        return embedding_space(self.backbone.vocab_embed.embedding)

    def embedding_view(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The space's fixed 2-D view (its mean and first two principal directions), computed once per model."""
        if getattr(self, "_embedding_view", None) is None:
            self._embedding_view = projection(self.embedding_space())
        return self._embedding_view

    def sigma_of(self, t: torch.Tensor) -> torch.Tensor:
        """The network's time input: sigma(t) if time-conditioned, else zeros (MDLM's convention)."""
        if not self.config.time_conditioning:
            return torch.zeros_like(t, dtype=torch.float32)
        return self.schedule.sigma(t)

    def forward(self, input_ids: torch.Tensor | Points, t: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, self_cond: torch.Tensor | str | None = "auto",
                **_) -> MaskedLMOutput:
        """x_t [B, L] and t [B] -> SUBS log-probs [B, L, V], or [N, V] at `positions` (bool [B, L]) only. A
        continuous denoiser takes `Points` and returns plain log-probabilities over every token but the mask.

        Self-conditioning models take the previous x0 prediction `self_cond` (probabilities [B, L, V], or a
        `SparseSelfCond` at the masked positions); None
        means no prediction yet; "auto" (the default) makes one with a first pass, so a plain call gives the
        model's best x0 distribution (used by evaluation and NCE negatives). Samplers pass the previous step's."""
        if t is None:
            t = torch.ones(input_ids.shape[0], device=input_ids.device)
        if not self.config.self_conditioning:
            self_cond = None
        elif isinstance(self_cond, str):
            with torch.no_grad():
                self_cond = self.forward(input_ids, t, self_cond=None).logits.exp()
        if self.backbone.in_proj is not None and not isinstance(input_ids, Points):  # ids: their clean points
            input_ids = Points(self.embedding_space().to(input_ids.device)[input_ids],
                               torch.zeros_like(input_ids, dtype=torch.bool))
        if isinstance(input_ids, Points):  # the continuous process: points of the embedding space
            raw = self.backbone(None, self.sigma_of(t), positions=positions, points=input_ids.z)
        else:
            raw = self.backbone(input_ids, self.sigma_of(t), positions=positions, self_cond=self_cond)
        if isinstance(input_ids, Points) or process_name(self.config) == "uniform":  # every position predicted
            raw = raw.float().index_fill(-1, torch.tensor([self.config.mask_token_id], device=raw.device),
                                         float("-inf"))
            return MaskedLMOutput(logits=raw.log_softmax(-1))
        x_t = input_ids if positions is None else input_ids[positions]
        return MaskedLMOutput(logits=subs_log_probs(raw, x_t, self.config.mask_token_id))
