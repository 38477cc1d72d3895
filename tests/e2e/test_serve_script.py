"""``scripts/serve`` as a new user meets it: it says what it is doing on the first run, then how to
run ``iflow2api`` directly; later runs start at once, quietly.

Run in a copy of the scripts with a stand-in Python whose ``venv`` and ``pip`` only record what they
were asked and leave an ``iflow2api`` that echoes its arguments: the scripts' own logic, in a second.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PYTHON = """#!/bin/sh
# The stand-in for "python3 -m venv .venv": a .venv whose python is the stand-in pip.
echo "venv $*" >> calls
mkdir -p .venv/bin
cat > .venv/bin/python <<'PIP'
#!/bin/sh
echo "pip $*" >> calls
printf '#!/bin/sh\\necho "iflow2api $*"\\n' > .venv/bin/iflow2api
chmod +x .venv/bin/iflow2api
PIP
chmod +x .venv/bin/python
"""


def checkout(tmp_path: Path) -> Path:
    tree = tmp_path / "iflow2api"
    (tree / "scripts").mkdir(parents=True)
    for script in ("serve", "install"):
        shutil.copy2(ROOT / "scripts" / script, tree / "scripts" / script)
    (tree / "pyproject.toml").write_text("[project]\nname = 'iflow2api'\n")
    python = tmp_path / "python3"
    python.write_text(PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return tree


def calls(tree: Path, tool: str) -> int:
    """How often the stand-in ``tool`` (venv or pip) was run."""
    return sum(line.startswith(tool + " ") for line in (tree / "calls").read_text().splitlines())


def serve(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": str(tree.parent / "python3")}
    return subprocess.run(
        [str(tree / "scripts" / "serve"), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_first_run_says_what_it_does_and_how_to_run_iflow2api(tmp_path: Path) -> None:
    tree = checkout(tmp_path)
    first = serve(tree, "--port", "9000")
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert lines[0] == "Setting up .venv (first run only)…"
    assert lines[1] == "Installing iflow2api into .venv…"
    assert "run it as .venv/bin/iflow2api" in first.stderr
    assert "  .venv/bin/iflow2api accounts add --provider deepseek --key -" in lines
    assert first.stdout == "iflow2api --port 9000\n"  # then it runs the gateway with the arguments
    assert calls(tree, "pip") == 2  # pip itself, then iflow2api

    later = serve(tree, "status")
    assert later.returncode == 0
    assert later.stderr == ""
    assert later.stdout == "iflow2api status\n"
    assert calls(tree, "pip") == 2  # no second install


def test_a_changed_pyproject_installs_again(tmp_path: Path) -> None:
    tree = checkout(tmp_path)
    assert serve(tree).returncode == 0
    future = time.time() + 60
    os.utime(tree / "pyproject.toml", (future, future))
    again = serve(tree)
    assert again.returncode == 0
    assert "Setting up .venv" not in again.stderr
    assert again.stderr.startswith("Installing iflow2api into .venv…\n")
    assert calls(tree, "venv") == 1
