"""A sentence from keywords: parsing the source, the template, the orders tried, coverage, the library call, the
command line, and the task's pairs built from the corpus splits."""
import json
import subprocess
import sys

import pytest

from edlm.keywords import (MAX_KEYWORDS, coverage, from_keywords, orders_of, parse_keywords, template)


def test_keywords_are_split_by_commas_or_spaces_and_bounded():
    assert parse_keywords("tax, family farms , relief") == ["tax", "family farms", "relief"]
    assert parse_keywords("  tax families relief ") == ["tax", "families", "relief"]
    with pytest.raises(ValueError, match="give the keywords"):
        parse_keywords(" , ")
    with pytest.raises(ValueError, match=f"the limit is {MAX_KEYWORDS}"):
        parse_keywords(" ".join(f"w{i}" for i in range(MAX_KEYWORDS + 1)))
    with pytest.raises(ValueError, match="longer than"):
        parse_keywords("x" * 41)


def test_the_template_spans_every_gap_and_escapes_markup():
    from edlm.spans import parse

    t = template(["tax", "[MASK:2]"], gap=2)
    spans = parse(t).spans
    assert len(spans) == 3 and all(s.length == 2 for s in spans)  # the keyword "[MASK:2]" stays literal text
    assert t.endswith(".")


def test_orders_start_with_the_given_one_are_distinct_and_seeded():
    kw = ["a", "b", "c", "d"]
    out = orders_of(kw, 5, seed=3)
    assert out[0] == kw and len(out) == 5 and len({tuple(o) for o in out}) == 5
    assert out == orders_of(kw, 5, seed=3) and sorted(out[1]) == sorted(kw)
    assert len(orders_of(["a", "b"], 5, 0)) == 2  # no more orders than there are
    with pytest.raises(ValueError, match="orders must be"):
        orders_of(kw, 0, 0)


def test_coverage_counts_whole_words_case_insensitively():
    assert coverage(["Tax", "relief"], "Tax relief for all.") == 1.0
    assert coverage(["tax", "relief"], "Taxes bring relief.") == 0.5  # "tax" inside "Taxes" is not the word


def test_from_keywords_uses_every_keyword_and_keeps_the_likeliest_order(bundle):
    out = from_keywords(bundle, "people, union, states", orders=3, sampler="mdlm", steps=4, seed=2)
    assert coverage(out.keywords, out.text) == 1.0 and len(out.tried) == 3
    best = min(out.tried, key=lambda r: r["ar_nll"])
    assert out.text == best["text"] and out.order == best["order"]
    for r in out.tried:  # each sentence reads its order of the keywords, in that order
        low = r["text"].lower()
        where = [low.index(f" {w} ") if f" {w} " in low else low.index(w) for w in r["order"]]
        assert where == sorted(where)
    again = from_keywords(bundle, "people, union, states", orders=3, sampler="mdlm", steps=4, seed=2)
    assert again.text == out.text


def test_the_command_line_writes_from_a_source(bundle_dir):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "edlm", "generate", "--model", str(bundle_dir), *args],
                              capture_output=True, text=True, timeout=300)

    r = cli("--source", "people, union", "--steps", "4", "--orders", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["coverage"] == 1.0 and len(out["tried"]) == 2 and out["keywords"] == ["people", "union"]
    r = cli("--source", "people", "--length", "4")
    assert r.returncode == 2 and "leave out --length" in r.stderr and "Traceback" not in r.stderr
    r = cli("--steps", "4")
    assert r.returncode == 2 and "give --length" in r.stderr


def test_the_task_is_built_from_the_splits_reproducibly(corpus, tmp_path):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    from scripts.build_keywords import FUNCTION_WORDS, build

    counts = build(str(corpus), str(tmp_path / "a"), seed=1, per_split=50)
    build(str(corpus), str(tmp_path / "b"), seed=1, per_split=50)
    splits = {}
    for split, n in counts.items():
        text = (tmp_path / "a" / f"{split}.jsonl").read_text()
        assert text == (tmp_path / "b" / f"{split}.jsonl").read_text() and n > 0
        splits[split] = [json.loads(line) for line in text.splitlines()]
        for row in splits[split]:
            assert 3 <= len(row["keywords"]) <= 5 and coverage(row["keywords"], row["sentence"]) == 1.0
            assert not set(row["keywords"]) & FUNCTION_WORDS
    sentences = {s: {r["sentence"] for r in rows} for s, rows in splits.items()}
    assert not sentences["test"] & sentences["train"]  # the corpus's split by year carries over
