"""Networks: the DiT denoiser, LLaDA, the NCE energy, and the autoregressive LM; registered with the transformers Auto
classes so `AutoModelForMaskedLM` / `AutoModel` load saved folders without remote code."""
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from .denoiser import DenoiserModel, subs_log_probs
from .dit import DiTBackbone, DiTConfig
from .llada import LLaDAConfig, LLaDADenoiser
from .nce import EnergyConfig, EnergyModel

AutoConfig.register(DiTConfig.model_type, DiTConfig, exist_ok=True)
AutoConfig.register(EnergyConfig.model_type, EnergyConfig, exist_ok=True)
AutoModelForMaskedLM.register(DiTConfig, DenoiserModel, exist_ok=True)
AutoConfig.register(LLaDAConfig.model_type, LLaDAConfig, exist_ok=True)
AutoModelForMaskedLM.register(LLaDAConfig, LLaDADenoiser, exist_ok=True)
AutoModel.register(EnergyConfig, EnergyModel, exist_ok=True)

__all__ = ["DenoiserModel", "DiTBackbone", "DiTConfig", "EnergyConfig", "EnergyModel", "LLaDAConfig", "LLaDADenoiser",
           "subs_log_probs"]
