"""The noise processes, by the name a denoiser's config gives (`process`; configs without one are absorbing).

A process owns both halves of its diffusion:
  training   add_noise(x0, t, generator) -> x_t;  loss(log_probs, x0, x_t, t) -> negative ELBO per sequence [B]
  sampling   check(cfg); finite(cfg): whether a run may end once nothing is masked; start(x, editable, gen)
             -> x_1; inputs(x) -> what the denoiser reads (the tokens, or the continuous process's points);
             predicted(x, editable) -> the positions the denoiser predicts; step(ctx, cfg) -> (x_s, positions
             masked again or None); report() -> what a step shows beyond the tokens (the points' 2-D view)
so `edlm.sampling.sample` is one loop with no process branches. A process holding state of its own (the points
of the continuous one) is made fresh for each run. A new process is one file with its class and a line in
PROCESSES below (from outside the package: `register_process`); a factory gets (config, schedule, model).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from .continuous import GaussianProcess
from .masked import AbsorbingProcess
from .noise import Schedule, get_schedule
from .rand import RowRandom
from .spindle import SpindleProcess
from .transitions import StepContext
from .uniform import UniformProcess


class NoiseProcess(Protocol):
    name: str
    schedule: Schedule

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor: ...
    def loss(self, log_probs: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...
    def check(self, cfg) -> None: ...
    def finite(self, cfg) -> bool: ...
    def start(self, x: torch.Tensor, editable: torch.Tensor, gen: RowRandom) -> torch.Tensor: ...
    def inputs(self, x: torch.Tensor): ...
    def report(self) -> dict: ...
    def predicted(self, x: torch.Tensor, editable: torch.Tensor) -> torch.Tensor: ...
    def step(self, ctx: StepContext, cfg) -> tuple[torch.Tensor, torch.Tensor | None]: ...


# name -> factory(config, schedule, model): the process a denoiser with that config is trained and sampled with
PROCESSES: dict[str, Callable[..., NoiseProcess]] = {
    "absorbing": AbsorbingProcess.from_config,
    "uniform": UniformProcess.from_config,
    "spindle": SpindleProcess.from_config,
    "continuous": GaussianProcess.from_config,
}
MASKED = {"absorbing", "spindle"}  # processes whose noise is the mask token (energies and masked views apply)


def register_process(name: str, factory: Callable[..., NoiseProcess]) -> None:
    """Add a process (factory(config, schedule, model) -> process); its name becomes a valid `process` of a config."""
    if name in PROCESSES:
        raise ValueError(f"noise process {name!r} is already registered")
    PROCESSES[name] = factory


def process_name(config) -> str:
    """The process a denoiser config names, checked against the registry."""
    name = getattr(config, "process", "absorbing")  # configs written before the uniform process have none
    if name not in PROCESSES:
        raise ValueError(f"unknown noise process {name!r}: choose one of {', '.join(PROCESSES)}")
    return name


def process_for(config, schedule: Schedule | None = None, model=None) -> NoiseProcess:
    """The noise process of a denoiser config, with its own schedule unless one is given; `model` is the denoiser
    (the continuous process works in its embedding space)."""
    schedule = schedule or get_schedule(getattr(config, "schedule", "loglinear"))
    return PROCESSES[process_name(config)](config, schedule, model)
