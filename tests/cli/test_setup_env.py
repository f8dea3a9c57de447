"""tools/setup_env.py --system: the browser the page test needs is installed, or set-up stops with one line.

`make test` and `make demo` run it before anything else; a second run must cost nothing (no apt-get
when both binaries exist), and a user who may not install system packages gets the command to run.
"""
import importlib.util
import subprocess
from collections import namedtuple

import pytest

from tests.helpers.tools import ROOT

shutil_usage = namedtuple("usage", "total used free")  # shutil.disk_usage's result


@pytest.fixture
def setup_env():
    spec = importlib.util.spec_from_file_location("setup_env", ROOT / "tools" / "setup_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _machine(monkeypatch, setup_env, on_path, uid, sudo_ok=False, apt_ok=True):
    """A machine with the binaries `on_path`; returns the list of commands set-up ran."""
    ran = []

    def which(name):
        return f"/usr/bin/{name}" if name in on_path else None

    def run(cmd, **kwargs):
        ran.append(list(cmd))
        if cmd[:2] == ["sudo", "-n"] and cmd[2:] == ["true"]:
            return subprocess.CompletedProcess(cmd, 0 if sudo_ok else 1)
        if "install" in cmd and apt_ok:
            on_path.update(setup_env.SYSTEM)
        return subprocess.CompletedProcess(cmd, 0 if apt_ok else 100)

    monkeypatch.setattr(setup_env.shutil, "which", which)
    monkeypatch.setattr(setup_env.subprocess, "run", run)
    monkeypatch.setattr(setup_env.os, "geteuid", lambda: uid)
    return ran


def test_nothing_runs_when_both_binaries_exist(monkeypatch, setup_env):
    ran = _machine(monkeypatch, setup_env, {"chromium", "chromedriver", "apt-get", "sudo"}, uid=1000)
    setup_env.install_system()
    assert ran == []


def test_root_installs_the_missing_packages_with_apt_get(monkeypatch, setup_env):
    ran = _machine(monkeypatch, setup_env, {"chromium", "apt-get"}, uid=0)
    setup_env.install_system()
    assert ran == [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium-driver"]]


def test_passwordless_sudo_installs_them(monkeypatch, setup_env):
    ran = _machine(monkeypatch, setup_env, {"apt-get", "sudo"}, uid=1000, sudo_ok=True)
    setup_env.install_system()
    assert ran == [["sudo", "-n", "true"], ["sudo", "-n", "apt-get", "update", "-qq"],
                   ["sudo", "-n", "apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]]


def test_without_root_or_sudo_it_stops_with_the_command_to_run(monkeypatch, setup_env, capsys):
    ran = _machine(monkeypatch, setup_env, {"apt-get", "sudo"}, uid=1000, sudo_ok=False)
    with pytest.raises(SystemExit) as stop:
        setup_env.main(["--system"])
    message = str(stop.value.code)
    assert message.count("\n") == 0
    assert "sudo apt-get install -y -qq chromium chromium-driver" in message, message
    assert ran == [["sudo", "-n", "true"]]  # stopped before any Python package is looked at


def test_a_failed_apt_get_stops_set_up(monkeypatch, setup_env):
    _machine(monkeypatch, setup_env, {"apt-get"}, uid=0, apt_ok=False)
    with pytest.raises(setup_env.SetupError, match="apt-get update -qq` failed: the tests need chromium and "):
        setup_env.install_system()


@pytest.mark.parametrize("free_gib, installs", [(5.0, False), (5.49, False), (5.5, True), (40.0, True)])
def test_torch_is_installed_only_where_its_disk_has_room(monkeypatch, setup_env, free_gib, installs):
    """A full disk stops set-up before pip writes anything, with one line saying what is needed and what is free."""
    pipped = []
    monkeypatch.setattr(setup_env, "have", lambda module: False)  # a fresh machine: no torch yet
    monkeypatch.setattr(setup_env, "pip", lambda *args: pipped.append(args))
    monkeypatch.setattr(setup_env.shutil, "disk_usage",
                        lambda path: shutil_usage(total=100 * 2**30, used=0, free=int(free_gib * 2**30)))
    if installs:
        setup_env.install_torch()
        assert pipped == [("install", *setup_env.TORCH)]
        return
    with pytest.raises(SystemExit) as stop:
        monkeypatch.setattr(setup_env, "setup", lambda system=False: setup_env.install_torch())
        setup_env.main([])
    message = str(stop.value.code)
    assert pipped == []
    assert message.count("\n") == 0
    assert f"needs about 5.5 GiB in {setup_env.SITE}, but its disk has {free_gib:.2f} GiB free" in message, message
