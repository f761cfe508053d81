"""Generate a labelled synthetic defocus data set: the CLI of ``tf_defocus.data.generate``.

    python -m tf_defocus.generate --source=procedural --num_images=1000 --image_size=640x480 \\
        --psf=gaussian --seed=0 --out_dir=data/syndof
    python -m tf_defocus.generate --source=rgbd --rgbd_dir=MiddEval --rgbd_format=middlebury \\
        --image_size=native --out_dir=data/midd
    tf-defocus-generate --flagfile=gen.flags

Exit code 0 when every image was written, 1 when some sources were bad (named), 2 for bad flags
or an unusable ``--rgbd_dir``. Layouts, seeds, sharding and resume:
"""

import sys
import time

from tf_defocus import cli
from tf_defocus.data import generate, rgbd

__doc__ += "\n" + generate.__doc__


def _flag_values():
    """A private FlagValues with one flag per ``GenerateConfig`` setting and ``--verbose``."""
    from absl import flags

    fv = cli.define_config_flags([generate.GenerateConfig], flags.FlagValues())
    cli.define_verbose_flag(fv)   # TensorFlow's start-up lines: hidden by tf_defocus/__init__
    return fv


def config_from_argv(argv):
    """Parse ``argv`` (argv[0] = program; supports --flagfile) into a GenerateConfig."""
    fv = _flag_values()
    rest = fv(list(argv))
    if len(rest) > 1:
        raise ValueError(f"unexpected arguments: {' '.join(rest[1:])}")
    return cli.config_from_flags(generate.GenerateConfig, fv)


def main(argv):
    """CLI body: returns the exit code (0 ok, 1 some sources bad, 2 bad flags / input)."""
    from absl import flags

    if any(a in ("-h", "--help", "--helpfull") for a in argv[1:]):
        print(__doc__)
        print(_flag_values().get_help())
        return 0
    try:
        cfg = config_from_argv(argv)
    except (ValueError, flags.Error) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    try:
        t0 = time.monotonic()
        result = generate.run_generation(cfg)
    except rgbd.DataError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    dt = time.monotonic() - t0
    rate = result["written"] / dt if dt > 0 else 0.0
    sys.stderr.write(f"wrote {result['written']} images to {cfg.out_dir} ({rate:.2f} images/s), "
                     f"{result['skipped']} already complete\n")
    if result["bad"]:
        sys.stderr.write(f"{len(result['bad'])} bad source(s) skipped:\n")
        for name, msg in result["bad"]:
            sys.stderr.write(f"  {name}: {msg.splitlines()[0]}\n")
        return 1
    return 0


def run():
    """Console-script entry point (``tf-defocus-generate``)."""
    sys.exit(main(sys.argv))


if __name__ == "__main__":
    run()
