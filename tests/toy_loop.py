"""A toy sampler with a loop of its own (what a new sampler's module holds): one step writes one token into every
span position. Registered by tests/test_samplers.py to show that the registry's runnable reaches every layer."""
import torch


def run(bundle, ids, req, editable, row_seeds=None):
    from edlm.runner import Progress
    from edlm.sampling import StepEvent

    token = bundle.tokenizer.convert_tokens_to_ids("▁the")
    prev = ids.clone()
    ids[:, editable] = token
    ev = StepEvent(step=1, total_steps=1, t=1.0, s=0.0, tokens=ids.clone(), fixed=~editable.expand_as(ids),
                   revealed=ids != prev, denoiser_calls=0, energy_calls=0, elapsed=0.0)
    yield ev, Progress(0, 1, (0, ids.shape[1]), 0, 0, 1, 1, True)


def choose_lengths(bundle, template, req):
    return [s.length or 2 for s in template.spans], {}
    yield  # a generator, like every length chooser


def steps(req, editable):
    return 1


def work(bundle, req, editable, batch=1):
    return int(editable.sum()) * batch
