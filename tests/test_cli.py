"""The medrepro console script: help, unknown commands, bad arguments."""
import os, pathlib, subprocess, sys

BIN = pathlib.Path(sys.executable).parent / "medrepro"


def run(*args):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120)


def test_console_script_lives_in_the_venv():
    assert BIN.exists(), BIN


def test_help_lists_every_command():
    from medrepro.cli import COMMANDS
    r = run("--help")
    assert r.returncode == 0
    for name in COMMANDS:
        assert name in r.stdout


def test_unknown_command_is_one_line_exit_2():
    r = run("bogus")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "unknown command 'bogus'" in r.stderr and "Traceback" not in r.stderr


def test_typo_gets_a_suggestion():
    r = run("verison")
    assert r.returncode == 2 and "did you mean 'version'" in r.stderr


def test_bad_argument_is_one_line_exit_2():
    r = run("version", "--bogus-flag")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "unrecognized arguments" in r.stderr


def test_version_prints_packages():
    r = run("version")
    assert r.returncode == 0 and "torch 2." in r.stdout and "medrepro 0." in r.stdout


def test_every_command_has_help():
    from medrepro.cli import COMMANDS, _load
    for name, (target, _) in COMMANDS.items():
        if _load(target) is None:
            continue  # not built yet: `medrepro NAME` says so (checked below)
        r = run(*name.split(), "--help")
        assert r.returncode == 0 and f"medrepro {name}" in r.stdout, (name, r.stderr)
