"""Built-in procedural pools: the training data of a domain without user data.

A pool is a finite set of ``synthesize`` renders (``psf="gaussian"`` for synthetic, ``psf="disc"``
for both real domains, with the renderer's sigma-threshold mask as the binary label), written
once by the generator (``tf_defocus.data.generate``, in parallel worker processes) into
``cache_dir`` under a name keyed by its parameters, then held in memory and sampled as random
augmented crops. So training always runs. Rendering costs about a second per 640x480 image and
core; ``pool_size`` trades that one-time cost against variety. The evaluation sets and DoFNet's
training data use the same pools.
"""

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

import tf_defocus
from tf_defocus.data import photos, readers, scenes, synthesize
from tf_defocus.data.domains import LABEL_KINDS, STREAMS

log = logging.getLogger(__name__)

POOL_PSF = {"synthetic": "gaussian", "real_mask": "disc", "real_unlabelled": "disc"}
POOL_FORMAT_VERSION = 1


def default_cache_dir():
    """``$TF_DEFOCUS_CACHE`` or ``~/.cache/tf_defocus``."""
    return os.environ.get("TF_DEFOCUS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tf_defocus")


def _pool_seed(seed, stream):
    """Generator data-set seed (31 bit) of one pool, from the config seed and the pool's stream."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(stream)]).generate_state(1)[0] >> 1)


def pool_dir(cache_dir, psf, width, height, count, seed, stream, scene="dead_leaves", isp="basic",
             highlights=0.0, photo_split="train", all_in_focus=synthesize.ALL_IN_FOCUS_PROB,
             smooth_focus=synthesize.SMOOTH_FOCUS_PROB):
    """Cache folder of one procedural pool and the key it is named after (a hash of everything
    that shapes the pool, including the photo files of layered scenes: ``photo_split``, a
    training split of ``photos.SPLITS``; ``all_in_focus`` / ``smooth_focus``: the shares of layered
    scenes all in focus / focused on a smooth surface, in the key of layered and mixed pools only
    when they differ from the generator's defaults, so older pools keep their names). Returns (Path, key)."""
    key = {"psf": psf, "width": int(width), "height": int(height), "count": int(count),
           "generator_seed": _pool_seed(seed, stream), "format": POOL_FORMAT_VERSION,
           "tf_defocus": tf_defocus.__version__}
    if scene != "dead_leaves" or isp != "basic":
        key.update(scene=scene, isp=isp)
    if highlights:
        key["highlights"] = float(highlights)
    if scene in ("layered", "mixed"):   # the shares shape layered scenes only
        for name, share, default in (("all_in_focus", all_in_focus, synthesize.ALL_IN_FOCUS_PROB),
                                     ("smooth_focus", smooth_focus, synthesize.SMOOTH_FOCUS_PROB)):
            if float(share) != default:
                key[name] = float(share)
        photos.require_photos(photo_split)
        if photo_split != "train":
            key["photo_split"] = photo_split
        key["photos"] = photos.fingerprint(photos.package_photos(photo_split))
        key["scene_version"] = scenes.SCENE_VERSION
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / "pools" / f"{psf}_{width}x{height}_n{count}_{digest}", key


def _generate_pool(out_dir, key, workers):
    """Write the pool with the generator (``data.generate.run_generation``) in ``workers``
    spawned processes (in this process for one)."""
    from tf_defocus.data import generate

    gcfg = generate.GenerateConfig(out_dir=str(out_dir), source="procedural", num_images=key["count"],
                                   image_size=f"{key['width']}x{key['height']}", psf=key["psf"],
                                   seed=key["generator_seed"], format="syndof", num_workers=workers,
                                   scene=key.get("scene", "dead_leaves"), isp=key.get("isp", "basic"),
                                   highlights=key.get("highlights", 0.0),
                                   photo_split=key.get("photo_split", "train"),
                                   **{k: key[k] for k in ("all_in_focus", "smooth_focus") if k in key})
    result = generate.run_generation(gcfg)
    if result["bad"]:
        raise RuntimeError(f"{out_dir}: rendering failed for {', '.join(n for n, _ in result['bad'])}: "
                           f"{result['bad'][0][1].splitlines()[0]}")


def ensure_pool(psf, width, height, count, seed, stream, cache_dir=None, workers=0,
                scene="dead_leaves", isp="basic", highlights=0.0, photo_split="train",
                all_in_focus=synthesize.ALL_IN_FOCUS_PROB, smooth_focus=synthesize.SMOOTH_FOCUS_PROB):
    """Render (or reuse) a procedural pool; returns its SYNDOF-layout folder.

    The pool is exactly the data set ``python -m tf_defocus.generate --psf=<psf>
    --image_size=<W>x<H> --num_images=<count> --seed=<pool seed>`` writes (``pool.json`` holds
    the key). Files are written atomically and an interrupted run resumes where it stopped.
    ``workers``: processes (0 = one per CPU core).
    """
    out_dir, key = pool_dir(cache_dir, psf, width, height, count, seed, stream, scene, isp,
                            highlights, photo_split, all_in_focus, smooth_focus)
    marker = out_dir / "pool.json"
    if marker.is_file():
        return out_dir
    workers = max(1, min(int(workers) or os.cpu_count() or 1, int(count)))
    print(f"tf_defocus: rendering {count} procedural {scene} {psf} images ({width}x{height}) into {out_dir} "
          f"with {workers} process(es); cached for later runs", file=sys.stderr, flush=True)
    t0 = time.time()
    _generate_pool(out_dir, key, workers)
    from tf_defocus.imageio import write_text
    write_text(marker, json.dumps(key, indent=2, sort_keys=True) + "\n")
    log.info("procedural pool %s ready in %.1f s", out_dir, time.time() - t0)
    return out_dir


def pool_source(domain, cfg):
    """The FileSource of ``domain``'s procedural pool for a ``pipeline.DataConfig`` (rendered
    first if it is not cached)."""
    psf = cfg.synthetic_psf if domain == "synthetic" else POOL_PSF[domain]
    stream = STREAMS[domain]
    if domain == "real_mask" and cfg.synthetic_psf == "disc":
        stream = STREAMS["synthetic"]  # the same camera-like renders: sigma labels, here masks
    folder = ensure_pool(psf, cfg.pool_width, cfg.pool_height, cfg.pool_size, cfg.seed,
                         stream, cache_dir=cfg.cache_dir, workers=cfg.pool_workers,
                         scene=cfg.pool_scene, isp=cfg.pool_isp,
                         highlights=cfg.pool_highlights if psf == "disc" else 0.0,
                         photo_split=cfg.pool_photos, all_in_focus=cfg.pool_all_in_focus,
                         smooth_focus=cfg.pool_smooth_focus)
    return pool_file_source(folder, LABEL_KINDS[domain])


def pool_file_source(folder, label_kind):
    """FileSource of a pool folder with labels of ``label_kind`` ("sigma", "mask" or None)."""
    folder = Path(folder)
    if label_kind == "sigma":
        return readers.syndof(folder, "sigma10")
    if label_kind == "mask":
        # The generator's blur_map_binary: 255 = blurred.
        return readers.blur_masks(folder / "image", folder / "blur_map_binary", 255,
                                  name=f"procedural masks {folder}")
    return readers.unlabelled(folder / "image")
