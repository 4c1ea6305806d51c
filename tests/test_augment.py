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


# ------------------------------------------------------------------------------ files are never destroyed
MDLM = dict(sampler="mdlm", steps=3)


def test_the_output_may_never_be_the_input_file_nor_a_link_to_it(bundle, tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("The Congress shall have power to lay taxes.\nPeace and honest friendship with all.\n")
    before = inp.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(inp)
    cfg = AugmentConfig(n=2, settings=MDLM)
    for out, resume in [(inp, True), (inp, False), (link, True), (tmp_path / "." / "in.txt", True)]:
        with pytest.raises(ValueError, match="is the input file"):
            run_file(bundle, inp, out, cfg, progress=False, resume=resume)
    assert inp.read_bytes() == before


@pytest.mark.parametrize("content", [b"my notes, not an augment file\nsecond line\n",
                                     b"".join(b'{"index": %d, "record": {"text": "x"}}\n' % i for i in range(10)),
                                     b""])
def test_resume_refuses_a_file_it_did_not_write_and_changes_nothing(bundle, tmp_path, content):
    inp = tmp_path / "in.txt"
    inp.write_text("The Congress shall have power to lay taxes.\nPeace and honest friendship with all.\n")
    out = tmp_path / "out.jsonl"
    out.write_bytes(content)
    with pytest.raises(ValueError, match="was not written by `edlm augment`"):
        run_file(bundle, inp, out, AugmentConfig(n=2, settings=MDLM), progress=False, resume=True)
    assert out.read_bytes() == content


def test_resume_refuses_other_settings_and_another_input(bundle, tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("The Congress shall have power to lay taxes.\nPeace and honest friendship with all.\n")
    out = tmp_path / "out.jsonl"
    run_file(bundle, inp, out, AugmentConfig(n=2, settings=MDLM), progress=False)
    done = out.read_bytes()
    with pytest.raises(ValueError, match="differs in: config"):
        run_file(bundle, inp, out, AugmentConfig(n=3, settings=MDLM), progress=False, resume=True)
    inp.write_text("Another first line of text here.\nPeace and honest friendship with all.\n")
    with pytest.raises(ValueError, match="another record"):
        run_file(bundle, inp, out, AugmentConfig(n=2, settings=MDLM), progress=False, resume=True)
    assert out.read_bytes() == done


# ------------------------------------------------------------------------------ one bad record never stops a run
def test_bad_records_are_skipped_with_their_line_and_the_rest_is_written(bundle, tmp_path):
    good = "The Congress shall have power to lay taxes."
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join([
        json.dumps({"text": good}),
        '{"text": "a lone surrogate \\ud800 here"}',          # cannot be written back as UTF-8
        '{"text": "not a number", "x": NaN}',                 # NaN is not JSON
        "{broken",
        json.dumps({"text": " ".join(["word"] * 1500)}),       # over the masked-token limit at this rewrite share
        json.dumps({"text": "Peace and honest friendship with all nations."}),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    rep = run_file(bundle, inp, out, AugmentConfig(n=2, rewrite=0.9, settings=MDLM), field_name="text",
                   progress=False)
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]  # valid JSON Lines throughout
    assert [x["index"] for x in lines] == list(range(6))
    assert [x["status"] for x in lines] == ["ok", "skipped", "skipped", "skipped", "invalid", "ok"]
    assert [x["dropped"]["line"] for x in lines[1:4]] == [2, 3, 4]
    assert rep["skipped"] == 3 and rep["skipped_lines"] == [2, 3, 4]
    assert lines[0]["variants"] and lines[5]["variants"]
    for line in out.read_text("utf-8").splitlines():  # no NaN or Infinity constants anywhere
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the output"))
    # the same run resumed from its first three lines gives the same file
    part = tmp_path / "part.jsonl"
    part.write_bytes(b"".join(out.read_bytes().splitlines(True)[:3]))
    import shutil
    shutil.copy(tmp_path / "out.jsonl.run.json", tmp_path / "part.jsonl.run.json")
    run_file(bundle, inp, part, AugmentConfig(n=2, rewrite=0.9, settings=MDLM), field_name="text",
             progress=False, resume=True)
    assert part.read_bytes() == out.read_bytes()


def test_scores_without_an_ar_model_are_null_not_nan(bundle, tmp_path):
    import dataclasses

    no_ar = dataclasses.replace(bundle, ar=None)
    inp = tmp_path / "in.txt"
    inp.write_text("The Congress shall have power to lay taxes.\n")
    out = tmp_path / "out.jsonl"
    run_file(no_ar, inp, out, AugmentConfig(n=2, settings=MDLM), progress=False)
    line = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the output"))
    assert line["variants"] and all(v["score"] is None for v in line["variants"])


def test_a_lone_cr_stays_inside_its_txt_record_and_a_bom_is_not_content(tmp_path):
    from edlm.augment import read_records

    txt = tmp_path / "in.txt"
    txt.write_bytes(b"\xef\xbb\xbfone\rstill one\r\ntwo\n\nlast")
    assert [t for _, t in read_records(txt)] == ["one\rstill one", "two", "", "last"]
    csv_file = tmp_path / "in.csv"
    csv_file.write_bytes(b"\xef\xbb\xbfid,text\n1,hello there\n")
    (rec, text), = read_records(csv_file, column="id")
    assert rec == {"id": "1", "text": "hello there"} and text == "1"


def test_a_huge_line_is_skipped_without_being_held_whole(tmp_path):
    import importlib

    aug = importlib.import_module("edlm.augment")  # (edlm.augment is also the function's name)

    txt = tmp_path / "in.txt"
    with open(txt, "wb") as f:
        f.write(b"first\n" + b"x" * (3 * aug.MAX_LINE_BYTES) + b"\nafter\n")
    items = list(aug.read_records(txt))
    assert items[0][1] == "first" and isinstance(items[1], aug.BadRecord) and items[1].line == 2
    assert items[2][1] == "after"


def test_the_ar_sampler_is_refused_not_silently_replaced(bundle):
    with pytest.raises(ValueError, match="the ar sampler"):
        list(augment(bundle, ["The Congress shall have power to lay taxes."], n=2, sampler="ar"))


def test_kept_words_may_be_typed_with_a_space_after_the_comma(bundle):
    from edlm.augment import parse_keep

    assert parse_keep("battery, dishwasher ,  oven") == ("battery", "dishwasher", "oven")


@pytest.mark.parametrize("unit", ["tokens", "words"])
def test_variants_keep_the_sources_punctuation_and_start(bundle, unit):
    """A rewrite replaces words or word pieces only: a comma or a final period is never rewritten, and a fill at
    the start of the text does not open with a space the source did not have."""
    texts = ["We shall pay the public debt in full.", "Peace, commerce, and honest friendship with all nations!",
             "The Congress shall have power to lay and collect taxes."]
    cfg = AugmentConfig(n=6, rewrite=0.6, unit=unit, settings=dict(sampler="mdlm", steps=4))
    for res in augment(bundle, texts, cfg):
        assert res.variants
        for v in res.variants:
            assert all(res.text[a].isalnum() and res.text[b - 1].isalnum() for a, b in v.replaced)
            assert v.text[-1] == res.text[-1] and not v.text.startswith(" ")
        check_variants(res)


def test_a_fill_that_starts_the_text_or_a_line_opens_with_no_space(bundle):
    from edlm import infill

    for text in ["[MASK:3] shall pay the debt.", "First line.\n[MASK:3] second line."]:
        for seed in range(4):
            ev = infill(bundle, text, sampler="mdlm", steps=4, seed=seed)
            assert not ev.spans[0].startswith(" "), ev.spans
