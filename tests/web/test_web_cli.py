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


def test_ttr_web_refuses_demo_passwords_off_loopback(web_stack, run_cli, tmp_path):
    # reproduced before the fix: admin/admin-demo was only warned about, and served on any host
    code, out, err = run_cli("web", "--config", str(web_stack.path), "--host", "0.0.0.0", "--port", "0")
    assert code == 2 and out == ""
    assert "not serving the portal" in err and "admin" in err and "it listens on 0.0.0.0" in err
    import yaml

    data = yaml.safe_load(web_stack.path.read_text())
    data.setdefault("email", {})["portal_base_url"] = "https://changes.example.com"
    public = tmp_path / "public.yaml"
    public.write_text(yaml.safe_dump(data))
    code, out, err = run_cli("web", "--config", str(public), "--port", "0")     # loopback, but announced as https
    assert code == 2 and "https" in err and "ttr web hash-password" in err
