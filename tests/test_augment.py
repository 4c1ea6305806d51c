"""Data augmentation: fixed text byte-identical, protected words kept, fields carried, resume = uninterrupted,
bad input refused with one line."""
import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edlm.augment import AugmentConfig, augment, run_file

SENTENCES = ["The Congress shall have power to lay and collect taxes.",
             "We the people of the United States, in order to form a more perfect union.",
             "Peace, commerce, and honest friendship with all nations.",
             "Hi",
             "The public debt of the country must be paid in full, with interest, by 1890."]


def cut(text, ranges):
    out, pos = [], 0
    for a, b in ranges:
        out.append(text[pos:a])
        pos = b
    return out + [text[pos:]]


def check_variants(res):
    for v in res.variants:
        assert cut(v.text, v.rewritten) == cut(res.text, v.replaced)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40), min_size=1,
                max_size=3), st.sampled_from(["tokens", "words"]))
def test_text_outside_the_rewritten_ranges_is_byte_identical(bundle, texts, unit):
    cfg = AugmentConfig(n=2, rewrite=0.5, unit=unit, min_units=1, settings=dict(sampler="mdlm", steps=3))
    for res in augment(bundle, texts, cfg):
        assert res.text == texts[res.index]
        check_variants(res)


def test_keep_words_and_regex_survive(bundle):
    cfg = AugmentConfig(n=6, rewrite=0.9, span_mean=3, keep=("Congress", "taxes"), keep_regex=r"[0-9]+",
                        settings=dict(sampler="mdlm", steps=4))
    for res in augment(bundle, SENTENCES, cfg):
        check_variants(res)
        for v in res.variants:
            for word in ("Congress", "taxes", "1890"):
                if word in res.text:
                    assert word in v.text and not any(a < v.text.index(word) + len(word) and v.text.index(word) < b
                                                       for a, b in v.rewritten)
        if res.text == "Hi":
            assert res.status == "too_short" and not res.variants


def test_same_seed_same_output_whatever_the_batching(bundle):
    base = dict(n=3, settings=dict(sampler="edlm-ar", steps=4, k=2))
    a = [r.to_json() for r in augment(bundle, SENTENCES, AugmentConfig(batch_size=32, **base))]
    b = [r.to_json() for r in augment(bundle, SENTENCES, AugmentConfig(batch_size=1, chunk=2, **base))]
    assert json.dumps(a) == json.dumps(b)
    c = [r.to_json() for r in augment(bundle, SENTENCES, AugmentConfig(seed=1, **base))]
    assert json.dumps(a) != json.dumps(c)


def test_jsonl_fields_pass_through_and_resume_equals_a_full_run(bundle, tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": i, "label": f"L{i % 2}", "body": s}) + "\n"
                           for i, s in enumerate(SENTENCES)))
    cfg = AugmentConfig(n=2, chunk=2, settings=dict(sampler="mdlm", steps=4))
    full = tmp_path / "full.jsonl"
    report = run_file(bundle, inp, full, cfg, field_name="body", progress=False)
    assert report["records"] == 5 and report["passed_through"] == 1
    lines = [json.loads(line) for line in full.read_text().splitlines()]
    assert [x["record"] for x in lines] == [json.loads(line) for line in inp.read_text().splitlines()]
    part = tmp_path / "part.jsonl"
    with pytest.raises(RuntimeError):
        def stop_after_two():
            import importlib

            mod = importlib.import_module("edlm.augment")

            calls = {"n": 0}
            original = mod.Summary.add

            def add(self, res):
                calls["n"] += 1
                if calls["n"] > 2:
                    raise RuntimeError("crash")
                original(self, res)
            mod.Summary.add = add
            try:
                run_file(bundle, inp, part, cfg, field_name="body", progress=False)
            finally:
                mod.Summary.add = original
        stop_after_two()
    with open(part, "ab") as f:
        f.write(b'{"index": 3, "torn')  # a crash in the middle of a line
    with pytest.raises(ValueError, match="--resume"):
        run_file(bundle, inp, part, cfg, field_name="body", progress=False)
    report = run_file(bundle, inp, part, cfg, field_name="body", resume=True, progress=False)
    assert report["resumed_after"] == 3
    assert part.read_text() == full.read_text()


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edlm", "augment", *args], capture_output=True, text=True,
                          timeout=300)


def test_csv_through_the_command_line(bundle_dir, tmp_path):
    inp = tmp_path / "in.csv"
    inp.write_text('label,text\npos,"The people of the Union are strong, and free."\nneg,"War, debt, and ruin."\n')
    out = tmp_path / "out.jsonl"
    r = cli("--model", str(bundle_dir), "--input", str(inp), "--output", str(out), "--column", "text", "--n", "2",
            "--sampler", "mdlm", "--steps", "3", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["records"] == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["record"]["label"] for x in rows] == ["pos", "neg"]


@pytest.mark.parametrize("content, args, message", [
    ('{"body": "x"}\n', ["--field", "text"], "no text field 'text'"),
    ('a,b\n"1,2\n', ["--column", "a"], "bad CSV"),
    ("", [], "holds no records"),
    ("one line\n", ["--n", "33"], "n must be"),
    ("one line\n", ["--rewrite", "2"], "rewrite must be"),
    ("{not json\n", ["--field", "t"], "not JSON"),
])
def test_bad_input_is_one_line_and_leaves_no_unexplained_file(bundle_dir, tmp_path, content, args, message):
    suffix = ".csv" if "--column" in args else ".jsonl" if "--field" in args else ".txt"
    inp = tmp_path / f"in{suffix}"
    inp.write_text(content)
    out = tmp_path / "out.jsonl"
    r = cli("--model", str(bundle_dir), "--input", str(inp), "--output", str(out), "--steps", "2", *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() or out.read_text() == ""
    r = cli("--model", str(bundle_dir), "--input", str(tmp_path / "missing.txt"), "--output", str(out))
    assert r.returncode == 2 and "no such input file" in r.stderr


def test_library_call_with_keyword_options(bundle):
    import edlm

    results = list(edlm.augment(bundle, ["The state of the Union is strong and growing."], n=2, rewrite=0.3,
                                sampler="mdlm", steps=3))
    assert len(results) == 1 and results[0].status == "ok" and 1 <= len(results[0].variants) <= 2
    with pytest.raises(ValueError, match="unknown setting"):
        list(edlm.augment(bundle, ["x y z w"], n=2, sampler="mdlm", stepz=3))


def test_rows_are_batched_without_padding(bundle):
    """Rows share a batch only with rows of their token length: the denoiser attends both ways, so padding would
    make a row's rewrite depend on its batch."""
    seen, forward = [], bundle.denoiser.forward
    bundle.denoiser.forward = lambda x, t, **kw: seen.append(x.clone()) or forward(x, t, **kw)
    try:
        short = ["Peace and honest friendship.", "The people of the States.", "We shall pay the debt.",
                 "The Congress shall have power."] * 4  # each fits the tiny model's 32-token window
        list(augment(bundle, short, AugmentConfig(n=3, batch_size=32, settings=dict(sampler="mdlm", steps=4))))
    finally:
        del bundle.denoiser.forward
    eos = bundle.tokenizer.eos_token_id
    assert seen and max(x.shape[0] for x in seen) > 3  # several records' rows in one pass
    assert not any(bool((x == eos).any()) for x in seen)
