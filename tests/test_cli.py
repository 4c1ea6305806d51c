import json
import subprocess
import sys

import pytest


def cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "edlm", *args], capture_output=True, text=True, input=stdin,
                          timeout=300)


@pytest.mark.parametrize("cmd", [[], ["infill"], ["generate"], ["eval"], ["train"]])
def test_help(cmd):
    r = cli(*cmd, "--help")
    assert r.returncode == 0 and "usage" in r.stdout


def test_infill_json(bundle_dir):
    r = cli("infill", "--model", str(bundle_dir), "--text", "The [MASK:3] of the Union.", "--steps", "4",
            "--sampler", "edlm-ar", "--k", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["text"].startswith("The ") and out["text"].endswith(" of the Union.")
    assert out["sampler"] == "edlm-ar" and len(out["spans"]) == 1 and out["steps"] >= 1 and out["seconds"] > 0


def test_infill_stream_json_lines(bundle_dir):
    r = cli("infill", "--model", str(bundle_dir), "--text", "The [MASK:3] of the [MASK:2].", "--steps", "4",
            "--sampler", "edlm-nce", "--is-window", "1", "--stream", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines[-1]["final"] is True and "[MASK]" not in lines[-1]["text"]
    steps = lines[:-1]
    assert len(steps) >= 2 and 0 < steps[0]["masked"] <= 5 and "[MASK]" in steps[0]["text"]
    assert [s["masked"] for s in steps] == sorted((s["masked"] for s in steps), reverse=True)
    for s in steps:
        assert {"step", "t", "text", "masked"} <= set(s)
        if "weights" in s:
            assert abs(sum(s["weights"]) - 1) < 1e-5 and 1 <= s["ess"] <= len(s["weights"]) + 1e-6


def test_text_file_and_stdin(bundle_dir, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("A [MASK:2] b")
    assert cli("infill", "--model", str(bundle_dir), "--text-file", str(f), "--steps", "2").returncode == 0
    r = cli("infill", "--model", str(bundle_dir), "--text-file", "-", "--steps", "2", stdin="A [MASK:2] b")
    assert r.returncode == 0 and r.stdout.startswith("A ")


def test_generate_json_lines(bundle_dir):
    r = cli("generate", "--model", str(bundle_dir), "--length", "8", "--num-samples", "2", "--steps", "4", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 2 and all("text" in row for row in rows)


@pytest.mark.parametrize("args, message", [
    (["--text", "no span"], "no span"), (["--text", "a [MASK:0]"], "out of range"),
    (["--text", "a [MASK:2]", "--steps", "0"], "steps"), (["--text", "a [MASK:2]", "--sampler", "x"], "sampler"),
    (["--text", "a [MASK:2]", "--model", "no-such-model"], "unknown model"),
    (["--text-file", "no/such/file.txt"], "no such text file"),
])
def test_bad_input_exits_nonzero_with_one_line(bundle_dir, args, message):
    model = [] if "--model" in args else ["--model", str(bundle_dir)]
    r = cli("infill", *model, *args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr


def test_eval(bundle_dir, corpus):
    r = cli("eval", "--model", str(bundle_dir), "--corpus", str(corpus), "--windows", "4", "--mc-draws", "2",
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["denoiser_elbo_ppl"] > 1 and out["ar_ppl"] > 1 and set(out["nce_accuracy"]) == {"0.2", "0.5", "0.8"}


@pytest.mark.parametrize("args", [["--help"], ["infill", "--help"], ["infill", "--text", "x", "--steps", "0"]])
def test_help_and_argument_errors_import_no_torch(args):
    """`--help` and a bad flag answer at once: neither imports torch, transformers or gradio."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "edlm", *args], capture_output=True, text=True,
                       timeout=60)
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines() if "|" in line}
    assert not {"torch", "transformers", "gradio"} & loaded


def test_the_corpus_ships_with_the_project_and_keeps_its_split():
    from edlm.data import default_corpus, split_of

    files = sorted(default_corpus().glob("*.txt"))
    splits = [split_of(f.name) for f in files]
    assert len(files) == 233
    assert (splits.count("train"), splits.count("validation"), splits.count("test")) == (187, 23, 23)
