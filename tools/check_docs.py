"""Run the shell commands written in the docs, in the order written, and report each one.

    python tools/check_docs.py [--only README.md] [--dry-run] [--timeout=1800] [--train_steps=20]

Convention (what counts as a command):

* the lines of fenced code blocks marked ```bash, ```sh or ```shell; in a ```console block only
  the lines starting with ``$ ``. Full-line ``#`` comments are skipped, a line ending in ``\\``
  continues on the next. Inline code (tables, prose) is not run: tests/test_docs_commands.py
  checks it statically (modules, flags, flag files, scripts).
* A block preceded (last non-blank line) by ``<!-- docs-check: skip REASON -->`` is listed but
  not run; the reason is required and printed (e.g. needs Docker, or is the 13-minute test
  suite that CI runs).

How they run:

* Each document runs, from its first command to its last, in its own fresh working copy: the
  files of the HEAD commit, as a fresh clone has them (no runs/, data/, .venv), or with
  ``--worktree`` those of the working tree. Commands are read from the working tree's documents.
  The current virtualenv's python is first on PATH and the copy is on PYTHONPATH. The copies
  share one ``runs/`` folder, so the quickstart model that README.md trains first is the one
  BUILD.md and export/*.md use (``--runs=DIR`` starts it from a copy of DIR, e.g. with ``--only``).
* Install steps of a ``&&`` chain (``python -m venv``, ``. .venv/bin/activate``, ``pip install``)
  are not run: the current virtualenv is used and never modified; ``.ci/run`` checks the install.
* ``python -m tf_defocus.train`` gets ``--train_steps=N --pretrain_steps=N/2`` appended (the
  docs' models would take minutes to hours); ``--train_steps=0`` runs them as written.
* The photos the docs take as the user's own (``photo.jpg``, ``photos/``, ``more/``) are made
  from docs/assets/demo_photo.png.
* Every command runs under ``nice -n 19`` with ``bash -c`` and ``--timeout`` seconds.

Prints ok / failed / skipped with seconds per command, and the first and last lines of the
output of a failed one; the exit status is 1 if any command failed.
"""

import argparse
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "BUILD.md", "export/README.md", "export/DEPLOYMENT.md", "resume/README.md")
SHELL_FENCES = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^\s*```\s*([\w-]*)")
SKIP = re.compile(r"^\s*<!--\s*docs-check:\s*skip\b\s*(.*?)\s*-->\s*$")
INSTALL_STEP = re.compile(r"^(python3? -m venv\b|(\.|source) \S*bin/activate$|pip3? install\b)")
TRAIN = "python -m tf_defocus.train"
ERROR_LINES = 6


@dataclasses.dataclass(frozen=True)
class Command:
    doc: str
    line: int
    text: str
    skip: str | None = None  # reason, if the block is marked skipped


def doc_paths():
    """The documents checked, in order: DOCS, then docs/**/*.md."""
    return list(DOCS) + sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md"))


def extract_commands(text, doc="<doc>"):
    """Commands of the shell code blocks of a Markdown text, in order (see module docstring)."""
    commands, lines = [], text.splitlines()
    previous, i = "", 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            if lines[i].strip():
                previous = lines[i]
            i += 1
            continue
        lang, start = fence.group(1).lower(), i
        i += 1
        body = []
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append((i + 1, lines[i]))
            i += 1
        i += 1
        skip = SKIP.match(previous)
        if previous.lstrip().startswith("<!--") and "docs-check" in previous and not (
                skip and skip.group(1)):
            raise ValueError(f"{doc}:{start}: docs-check marker without a reason: {previous!r}")
        previous = ""
        if lang in SHELL_FENCES:
            commands += _block_commands(body, doc, lang == "console", skip and skip.group(1))
    return commands


def _block_commands(body, doc, console, skip):
    commands, current, first = [], None, 0
    for number, raw in body:
        line = raw.strip()
        if current is None:
            if console:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if not line or line.startswith("#"):
                continue
            current, first = "", number
        current += line[:-1].rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(Command(doc, first, current, skip))
            current = None
    return commands


def runnable(text, train_steps):
    """The command as run: install steps dropped, training shortened (see module docstring)."""
    parts = [p.strip() for p in text.split("&&")]
    kept = [p for p in parts if not INSTALL_STEP.match(p)]
    if train_steps:
        extra = f" --train_steps={train_steps} --pretrain_steps={train_steps // 2}"
        kept = [re.sub(r"\s+#.*$", "", p) + extra if p.startswith(TRAIN) else p for p in kept]
    return " && ".join(kept)


def make_working_copy(dest, runs, worktree=False):
    """A fresh-clone copy of the repo (HEAD, or the working tree) in dest, sharing runs/."""
    if not worktree:
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=REPO,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    else:
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                               check=True, capture_output=True, text=True).stdout.split("\0")
        for name in filter(None, files):
            if (REPO / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, dest / name)
    shutil.rmtree(dest / "runs", ignore_errors=True)
    (dest / "runs").symlink_to(runs, target_is_directory=True)
    _make_user_photos(dest)


def _make_user_photos(dest):
    import cv2  # the package's own dependency, in the current virtualenv
    demo = cv2.imread(str(dest / "docs/assets/demo_photo.png"))
    for name in ("photo.jpg", "photos/demo.jpg", "photos/demo_2.png", "more/demo.png"):
        (dest / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(dest / name), demo)


def run_command(command, cwd, timeout):
    """(ok, seconds, output) of one shell command run under nice in cwd."""
    env = dict(os.environ, PYTHONPATH=str(cwd),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    start = time.monotonic()
    proc = subprocess.Popen(["nice", "-n", "19", "bash", "-c", command], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err = f"timeout after {timeout} s\n{err}"
    return proc.returncode == 0, time.monotonic() - start, err.strip() or out.strip()


def _excerpt(output):
    """The first lines of a failed command's output, and its last ones (a traceback's error)."""
    lines = output.splitlines()
    if len(lines) <= 2 * ERROR_LINES:
        return lines
    return lines[:ERROR_LINES] + ["..."] + lines[-ERROR_LINES:]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", help="document to check (repeatable); default all")
    p.add_argument("--dry-run", action="store_true", help="list the commands, run nothing")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    p.add_argument("--train_steps", type=int, default=20, help="0 = train as written")
    p.add_argument("--runs", help="start the shared runs/ folder from a copy of this one")
    p.add_argument("--keep", action="store_true", help="keep the working copies (path printed)")
    p.add_argument("--worktree", action="store_true",
                   help="copy the working tree (uncommitted changes too) instead of HEAD")
    args = p.parse_args(argv)
    docs = args.only or doc_paths()
    root = Path(tempfile.mkdtemp(prefix="check_docs_"))
    runs = root / "runs"
    if args.runs:
        shutil.copytree(args.runs, runs, symlinks=True)
    else:
        runs.mkdir()
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    try:
        for doc in docs:
            commands = extract_commands((REPO / doc).read_text(), doc)
            if not commands:
                continue
            cwd = root / doc.replace("/", "_")
            if not args.dry_run:
                cwd.mkdir()
                make_working_copy(cwd, runs, args.worktree)
            for c in commands:
                command = runnable(c.text, args.train_steps)
                where = f"{c.doc}:{c.line}"
                if c.skip or not command:
                    counts["skipped"] += 1
                    why = c.skip or "install step: the current virtualenv is used"
                    print(f"[skipped       ] {where}  {c.text}\n    reason: {why}", flush=True)
                    continue
                shown = c.text if command == c.text else f"{c.text}\n    run as: {command}"
                if args.dry_run:
                    print(f"[to run        ] {where}  {shown}")
                    continue
                ok, seconds, output = run_command(command, cwd, args.timeout)
                counts["ok" if ok else "failed"] += 1
                print(f"[{'ok' if ok else 'FAILED':6} {seconds:6.1f}s] {where}  {shown}", flush=True)
                if not ok:
                    print("\n".join("    | " + s for s in _excerpt(output)), flush=True)
    finally:
        if args.keep:
            print(f"working copies kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
