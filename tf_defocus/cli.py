"""Shared command-line plumbing: quiet library start-up logs, ``--verbose``, ``--help`` exit 0.

Standard library only, so it can run before TensorFlow is imported. TensorFlow prints start-up
lines (oneDNN, "Could not find cuda drivers", the cpu_feature_guard notice, an error-level
"failed call to cuInit") on every command, and every worker process prints them again; a user
should see our progress and results instead. Two kinds:

* lines printed while TensorFlow's libraries load, before it initialises its logging ("All
  log messages before absl::InitializeLog() is called are written to STDERR"): TensorFlow 2.21
  prints these whatever ``TF_CPP_MIN_LOG_LEVEL`` says, so ``import_tensorflow_quietly``
  imports TensorFlow with file descriptor 2 redirected to a temporary file and afterwards
  writes back everything that is not such a log line (Python warnings, errors);
* later lines (cuInit, converter logs): hidden by ``TF_CPP_MIN_LOG_LEVEL=3`` (set unless
  already set) and absl / ``tensorflow`` Python logging at ERROR; what TensorFlow Lite and its
  quantizer write straight to stderr ("INFO: Created TensorFlow Lite XNNPACK delegate",
  "fully_quantize: ...") is dropped inside ``quiet_native_output()`` blocks.

Importing ``tf_defocus`` imports TensorFlow (it registers the Keras layers), so an entry module
cannot do this from its own body: ``tf_defocus/__init__.py`` calls
``quiet_if_cli_entry_point()`` first, which quiets the commands listed in
``QUIET_ENTRY_POINTS`` (``python -m <module>`` or the console script) and processes started
with ``TF_DEFOCUS_QUIET=1`` in their environment, which a quieted command sets so that its
worker processes are quiet too. A command opts in by being listed there, defining ``--verbose``
with ``define_verbose_flag`` and (for absl ``app.run`` mains) starting through ``run_app``.
Library users and tests are not affected.

Show everything with ``--verbose`` on the command line (not in a flagfile: it is read before
the flags are parsed) or ``TF_DEFOCUS_VERBOSE=1``.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile
import time

VERBOSE_ENV = "TF_DEFOCUS_VERBOSE"
QUIET_ENV = "TF_DEFOCUS_QUIET"      # set by a quieted command: its worker processes are quiet too
VERBOSE_FLAG = "verbose"
VERBOSE_HELP = ("Show TensorFlow's own start-up and library log lines (hidden by default; "
                f"also {VERBOSE_ENV}=1).")
# Module run with ``python -m`` -> console script of the same command (None: it has none).
QUIET_ENTRY_POINTS = {
    "tf_defocus.train": "tf-defocus-train",
    "tf_defocus.generate": "tf-defocus-generate",
    "tf_defocus.export": "tf-defocus-export",
    "tf_defocus.export.__main__": "tf-defocus-export",
    "tf_defocus.convert_official": "tf-defocus-convert-official",
    "tf_defocus.montage": "tf-defocus-montage",
    "tf_defocus.predict": "tf-defocus-predict",
    "tf_defocus.evaluate": "tf-defocus-evaluate",
    "tf_defocus.training.snapshot": None,
    "tf_defocus.training.report": None,
}
BFC_ENV = "TF_CPU_ALLOCATOR_USE_BFC"
# The commands that run a network on whole photos, for which TensorFlow's BFC CPU allocator is
# switched on (``bfc_allocator_for_inference_commands``).
BFC_ENTRY_POINTS = {m: QUIET_ENTRY_POINTS[m] for m in (
    "tf_defocus.predict", "tf_defocus.evaluate", "tf_defocus.montage")}
_HELP_FLAGS = ("-h", "-help", "--help", "-helpshort", "--helpshort", "-helpfull", "--helpfull",
               "-helpxml", "--helpxml", "-?")
# TensorFlow's own log lines (absl format "I0000 00:00:1796117599.880767   42 file.cc:12] msg"),
# the line absl prints before it is initialised, and cpu_feature_guard's second line.
# TensorFlow Lite's and the converter's direct writes are dropped too.
_CHATTER = re.compile(rb"^([IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] |WARNING: All log "
                      rb"messages before absl::InitializeLog\(\)|To enable the following "
                      rb"instructions: |INFO: Created TensorFlow Lite |INFO: Initialized "
                      rb"TensorFlow Lite runtime|fully_quantize: \d)")
_quieted = False


def _flag_args(argv):
    """The arguments before a ``--`` separator (what absl parses as flags)."""
    args = list(argv[1:]) if argv else []
    return args[:args.index("--")] if "--" in args else args


def wants_verbose(argv=None, environ=None):
    """True if ``--verbose`` (``--verbose=true``) is on the command line, absl's
    ``--verbosity``/``-v`` is given, or ``TF_DEFOCUS_VERBOSE`` is set to a true value."""
    environ = os.environ if environ is None else environ
    if environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    verbose = False
    for a in _flag_args(sys.argv if argv is None else argv):
        name, _, value = a.lstrip("-").partition("=")
        if not a.startswith("-"):
            continue
        if name == VERBOSE_FLAG:
            verbose = value.strip().lower() not in ("0", "false", "no", "off")
        elif name == "no" + VERBOSE_FLAG:
            verbose = False
        elif name in ("verbosity", "v"):
            verbose = True
    return verbose


def entry_point(orig_argv=None):
    """Name of what this process runs: the module of ``python -m MODULE`` or the console
    script's file name; None for ``python -c``, ``python -`` or an interactive interpreter."""
    if orig_argv is None:
        orig_argv = getattr(sys, "orig_argv", None) or []
    argv = list(orig_argv)
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "-m":
            return argv[i + 1] if i + 1 < len(argv) else None
        if a.startswith("-m") and len(a) > 2:
            return a[2:]
        if a in ("-c", "-") or a.startswith("-c"):
            return None
        if a in ("-W", "-X", "--check-hash-based-pycs"):
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return os.path.basename(a)
    return None


def quiet_library_logs(argv=None):
    """Unless ``wants_verbose(argv)``: ``TF_CPP_MIN_LOG_LEVEL=3`` (if not set), absl and
    ``tensorflow`` Python logging at ERROR, ``TF_DEFOCUS_QUIET=1`` for worker processes, and
    TensorFlow imported with its start-up lines dropped. Call before TensorFlow is imported.
    Returns True if it quieted."""
    global _quieted
    if wants_verbose(argv):
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ[QUIET_ENV] = "1"
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    _quieted = True
    quiet_absl()
    import_tensorflow_quietly()
    return True


def import_tensorflow_quietly():
    """``import tensorflow`` with stderr (file descriptor 2) captured; TensorFlow's own log lines
    are dropped, anything else (Python warnings, an error) is written back to stderr."""
    if "tensorflow" in sys.modules:
        return
    with _filtered_stderr():
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def quiet_native_output():
    """In a quieted command, drop the lines that TensorFlow Lite and its converter write
    straight to stderr from C++ ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "fully_quantize: 0, inference_type: 6, ..." once per quantization) inside the block; other
    output is written back when the block ends. Elsewhere (library use, --verbose): nothing."""
    if not _quieted:
        yield
        return
    with _filtered_stderr():
        yield


@contextlib.contextmanager
def _filtered_stderr():
    """Redirect file descriptor 2 to a temporary file for the block, then write back what is
    not ``_CHATTER`` (everything, if the block raised)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        yield                           # no file descriptor to redirect
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().splitlines(keepends=True)
            keep = lines if failed else [l for l in lines if not _CHATTER.match(l)]
            if keep:
                os.write(2, b"".join(keep))


def quiet_absl():
    """absl (and TensorFlow's Python) logging at ERROR; absl's flag parsing resets the level,
    so ``run_app`` calls this again once the flags are parsed."""
    try:
        from absl import logging as absl_logging
    except ImportError:
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


def _is_command(name, commands):
    """True if ``name`` (``entry_point()``) is one of ``commands`` (module -> console script)."""
    return name in commands or (name is not None and name in commands.values())


def bfc_allocator_for_inference_commands(name=None, environ=None):
    """Set ``TF_CPU_ALLOCATOR_USE_BFC=true`` (unless the variable is already set) when this
    process is one of ``BFC_ENTRY_POINTS``; returns True if it set it. Must run before
    TensorFlow creates its CPU allocator (``tf_defocus/__init__.py`` calls it first thing).

    TensorFlow's default CPU allocator mallocs each tensor; glibc hands allocations above 32 MB
    to fresh ``mmap`` pages that the kernel zero-fills on first touch, for every activation of
    every tile (a 1280 px tile at 16 channels is 105 MB). The BFC allocator keeps its memory.
    ``python benchmarks/default_model.py`` compares both in one run."""
    environ = os.environ if environ is None else environ
    if not _is_command(entry_point() if name is None else name, BFC_ENTRY_POINTS):
        return False
    if BFC_ENV in environ:
        return False
    environ[BFC_ENV] = "true"
    return True


def quiet_if_cli_entry_point():
    """``quiet_library_logs()`` when this process is one of ``QUIET_ENTRY_POINTS`` (module or
    console script) or a worker of one (``TF_DEFOCUS_QUIET=1``); otherwise nothing. Called
    first thing by ``tf_defocus/__init__.py``."""
    if _is_command(entry_point(), QUIET_ENTRY_POINTS):
        return quiet_library_logs()
    if os.environ.get(QUIET_ENV) == "1":
        return quiet_library_logs([])     # a worker: the parent already looked at --verbose
    return False


def define_verbose_flag(flag_values=None):
    """Define the boolean ``--verbose`` flag (see ``VERBOSE_HELP``) in ``flag_values`` (absl's
    global FLAGS by default) unless it exists; returns the FlagValues."""
    from absl import flags
    fv = flags.FLAGS if flag_values is None else flag_values
    if VERBOSE_FLAG not in fv:
        flags.DEFINE_boolean(VERBOSE_FLAG, False, VERBOSE_HELP, flag_values=fv)
    return fv


def asked_for_help(argv=None):
    return any(a in _HELP_FLAGS for a in _flag_args(sys.argv if argv is None else argv))


def run_app(main, argv=None, flag_error_code=1):
    """``absl.app.run(main)`` with the conventions of every tf_defocus command: ``--help``
    exits 0 (absl exits 1), library logs stay at ERROR after flag parsing unless verbose, and
    an integer returned by ``main`` is the exit status. ``flag_error_code``: exit status of a
    flag absl cannot parse (unknown flag, bad value; absl's own is 1), for commands whose
    ``main`` returns 1 for something else."""
    from absl import app
    argv = list(sys.argv if argv is None else argv)

    def wrapped(args):
        if _quieted and not wants_verbose(argv):
            quiet_absl()
        return main(args)

    def parse_flags(args):
        try:
            return app.parse_flags_with_usage(args)
        except SystemExit as e:
            if e.code == 1 and flag_error_code != 1 and not asked_for_help(args):
                raise SystemExit(flag_error_code) from None
            raise

    try:
        app.run(wrapped, argv=argv, flags_parser=parse_flags)
    except SystemExit as e:
        if e.code == 1 and asked_for_help(argv):
            raise SystemExit(0) from None
        raise


def define_config_flags(classes, flag_values):
    """One absl flag per setting of the config classes (``tf_defocus.config``), named like the
    setting, with its help and type (bool, int, float, str or enum of its ``choices``, tuple:
    comma-separated list, or a repeatable flag for ``multi`` settings). A setting two classes share with different defaults gets the default
    None and its help names both. Returns ``flag_values``."""
    from absl import flags

    from tf_defocus import config as cfglib

    flags.disclaim_key_flags()   # the flags are the caller's: its --help lists them
    seen = {}
    for cls in classes:
        for name, f, base, _, _ in cfglib.leaves(cls):
            seen.setdefault(name, (f, base, {}))[2][cls] = cfglib.default_of(f)
    for name, (f, base, defaults) in seen.items():
        values = list(defaults.values())
        default = values[0] if all(v == values[0] for v in values) else None
        help_text = f.metadata.get("help", "")
        if default is None and len(set(map(repr, values))) > 1:
            help_text += " (default: " + ", ".join(
                f"{getattr(c, 'TASK', c.__name__)} {v}" for c, v in defaults.items()) + ")"
        choices = f.metadata.get("choices")
        kw = dict(help=help_text, flag_values=flag_values)
        if base is bool:
            flags.DEFINE_boolean(name, default, **kw)
        elif base is int:
            flags.DEFINE_integer(name, default, **kw)
        elif base is float:
            flags.DEFINE_float(name, default, **kw)
        elif base is str and choices:
            flags.DEFINE_enum(name, default, list(choices), **kw)
        elif base is str:
            flags.DEFINE_string(name, default, **kw)
        elif f.metadata.get("multi") and choices:
            flags.DEFINE_multi_enum(name, list(default) if default else None, list(choices),
                                    **kw)
        elif f.metadata.get("multi"):   # repeatable; each value may be a comma list
            flags.DEFINE_multi_string(name, list(default) if default else None, **kw)
        else:   # tuple[...]: a comma-separated list
            flags.DEFINE_list(name, ",".join(map(str, default)) if default else None, **kw)
    return flag_values


def config_from_flags(cls, flag_values, classes=(), append=None):
    """A ``cls`` config from parsed flags: the settings given (command line or flagfile) and
    the defaults of ``cls`` for the others; ``append``: {setting: more values} (positional
    arguments of a ``multi`` setting). Each value of a ``multi`` setting may be a comma list
    (``split_list``). A given flag that is a setting of one of the other ``classes`` but not
    of ``cls`` is a ValueError."""
    from tf_defocus import config as cfglib

    mine = {name: f for name, f, *_ in cfglib.leaves(cls)}
    others = {name for c in classes for name, *_ in cfglib.leaves(c)} - set(mine)
    given = {name: flag_values[name].value for name in flag_values
             if flag_values[name].present and name in set(mine) | others}
    for name, more in (append or {}).items():
        if more:
            given[name] = list(given.get(name) or ()) + list(more)
    for name, value in given.items():
        if name in mine and mine[name].metadata.get("multi"):
            given[name] = tuple(split_list(value))
    foreign = sorted(set(given) & others)
    if foreign:
        raise ValueError(f"--{foreign[0]} is not a setting of {getattr(cls, 'TASK', cls.__name__)}"
                         + (f" (nor {', '.join('--' + n for n in foreign[1:])})"
                            if len(foreign) > 1 else ""))
    return cfglib.from_flat(cls, given)


def config_app(config_cls, run_config, *, prog=None, positional=None, errors=None,
               flag_error_code=1, usage=None, define_flags=None, make_config=None):
    """``(main, run)`` of a command whose flags are the settings of ``config_cls``.

    ``main(argv, flag_values=None)`` -> exit code: the config of the parsed ``flag_values``
    (None: ``argv`` is parsed here into new FlagValues; ``--help`` prints ``usage`` and the
    flags, exit 0; a flag error is one line, exit ``flag_error_code``), then
    ``run_config(config)``, whose int result is the exit code (any other result: 0).
    Positional arguments are more values of the ``multi`` setting ``positional`` (else an
    error). A config that cannot be built, or an exception of a type in ``errors`` ({type: exit
    code}) raised by ``run_config``, is one line ``[<prog>: ]error: <message>`` on stderr
    (exit 2 for the config). ``run()``: the console-script entry point; the flags are defined
    then, never at import: in absl's FLAGS and parsed by ``run_app`` (``usage`` None), else in
    new FlagValues by ``main``. ``define_flags(flag_values)`` / ``make_config(flag_values)``
    replace the defaults (one flag per setting of ``config_cls`` and ``--verbose`` /
    ``config_from_flags``) for a command with several config classes."""
    from absl import flags

    head = f"{prog}: error: " if prog else "error: "

    def fail(e, code):
        print(f"{head}{e}", file=sys.stderr, flush=True)
        return code

    def define(fv):
        if define_flags:
            return define_flags(fv)
        define_config_flags([config_cls], fv)
        return define_verbose_flag(fv)

    def main(argv, flag_values=None):
        if flag_values is None:
            flag_values = define(flags.FlagValues())
            if asked_for_help(argv):
                print("\n".join(t for t in (usage, flag_values.get_help()) if t))
                return 0
            try:
                argv = flag_values(list(argv))
            except flags.Error as e:
                return fail(e, flag_error_code)
        args = list(argv[1:])
        try:
            if args and not positional:
                raise ConfigError(f"unexpected arguments: {' '.join(args)}")
            config = (make_config(flag_values) if make_config else
                      config_from_flags(config_cls, flag_values,
                                        append={positional: args} if positional else None))
        except ValueError as e:
            return fail(e, 2)
        try:
            code = run_config(config)
        except tuple(errors or ()) as e:
            return fail(e, next(c for t, c in errors.items() if isinstance(e, t)))
        return code if isinstance(code, int) else 0

    def run():
        if usage is not None:
            sys.exit(main(sys.argv))
        define(flags.FLAGS)
        run_app(lambda argv: main(argv, flags.FLAGS), flag_error_code=flag_error_code)

    return main, run


# ------------------------------------------------------------------ pieces of the inference CLIs

class ConfigError(ValueError):
    """Bad command-line configuration (reported before any work)."""


def split_list(values):
    """Flag values -> flat list: each value may be a comma-separated list (an existing path
    containing a comma is kept whole)."""
    out = []
    for v in values or ():
        v = str(v)
        if os.path.exists(v) or "," not in v:
            out.append(v)
        else:
            out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _fmt_seconds(s):
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


class FileProgress:
    """One line per file on stderr with count and ETA; a live tile counter on a terminal."""

    def __init__(self, total, stream=None):
        self.total = total
        self.stream = stream or sys.stderr
        self.start = time.time()
        self.done = 0
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def tile(self, name):
        def cb(done, total):
            if self.tty and total > 1:
                self.stream.write(f"\r[{self.done + 1}/{self.total}] {name}: tile {done}/{total}")
                self.stream.flush()
        return cb

    def file_done(self, name, status):
        self.done += 1
        elapsed = time.time() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        tail = f", ETA {_fmt_seconds(eta)}" if self.done < self.total else ""
        clear = "\r\033[K" if self.tty else ""
        self.stream.write(f"{clear}[{self.done}/{self.total}] {name}: {status}{tail}\n")
        self.stream.flush()
