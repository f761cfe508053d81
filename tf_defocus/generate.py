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
from tf_defocus.data import generate, optics, photos, render, rgbd, synthesize

__doc__ += "\n" + generate.__doc__


# ----------------------------------------------------------------------------- CLI
def _flag_values():
    from absl import flags

    fv = flags.FlagValues()
    flags.DEFINE_enum("source", "procedural", list(generate.SOURCES), "Scene source: built-in procedural "
                      "dead-leaves RGB-D scenes or a folder of user RGB-D pairs.", flag_values=fv)
    flags.DEFINE_string("rgbd_dir", None, "Root folder of the RGB-D source (--source=rgbd).",
                        flag_values=fv)
    flags.DEFINE_enum("rgbd_format", "generic", list(rgbd.FORMATS), "RGB-D layout (see "
                      "tf_defocus.data.rgbd).", flag_values=fv)
    flags.DEFINE_float("depth_scale", None, "mm per stored depth unit (default per format: "
                       "sintel 1000, synthia 10, generic 1).", flag_values=fv)
    flags.DEFINE_float("max_invalid_fraction", rgbd.DEFAULT_MAX_INVALID_FRACTION, "Largest fraction "
                       "of invalid depth pixels that is filled from neighbours; more is an error.",
                       flag_values=fv)
    flags.DEFINE_integer("num_images", None, "Images to generate (default: procedural "
                         f"{generate.DEFAULT_PROCEDURAL_IMAGES}, rgbd one per source pair).", flag_values=fv)
    flags.DEFINE_string("image_size", "640x480", "Output WxH [px]; 'native' keeps RGB-D sizes.",
                        flag_values=fv)
    flags.DEFINE_enum("psf", "gaussian", list(render.PSFS), "gaussian: SYNDOF domain; disc: "
                      "aperture in linear light + sensor noise + JPEG.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Data-set seed (per-image seeds derive from it).", flag_values=fv)
    flags.DEFINE_string("out_dir", None, "Output folder.", flag_values=fv)
    flags.DEFINE_enum("format", "syndof", list(generate.FORMATS), "Output layout.", flag_values=fv)
    flags.DEFINE_integer("num_shards", 1, "Split the data set into this many shards.", flag_values=fv)
    flags.DEFINE_integer("shard_index", 0, "Shard to generate (0..num_shards-1).", flag_values=fv)
    flags.DEFINE_float("max_coc", optics.DEFAULT_MAX_COC_PX, "Largest circle of confusion [px] "
                       "(29 -> sigma 7).", flag_values=fv)
    flags.DEFINE_float("mask_threshold_px", synthesize.DEFAULT_MASK_THRESHOLD_PX, "Binary map: "
                       "sigma [px] above which a pixel counts as blurred.", flag_values=fv)
    flags.DEFINE_integer("num_layers", render.DEFAULT_NUM_LAYERS, "Depth (CoC) bins of the "
                         "renderer.", flag_values=fv)
    flags.DEFINE_integer("records_per_file", 256, "Images per TFRecord file.", flag_values=fv)
    flags.DEFINE_integer("num_workers", 1, "Worker processes (use the number of cores).",
                         flag_values=fv)
    flags.DEFINE_enum("scene", "dead_leaves", list(synthesize.SCENES), "Procedural scenes: "
                      "dead_leaves (textured confetti) or layered (ground/walls/sky, real-photo "
                      "and smooth surfaces, thin structures; see tf_defocus.data.scenes).",
                      flag_values=fv)
    flags.DEFINE_enum("isp", "basic", list(render.ISP_PROFILES), "Camera pipeline of --psf=disc: "
                      "basic, or varied (noise levels, tone curve, sharpening, downscaling from a "
                      "larger render, JPEG quality 40-98).", flag_values=fv)
    flags.DEFINE_enum("photo_split", "train", list(photos.SPLITS), "Package photos that textures "
                      "of layered scenes come from (val: held-out photos, for validation sets).",
                      flag_values=fv)
    cli.define_verbose_flag(fv)   # TensorFlow's start-up lines: hidden by tf_defocus/__init__
    return fv


def parse_size(text):
    """'WxH' -> (W, H); 'native' -> (None, None)."""
    if text.strip().lower() == "native":
        return None, None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--image_size must be WxH (e.g. 640x480) or native, got {text!r}")
    return w, h


def config_from_argv(argv):
    """Parse ``argv`` (argv[0] = program; supports --flagfile) into a GenerateConfig."""
    fv = _flag_values()
    rest = fv(list(argv))
    if len(rest) > 1:
        raise ValueError(f"unexpected arguments: {' '.join(rest[1:])}")
    if not fv.out_dir:
        raise ValueError("--out_dir is required")
    w, h = parse_size(fv.image_size)
    cfg = generate.GenerateConfig(
        out_dir=fv.out_dir, source=fv.source, rgbd_dir=fv.rgbd_dir, rgbd_format=fv.rgbd_format,
        depth_scale=fv.depth_scale, max_invalid_fraction=fv.max_invalid_fraction,
        num_images=fv.num_images, image_width=w, image_height=h, psf=fv.psf, seed=fv.seed,
        format=fv.format, num_shards=fv.num_shards, shard_index=fv.shard_index,
        max_coc=fv.max_coc, mask_threshold_px=fv.mask_threshold_px, num_layers=fv.num_layers,
        records_per_file=fv.records_per_file, num_workers=fv.num_workers, scene=fv.scene,
        isp=fv.isp, photo_split=fv.photo_split)
    cfg.validate()
    return cfg


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
