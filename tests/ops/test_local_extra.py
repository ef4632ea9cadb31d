"""moto (the embedded AWS emulator) is the `local` extra, not a runtime dependency: without it,
`ttr local up` and `ttr demo` say what to install and exit 1, without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

# moto made unimportable in a fresh interpreter, as in an image built from deploy/requirements.lock
WITHOUT_MOTO = ("import sys; sys.modules['moto'] = None; from runtime.cli.main import main; "
                "raise SystemExit(main(sys.argv[1:]))")


@pytest.mark.parametrize("argv", [["local", "up", "--emulators-only"], ["demo"]], ids=["local-up", "demo"])
def test_without_the_local_extra_the_embedded_stack_says_what_to_install(argv):
    proc = subprocess.run([sys.executable, "-c", WITHOUT_MOTO, *argv, "--config", "configs/local.yaml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'ttr[local]'" in proc.stderr and "moto" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
