"""Run every command of the README's bash blocks as a user of a fresh clone would (CI runs this after the tests):
the set-up blocks' `pip install` lines first (CI has made the venv already), then each other command, in the
README's order, from the repository root. Slow commands run in their quick form (QUICK below, the only
substitutions made), and files a command writes go to a temporary folder. Exits 1 when any command fails.

    python scripts/readme_commands.py [--list]
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The quick form of commands whose README form takes minutes (the README's own words say what they measure).
QUICK = {
    "--preset quick": "--preset tiny --out {tmp}/bench",
    "eval --split validation": "eval --split validation --windows 16 --mc-draws 1",
    "--output variants.jsonl": "--output {tmp}/variants.jsonl",
}


def commands(readme: str) -> tuple[list[str], list[str]]:
    """(pip install lines, other commands) of the README's ```bash blocks; the blocks that make a venv are the
    set-up commands, which CI runs itself."""
    setup, run = [], []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
        lines = [line for line in lines if line]
        if any("python3 -m venv" in line for line in lines):
            continue
        for line in lines:
            for part in (p.strip() for p in line.split("&&")):
                (setup if part.startswith("pip install") else run).append(part)
    return list(dict.fromkeys(setup)), run


def quick(cmd: str, tmp: str) -> str:
    for slow, fast in QUICK.items():
        cmd = cmd.replace(slow, fast.format(tmp=tmp))
    return cmd


def main() -> None:
    setup, run = commands((ROOT / "README.md").read_text(encoding="utf-8"))
    if "--list" in sys.argv:
        print("\n".join(setup + run))
        return
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        print("| command | seconds | result |\n|---|---|---|")
        for cmd in setup + [quick(c, tmp) for c in run]:
            t0 = time.perf_counter()
            r = subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=1800)
            ok = r.returncode == 0
            failed += not ok
            print(f"| `{cmd[:110]}` | {time.perf_counter() - t0:.1f} | {'ok' if ok else 'FAILED'} |", flush=True)
            if not ok:
                print((r.stderr or r.stdout)[-1500:], file=sys.stderr)
    if failed:
        raise SystemExit(f"{failed} README command(s) failed")


if __name__ == "__main__":
    main()
