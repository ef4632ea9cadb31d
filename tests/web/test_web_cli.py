"""``ttr web`` and ``ttr web hash-password``."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ROOT, ready_line


class _Stdin(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_hash_password_reads_stdin_never_argv(run_cli, monkeypatch):
    from runtime.web._auth import verify_password

    monkeypatch.setattr(sys, "stdin", _Stdin("correct horse\n"))
    code, out, err = run_cli("web", "hash-password")
    assert code == 0, err
    assert verify_password(out.strip(), "correct horse")
    monkeypatch.setattr(sys, "stdin", _Stdin("\n"))
    code, out, err = run_cli("web", "hash-password")
    assert code == 2 and "the password is empty" in err and out == ""
    with pytest.raises(SystemExit) as exc:                     # a password on the command line: no such option
        run_cli("web", "hash-password", "--password", "x")
    assert exc.value.code == 2


def test_hash_password_prompts_twice_on_a_terminal(run_cli, monkeypatch):
    class Tty(_Stdin):
        def isatty(self) -> bool:
            return True

    answers = iter(["one", "two"])
    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, out, err = run_cli("web", "hash-password")
    assert code == 2 and "the two passwords differ" in err


def test_ttr_web_serves_until_sigterm(web_stack, tmp_path):
    env = {**os.environ, "TTR_SESSION_SECRET": "s" * 40, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "ttr"), "web", "--config", str(web_stack.path),
                             "--port", "0"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = ready_line(proc)
        assert line.startswith("ready portal=http://127.0.0.1:"), line
        url = line.split("=", 1)[1].strip()
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/api/me").status_code == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        err = proc.stderr.read()
        assert "demo login: alice / alice-demo (submitter)" in err
        assert not (tmp_path / ".ttr").exists()            # the secret came from the environment
    finally:
        if proc.poll() is None:
            proc.kill()
