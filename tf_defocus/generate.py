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


def _run(cfg):
    """Generate, print the summary; exit code 1 when some sources were bad."""
    t0 = time.monotonic()
    result = generate.run_generation(cfg)
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


main, run = cli.config_app(generate.GenerateConfig, _run, usage=__doc__, flag_error_code=2,
                           errors={rgbd.DataError: 2})
"""``main(argv)`` -> exit code; ``run()``: the console script (``tf-defocus-generate``)."""


if __name__ == "__main__":
    run()
