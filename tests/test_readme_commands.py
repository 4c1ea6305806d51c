"""The README's commands as CI runs them (scripts/readme_commands.py): every command found, each file a command
reads ships with the project, and only the documented quick substitutions change a command."""
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("readme_commands", ROOT / "scripts" / "readme_commands.py")
rc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rc)


def test_every_readme_command_is_found_and_its_input_files_ship():
    setup, run = rc.commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert setup and all(c.startswith("pip install") for c in setup)
    assert len(run) >= 10 and all(c.startswith("python -m edlm") for c in run)
    for cmd in run:
        for flag in ("--text-file", "--input"):
            m = re.search(rf"{flag} (\S+)", cmd)
            if m:
                assert (ROOT / m.group(1)).is_file(), f"{cmd}: {m.group(1)} is not in the repository"


def test_quick_forms_touch_only_the_slow_parts():
    assert rc.quick("python -m edlm bench --preset quick", "/t") == "python -m edlm bench --preset tiny --out /t/bench"
    same = "python -m edlm infill --text \"We [MASK:6] the people.\" --stream --json"
    assert rc.quick(same, "/t") == same
