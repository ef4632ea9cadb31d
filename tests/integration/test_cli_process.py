"""The CLI as a user runs it: a separate process, no Ray imported, --help that explains."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from runtime.cli.main import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("ray", "moto", "msgraph") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
"""


def run(*argv, env=None):
    return subprocess.run([sys.executable, "-c", PROBE, *map(str, argv)], capture_output=True, text=True,
                          timeout=60, env=env)


def test_change_commands_import_no_ray(stack, tmp_path, sample_change):
    import yaml

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(sample_change))
    sub = run("change", "submit", p, "--config", stack.path)
    assert sub.returncode == 0, sub.stderr
    assert "HEAVY=\n" in sub.stderr
    change_id = sub.stdout.strip()
    for argv in (("change", "show", change_id), ("change", "list"), ("change", "approve", change_id)):
        r = run(*argv, "--config", stack.path)
        assert r.returncode == 0, r.stderr
        assert "HEAVY=\n" in r.stderr, f"{argv} imported {r.stderr}"


def test_help_explains_every_command():
    out = subprocess.run([sys.executable, "-m", "runtime.cli.main", "change", "submit", "--help"],
                         capture_output=True, text=True, timeout=30).stdout
    assert "Required fields: title, customers" in out and "--draft" in out
    top = subprocess.run([sys.executable, "-m", "runtime.cli.main", "--help"], capture_output=True, text=True,
                         timeout=30).stdout
    for word in ("change", "local", "demo", "exit codes"):
        assert word in top


def test_usage_errors_exit_2():
    r = subprocess.run([sys.executable, "-m", "runtime.cli.main", "change", "frobnicate"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_review_and_example_commands_import_no_ray(stack, tmp_path):
    ex = run("change", "example", "--days", "5")
    assert ex.returncode == 0 and "HEAVY=\n" in ex.stderr, ex.stderr
    p = tmp_path / "example.yaml"
    p.write_text(ex.stdout)
    change_id = run("change", "submit", p, "--config", stack.path).stdout.strip()
    for argv in (("change", "request-changes", change_id, "--comment", "more detail", "--as", "bob"),
                 ("change", "comment", change_id, "--comment", "ok", "--as", "ann")):
        r = run(*argv, "--config", stack.path)
        assert r.returncode == 0 and "HEAVY=\n" in r.stderr, r.stderr
