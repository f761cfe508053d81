"""Static check of the commands in the docs: modules, flags, flag files and scripts exist.

Runs no command (tools/check_docs.py does); each module's flags come from its ``--helpfull``.
"""

import concurrent.futures
import functools
import glob
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import check_docs  # noqa: E402

INLINE = re.compile(r"`([^`\n]*\bpython3? [^`\n]+)`")
HELP_FLAG = re.compile(r"^\s*--(?:\[no\])?([\w-]+)", re.M)
NAMED_PATH = re.compile(r"\b((?:configs|benchmarks)/[\w./{},*-]*\w)")
SEPARATORS = {"&&", "||", ";", "|", "&"}


def doc_commands(text, doc="<doc>"):
    """Every command of a document: shell-block lines and inline code spans running python."""
    return [c.text for c in check_docs.extract_commands(text, doc)] + INLINE.findall(text)


def invocations(command):
    """(target, [(flag, value)]) per ``python -m MODULE`` / ``python SCRIPT`` of a command."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words, segments = [], []
    for token in list(lexer) + [";"]:
        if token in SEPARATORS:
            segments.append(words)
            words = []
        else:
            words.append(token)
    for words in segments:
        if len(words) < 2 or words[0] not in ("python", "python3"):
            continue
        target, args = (words[2], words[3:]) if words[1] == "-m" else (words[1], words[2:])
        if target.startswith("tf_defocus") or target.endswith(".py"):
            yield target, [tuple(a[2:].split("=", 1)) if "=" in a else (a[2:], None)
                           for a in args if a.startswith("--")]


def target_exists(target):
    if target.endswith(".py"):
        return (REPO / target).is_file()
    path = REPO.joinpath(*target.split("."))
    return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()


def flagfile_flags(path):
    return [line.strip()[2:].split("=", 1)[0] for line in path.read_text().splitlines()
            if line.strip().startswith("--")]


def command_problems(command, defined_flags):
    """What is wrong with a command; defined_flags(target) gives the flag names it defines."""
    problems = []
    for target, flags in invocations(command):
        if not target_exists(target):
            problems.append(f"{target}: no such module or script")
            continue
        defined = defined_flags(target) if flags else ()
        for name, value in flags:
            if name not in defined and not (name.startswith("no") and name[2:] in defined):
                problems.append(f"{target}: unknown flag --{name}")
            if name == "flagfile" and value:
                if not (REPO / value).is_file():
                    problems.append(f"{target}: no flag file {value}")
                    continue
                problems += [f"{target}: {value} sets unknown flag --{f}"
                             for f in flagfile_flags(REPO / value) if f not in defined]
    return problems


def _expand_braces(pattern):
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [x for alt in m.group(1).split(",")
            for x in _expand_braces(pattern[:m.start()] + alt + pattern[m.end():])]


def missing_paths(text):
    """configs/ and benchmarks/*.py paths named in a document that match no file."""
    return sorted({p for name in NAMED_PATH.findall(text) for p in _expand_braces(name)
                   if not glob.glob(str(REPO / p))})


def doc_problems(text, defined_flags, doc="<doc>"):
    return ([p for c in doc_commands(text, doc) for p in command_problems(c, defined_flags)]
            + [f"no such path {p}" for p in missing_paths(text)])


@functools.cache
def help_flags(target):
    """Flag names in ``--helpfull`` (an absl module) or ``--help`` (a script, or a module using
    argparse) output."""
    argv = ["-m", target, "--helpfull"] if not target.endswith(".py") else [target, "--help"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))

    def run(args):
        return subprocess.run(["nice", "-n", "19", sys.executable, *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
    out = run(argv)
    if out.returncode == 2 and "usage:" in out.stderr and argv[-1] == "--helpfull":
        argv[-1] = "--help"
        out = run(argv)
    assert out.returncode == 0, f"{target} {argv[-1]} exited {out.returncode}: {out.stderr[-2000:]}"
    return frozenset(HELP_FLAG.findall(out.stdout))


@pytest.fixture(scope="module")
def all_help_flags():
    """Runs every documented module's help once, four processes at a time (each start-up imports
    TensorFlow: one after another they took about a minute)."""
    targets = {t for doc in check_docs.doc_paths()
               for c in doc_commands((REPO / doc).read_text(), doc)
               for t, flags in invocations(c) if flags and target_exists(t)}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(help_flags, sorted(targets)))
    return help_flags


@pytest.mark.parametrize("doc", check_docs.doc_paths())
def test_doc_commands_name_existing_modules_flags_and_files(doc, all_help_flags):
    assert doc_problems((REPO / doc).read_text(), all_help_flags, doc) == []


PLANTED = """
```bash
python -m tf_defocus.predict --model=m.keras --input=photos/ --nolegend
python -m tf_defocus.predict --modle=m.keras
python -m tf_defocus.nosuch --x=1
python -m tf_defocus.train --flagfile=configs/nosuch.flags
python -m tf_defocus.train --flagfile=configs/quickstart.flags
python benchmarks/nosuch.py && python -m pytest -q
```
See `python -m tf_defocus.predict --bogus=1` and configs/ablation_{B,XX}.flags.
"""


def test_planted_bad_commands_are_reported():
    fake = {"tf_defocus.predict": {"model", "input", "legend"},
            "tf_defocus.train": {"flagfile", "task"}}.get
    assert doc_problems(PLANTED, fake) == [
        "tf_defocus.predict: unknown flag --modle",
        "tf_defocus.nosuch: no such module or script",
        "tf_defocus.train: no flag file configs/nosuch.flags",
    ] + [f"tf_defocus.train: configs/quickstart.flags sets unknown flag --{f}"
         for f in flagfile_flags(REPO / "configs/quickstart.flags") if f != "task"] + [
        "benchmarks/nosuch.py: no such module or script",
        "tf_defocus.predict: unknown flag --bogus",
        "no such path benchmarks/nosuch.py",
        "no such path configs/ablation_XX.flags",
        "no such path configs/nosuch.flags",
    ]


def test_extractor_conventions():
    text = """
```bash
# a comment
python -m venv .venv && . .venv/bin/activate && pip install -e . && python -m tf_defocus.train \\
    --model_dir=runs/x
```

<!-- docs-check: skip needs Docker -->
```sh
docker run x
```

```console
$ echo hi
hi
```

```text
python -m not.a.command
```
"""
    commands = check_docs.extract_commands(text, "d.md")
    assert [(c.line, c.text, c.skip) for c in commands] == [
        (4, "python -m venv .venv && . .venv/bin/activate && pip install -e . && "
            "python -m tf_defocus.train --model_dir=runs/x", None),
        (10, "docker run x", "needs Docker"),
        (14, "echo hi", None)]
    assert check_docs.runnable(commands[0].text, 20) == (
        "python -m tf_defocus.train --model_dir=runs/x --train_steps=20 --pretrain_steps=10")
    assert check_docs.runnable("pip install .", 20) == ""
    assert check_docs.runnable("python -m tf_defocus.train --a=1  # 5 min", 4) == (
        "python -m tf_defocus.train --a=1 --train_steps=4 --pretrain_steps=2")
    with pytest.raises(ValueError, match="without a reason"):
        check_docs.extract_commands("<!-- docs-check: skip -->\n```bash\nls\n```\n")


def test_runner_reports_a_failing_command(tmp_path, capsys):
    doc = tmp_path / "planted.md"
    doc.write_text("```bash\ntest -f photo.jpg && test -d runs\nfalse\n```\n\n"
                   "<!-- docs-check: skip planted -->\n```bash\nfalse\n```\n")
    assert check_docs.main(["--only", str(doc), "--timeout=60"]) == 1
    out = capsys.readouterr().out
    assert "[ok" in out and "[FAILED" in out and "reason: planted" in out
    assert out.splitlines()[-1] == "1 ok, 1 failed, 1 skipped"
