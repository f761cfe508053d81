"""The generator: a labelled synthetic defocus data set (SYNDOF layout or GZIP TFRecord
shards) from a ``GenerateConfig``; ``run_generation(config)`` is what the ``tf_defocus.generate``
CLI and the training pipelines' procedural pools (``data.pools.ensure_pool``) call.

Every image ``i`` (global index 0..num_images-1) gets its own seed derived from ``(--seed, i)``,
so a data set is fully determined by its flags: the same flags give the same bytes, and
``--num_shards=K --shard_index=I`` (I = 0..K-1, one process or machine each, same ``--out_dir``
or not) make disjoint parts whose union is exactly the single-run data set. Rerunning a command
resumes: finished outputs are skipped, every file is written atomically (temp file + rename).
Image ids are ``%08d`` of the global index for procedural scenes. ``--source=rgbd``: image
``i`` uses source pair ``i % P`` (P pairs, sorted by name) with a fresh camera per round and
has id ``<pair name>_<round:03d>``; ``--num_images`` defaults to P. A bad source (corrupt file,
bad depth, size mismatch, missing partner) is reported by name and skipped; the exit code is
then 1 (2 for bad flags or an unusable ``--rgbd_dir``). ``--num_workers=N`` renders in N
processes (same bytes as one).

Layout ``--format=syndof`` (SYNDOF's public generator, plus metadata)::

    image/<id>.png            uint8 RGB defocused image
    blur_map/<id>.png         uint16, round(sigma_px * 10) in 3 equal channels (sigma = v / 10)
    blur_map_binary/<id>.png  uint8 gray, 255 = blurred (sigma_px > --mask_threshold_px), 0 = sharp
    meta/<id>.json            camera and generation parameters (written last: completion marker)
    manifest.jsonl            one JSON line per image (manifest-IIIII-of-KKKKK.jsonl per shard)
    generate_config.json      resolved flags (generate_config-IIIII-of-KKKKK.json per shard)

Layout ``--format=tfrecord``: ``data-JJJJJ-of-FFFFF.tfrecord.gz`` files (GZIP), file j holding
images [j * R, (j + 1) * R) for ``R = --records_per_file``; shard I writes the files with
``j % K == I``. Beside each, ``<file>.jsonl`` holds its manifest lines. One ``tf.train.Example``
per image, features (``tf_defocus.data.synthesize.TFRECORD_SCHEMA``):

{tfrecord_schema}
Camera / meta JSON: ``focal_length_mm``, ``f_number`` (null = pinhole), ``focus_distance_mm``
(in the shifted depth frame), ``depth_shift_mm``, ``sensor_width_mm``, ``image_width_px``,
``psf``, ``disc`` (aperture blades, noise, JPEG quality; disc PSF only), ``num_layers`` (non-empty
depth layers composited), ``seed`` (per-image seed), ``index``, ``source`` and, for RGB-D
sources, ``source_name``, ``source_image``, ``source_depth``.
"""

import collections
import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from tf_defocus import __version__, imageio
from tf_defocus import config as cfglib
from tf_defocus.config import Section, setting
from tf_defocus.data import optics, photos, render, rgbd, synthesize

__doc__ = __doc__.replace("{tfrecord_schema}", synthesize.tfrecord_schema_text())

SOURCES = ("procedural", "rgbd")
FORMATS = ("syndof", "tfrecord")
DEFAULT_PROCEDURAL_IMAGES = 100


@dataclasses.dataclass(frozen=True)
class GenerateConfig(Section):
    """One generator run; each field is a flag of ``tf_defocus.generate`` of the same name."""
    out_dir: str = setting(None, "Output folder (required).")
    source: str = setting("procedural", "Scene source: built-in procedural dead-leaves RGB-D "
                                        "scenes or a folder of user RGB-D pairs.", choices=SOURCES)
    rgbd_dir: str | None = setting(None, "Root folder of the RGB-D source (--source=rgbd).")
    rgbd_format: str = setting("generic", "RGB-D layout (see tf_defocus.data.rgbd).",
                               choices=rgbd.FORMATS)
    depth_scale: float | None = setting(None, "mm per stored depth unit (default per format: "
                                              "sintel 1000, synthia 10, generic 1).", above=0)
    max_invalid_fraction: float = setting(rgbd.DEFAULT_MAX_INVALID_FRACTION, "Largest fraction "
                                          "of invalid depth pixels that is filled from "
                                          "neighbours; more is an error.", low=0, high=1)
    num_images: int | None = setting(None, "Images to generate (default: procedural "
                                           f"{DEFAULT_PROCEDURAL_IMAGES}, rgbd one per source "
                                           "pair).", low=0)
    image_size: str = setting("640x480", "Output WxH [px]; 'native' keeps RGB-D sizes.")
    psf: str = setting("gaussian", "gaussian: SYNDOF domain; disc: aperture in linear light + "
                                   "sensor noise + JPEG.", choices=render.PSFS)
    seed: int = setting(0, "Data-set seed (per-image seeds derive from it).", low=0)
    format: str = setting("syndof", "Output layout.", choices=FORMATS)
    num_shards: int = setting(1, "Split the data set into this many shards.", low=1)
    shard_index: int = setting(0, "Shard to generate (0..num_shards-1).", low=0)
    max_coc: float = setting(optics.DEFAULT_MAX_COC_PX, "Largest circle of confusion [px] "
                                                        "(29 -> sigma 7).", above=1)
    mask_threshold_px: float = setting(synthesize.DEFAULT_MASK_THRESHOLD_PX, "Binary map: sigma "
                                       "[px] above which a pixel counts as blurred.", low=0)
    num_layers: int = setting(render.DEFAULT_NUM_LAYERS, "Depth (CoC) bins of the renderer.",
                              low=1)
    records_per_file: int = setting(256, "Images per TFRecord file.", low=1)
    num_workers: int = setting(1, "Worker processes (use the number of cores).", low=1)
    scene: str = setting("dead_leaves", "Procedural scenes: dead_leaves (textured confetti), "
                         "layered (ground/walls/sky, real-photo and smooth surfaces, thin "
                         "structures; see tf_defocus.data.scenes) or mixed (half each, by "
                         "seed).", choices=synthesize.SCENES)
    isp: str = setting("basic", "Camera pipeline of --psf=disc: basic, or varied (noise levels, "
                       "tone curve, sharpening, downscaling from a larger render, JPEG quality "
                       "40-98).", choices=render.ISP_PROFILES)
    photo_split: str = setting("train", "Package photos that textures of layered scenes come "
                               "from (val: held-out photos, for validation sets).",
                               choices=photos.SPLITS)
    highlights: float = setting(0.0, "Probability that a procedural scene gets point lights "
                                "brighter than white (bokeh when defocused; --psf=disc only; "
                                "tf_defocus.data.highlights).", low=0, high=1)
    all_in_focus: float = setting(synthesize.ALL_IN_FOCUS_PROB, "Fraction of layered scenes "
                                  "rendered all in focus (largest CoC 1-1.5 px).", low=0, high=1)
    smooth_focus: float = setting(synthesize.SMOOTH_FOCUS_PROB, "Fraction of layered scenes "
                                  "focused on a large smooth surface (--all_in_focus plus this "
                                  "at most 1).", low=0, high=1)
    @property
    def size(self):
        """(W, H) [px] of ``image_size``; (None, None) for 'native'."""
        return parse_size(self.image_size)

    def check(self):
        if not self.out_dir:
            raise ValueError("--out_dir must be set")
        w, h = self.size
        if self.source == "rgbd" and not self.rgbd_dir:
            raise ValueError("--source=rgbd needs --rgbd_dir")
        if self.source == "procedural" and w is None:
            raise ValueError("--image_size=native needs --source=rgbd")
        synthesize.check_focus_shares(self.all_in_focus, self.smooth_focus,
                                      ("--all_in_focus", "--smooth_focus"))
        if w is not None and (w < 8 or h < 8):
            raise ValueError("--image_size must be at least 8x8")
        if self.shard_index >= self.num_shards:
            raise ValueError("need 0 <= --shard_index < --num_shards")


def parse_size(text):
    """'WxH' -> (W, H) [px]; 'native' -> (None, None)."""
    if text.strip().lower() == "native":
        return None, None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--image_size must be WxH (e.g. 640x480) or native, "
                         f"got {text!r}") from None
    return w, h


def image_seed(seed, index):
    """Per-image seed (63-bit) from the data-set seed and the global image index."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def shard_suffix(cfg):
    return "" if cfg.num_shards == 1 else f"-{cfg.shard_index:05d}-of-{cfg.num_shards:05d}"


# ----------------------------------------------------------------------------- progress
class Progress:
    """Minimal progress bar with rate and ETA on stderr (no keras / tqdm import)."""

    def __init__(self, total, label="images", stream=None, min_interval_s=0.5):
        self.total, self.label = int(total), label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.min_interval = min_interval_s if self.tty else 30.0
        self.start = time.monotonic()
        self.last = -math.inf
        self.done = 0
        self.printed = -1

    def update(self, n=1, force=False):
        self.done += n
        now = time.monotonic()
        if self.printed == self.done and self.done > 0:
            return
        if not force and now - self.last < self.min_interval and self.done < self.total:
            return
        self.last, self.printed = now, self.done
        el = now - self.start
        rate = self.done / el if el > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        pct = 100.0 * self.done / self.total if self.total else 100.0
        width = 30
        fill = int(width * self.done / self.total) if self.total else width
        eta_s = "--:--" if not math.isfinite(eta) else f"{int(eta) // 60:02d}:{int(eta) % 60:02d}"
        line = (f"[{'=' * fill}{'.' * (width - fill)}] {self.done}/{self.total} {self.label} "
                f"{pct:5.1f}% {rate:.2f}/s ETA {eta_s}")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self):
        self.update(0, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# ----------------------------------------------------------------------------- jobs
@dataclasses.dataclass(frozen=True)
class Job:
    index: int
    sample_id: str
    seed: int
    pair: rgbd.RGBDPair | None = None


def _make_jobs(cfg, indices, pairs):
    jobs = []
    for i in indices:
        if pairs is None:
            sid, pair = f"{i:08d}", None
        else:
            pair = pairs[i % len(pairs)]
            sid = f"{pair.name}_{i // len(pairs):03d}"
        jobs.append(Job(i, sid, image_seed(cfg.seed, i), pair))
    return jobs


def _render_job(job, cfg):
    """Worker: make one sample and encode it. Returns ('ok', payload) or ('bad', name, message)."""
    source = None
    extra = {"index": job.index, "dataset_seed": cfg.seed}
    if job.pair is not None:
        try:
            source = rgbd.load_pair(job.pair, cfg.depth_scale, cfg.max_invalid_fraction)
        except (rgbd.DataError, imageio.ImageReadError) as e:
            return ("bad", job.pair.name, str(e))
        extra.update(source_name=job.pair.name, source_image=str(job.pair.image_path),
                     source_depth=str(job.pair.depth_path))
    width, height = cfg.size
    try:
        sample = synthesize.synthesize(job.seed, width, height, psf=cfg.psf, source=source,
                                       max_coc=cfg.max_coc, mask_threshold_px=cfg.mask_threshold_px,
                                       num_layers=cfg.num_layers, scene=cfg.scene, isp=cfg.isp,
                                       photo_split=cfg.photo_split, highlights=cfg.highlights,
                                       all_in_focus=cfg.all_in_focus,
                                       smooth_focus=cfg.smooth_focus)
    except Exception as e:  # report, keep going with the other images
        name = job.pair.name if job.pair is not None else job.sample_id
        return ("bad", name, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
    if cfg.source == "rgbd":
        sample.camera["source"] = f"rgbd:{cfg.rgbd_format}"
    if cfg.format == "syndof":
        meta = synthesize.write_syndof_sample(cfg.out_dir, job.sample_id, sample, extra)
        return ("ok", job.sample_id, meta, None)
    meta = {"id": job.sample_id, **sample.camera, **extra}
    return ("ok", job.sample_id, meta, synthesize.encode_sample(sample))


def _worker_init():
    import cv2
    cv2.setNumThreads(1)  # one process per core is faster than OpenCV threads


class _Runner:
    """Runs jobs in order, inline or in a process pool, with a bounded number in flight."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.pool = None
        if cfg.num_workers > 1:
            ctx = multiprocessing.get_context("spawn")
            self.pool = concurrent.futures.ProcessPoolExecutor(cfg.num_workers, mp_context=ctx,
                                                               initializer=_worker_init)

    def map(self, jobs):
        if self.pool is None:
            for j in jobs:
                yield _render_job(j, self.cfg)
            return
        pending = collections.deque()
        it = iter(jobs)
        for j in it:
            pending.append(self.pool.submit(_render_job, j, self.cfg))
            if len(pending) >= 2 * self.cfg.num_workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


# ----------------------------------------------------------------------------- main loop
def _resolve(cfg):
    """List RGB-D pairs and fill in defaults: returns (cfg, pairs or None)."""
    pairs = None
    if cfg.source == "rgbd":
        pairs = rgbd.list_pairs(cfg.rgbd_dir, cfg.rgbd_format)
    n = cfg.num_images
    if n is None:
        n = len(pairs) if pairs is not None else DEFAULT_PROCEDURAL_IMAGES
    scale = cfg.depth_scale
    if cfg.source == "rgbd" and scale is None:
        scale = rgbd.DEFAULT_DEPTH_SCALE[cfg.rgbd_format]
    return cfglib.replace(cfg, num_images=n, depth_scale=scale), pairs


def _write_manifest(path, metas):
    lines = "".join(json.dumps(m, sort_keys=True) + "\n" for m in metas)
    imageio.write_text(path, lines)


def run_generation(cfg, stream=None):
    """Generate the shard of ``cfg``. Returns dict(written, skipped, bad=[(name, message)])."""
    stream = stream or sys.stderr
    cfg, pairs = _resolve(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = shard_suffix(cfg)
    config_doc = {"tf_defocus_version": __version__, **cfglib.to_dict(cfg)}
    if cfg.source == "procedural" and cfg.scene in ("layered", "mixed"):
        used = photos.package_photos(cfg.photo_split)
        config_doc["photos"] = {"count": len(used), "fingerprint": photos.fingerprint(used)}
        missing = photos.missing_photos(cfg.photo_split)
        if missing:  # same seed, other textures: not the data set the docs' figures are on
            stream.write(f"warning: {len(missing)} package photos of split "
                         f"{cfg.photo_split!r} are not installed ({', '.join(missing[:4])}"
                         f"{', ...' if len(missing) > 4 else ''}); the scenes will differ from "
                         f"those made with them (pip install scikit-image; apt-get install "
                         f"{' '.join(photos.APT_PACKAGES)})\n")
    imageio.write_text(out / f"generate_config{suffix}.json",
                       json.dumps(config_doc, indent=2, sort_keys=True) + "\n")
    n = cfg.num_images
    bad, bad_names = [], set()
    written = skipped = 0

    if cfg.format == "syndof":
        indices = range(cfg.shard_index, n, cfg.num_shards)
        jobs = _make_jobs(cfg, indices, pairs)
        _remove_stale_temps([out / d for d in synthesize.SYNDOF_DIRS],
                            {j.sample_id for j in jobs})
        todo = [j for j in jobs if not synthesize.syndof_sample_complete(out, j.sample_id)]
        skipped = len(jobs) - len(todo)
        if skipped:
            stream.write(f"resuming: {skipped} of {len(jobs)} images already complete\n")
        progress = Progress(len(todo), stream=stream)
        runner = _Runner(cfg)
        try:
            for res in runner.map(_skip_bad(todo, bad_names, progress)):
                written += _collect(res, bad, bad_names, stream)
                progress.update()
        finally:
            runner.close()
            progress.close()
        metas = []
        for j in jobs:
            p = synthesize.syndof_paths(out, j.sample_id)["meta"]
            if p.is_file():
                metas.append(json.loads(p.read_text()))
        _write_manifest(out / f"manifest{suffix}.jsonl", metas)
    else:
        r = cfg.records_per_file
        num_files = max(1, -(-n // r))
        files = [f for f in range(num_files) if f % cfg.num_shards == cfg.shard_index]
        total = sum(len(range(f * r, min(n, (f + 1) * r))) for f in files)
        paths = {f: out / f"data-{f:05d}-of-{num_files:05d}.tfrecord.gz" for f in files}
        _remove_stale_temps([out], {p.stem for p in paths.values()} |
                            {_sidecar(p).stem for p in paths.values()})
        done_files = [f for f in files if paths[f].is_file() and _sidecar(paths[f]).is_file()]
        skipped = sum(len(range(f * r, min(n, (f + 1) * r))) for f in done_files)
        if skipped:
            stream.write(f"resuming: {len(done_files)} of {len(files)} files already complete\n")
        progress = Progress(total - skipped, stream=stream)
        runner = _Runner(cfg)
        try:
            for f in files:
                if f in done_files:
                    continue
                jobs = _make_jobs(cfg, range(f * r, min(n, (f + 1) * r)), pairs)
                records, metas = [], []
                for res in runner.map(_skip_bad(jobs, bad_names, progress)):
                    if _collect(res, bad, bad_names, stream):
                        metas.append(res[2])
                        records.append(synthesize.tfrecord_example_from_encoded(res[1], res[3], res[2]))
                    progress.update()
                _write_tfrecord(paths[f], records)
                _write_manifest(_sidecar(paths[f]), metas)
                written += len(records)
        finally:
            runner.close()
            progress.close()
        metas = []
        for f in files:
            sc = _sidecar(paths[f])
            if sc.is_file():
                metas.extend(json.loads(line) for line in sc.read_text().splitlines() if line)
        _write_manifest(out / f"manifest{suffix}.jsonl", metas)
    return {"written": written, "skipped": skipped, "bad": bad}


def _remove_stale_temps(dirs, stems):
    """Delete temp files of an interrupted run (``imageio.atomic_path`` names them
    ``.<stem>.<random>.tmp<suffix>``) -- only those of ``stems``, which this shard owns, so a
    concurrent shard writing into the same folder is never disturbed."""
    removed = 0
    for d in dirs:
        if not d.is_dir():
            continue
        for f in d.glob(".*.tmp*"):
            stem = f.name[1:].rsplit(".tmp", 1)[0].rsplit(".", 1)[0]
            if stem in stems:
                f.unlink(missing_ok=True)
                removed += 1
    return removed


def _sidecar(path):
    return path.with_name(path.name + ".jsonl")


def _skip_bad(jobs, bad_names, progress):
    """Jobs of RGB-D sources already found bad are not retried (reported once)."""
    for j in jobs:
        if j.pair is not None and j.pair.name in bad_names:
            progress.update()
            continue
        yield j


def _collect(res, bad, bad_names, stream):
    if res[0] == "bad":
        if res[1] not in bad_names:
            bad_names.add(res[1])
            bad.append((res[1], res[2]))
            stream.write(f"\nskipping bad source {res[1]}: {res[2].splitlines()[0]}\n")
        return 0
    return 1


def _write_tfrecord(path, records):
    import tensorflow as tf

    with imageio.atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(str(tmp), options=tf.io.TFRecordOptions(compression_type="GZIP")) as w:
            for rec in records:
                w.write(rec)
