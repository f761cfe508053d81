"""Defocus / focus maps for photos on disk.

    python -m tf_defocus.predict --model=blur_estimator.keras --input=photos/ --output_dir=out
    python -m tf_defocus.predict --method=dof_weight --input='*.jpg' --output_dir=out
    python -m tf_defocus.predict --method=lbp --input=x.png --output_dir=out --outputs=color,mask

Inputs are files, folders (non-recursive) or globs, given by ``--input`` (repeatable, or a
comma list) and/or as positional arguments. ``--model`` is a ``.keras`` file, a SavedModel
directory or a ``.tflite`` file (``tf_defocus.inference.load_estimator``). The training-free
methods need no model: ``dof_weight`` (KCI 2020 DoF weight map, ``tf_defocus.dof``), ``lbp``
(Yi & Eramian, TIP 2016) and ``hifst`` (Golestaneh & Karam, CVPR 2017) from
``tf_defocus.classical``; they give a focus score in [0, 1] with no blur unit (no ``sigma``).

Outputs per photo ``<stem>`` (``--outputs``; default ``sigma,color`` for a defocus model,
``color,focus`` for a focus-weight model (DoFNet) and the training-free methods, which have no
sigma):

* ``sigma``: ``<stem>.npy`` float32 (H, W) blur sigma [px] at the input's size;
* ``color``: a defocus model: ``<stem>_defocus.png``, rainbow map of sigma (red = in focus,
  blue = 7 px, or 7/S px for a photo read at scale S) with a legend bar labelled in px; a focus weight /
  score (DoFNet, dof_weight, lbp, hifst): ``<stem>_focus_color.png``, rainbow map of the focus
  (red = 1, in focus; blue = 0) with a legend labelled 0..1. The map has the photo's size; the
  legend bar is added on the right only for photos at least MIN_LEGEND_HEIGHT (40) px high (its
  labels would not fit);
* ``focus``: ``<stem>_focus.png`` 8-bit grey focus map, 255 = in focus (1 - sigma/7, 1 - sigma
  S/7 for a photo read at scale S, or the focus weight / score);
* ``mask``: ``<stem>_mask.png`` binary blur mask, 255 = blurred (sigma > --mask_threshold_px;
  a weight map: weight < --mask_threshold_weight), 0 = sharp;
* ``side_by_side``: ``<stem>_side_by_side.png`` the photo | its colour map (with legend).

Every output is written atomically (temporaries of a killed run are removed by the next run
into the same folder); the run's config is written to ``<output_dir>/predict_config.json``, and
the last line says where the outputs are. TensorFlow's start-up log lines are hidden unless
``--verbose``.

A model reads each photo at scale S = ``--scale`` (default 1), or ``--max_side`` / (its long
side) if that is lower (default 1280 px: a 16 MP photo is read at about 0.24, which brings its
blur towards the model's 7 px range; ``--max_side=0`` reads every photo at ``--scale``); the map
is resized back and sigma given in px of the photo, up to 7/S px. The progress line of a photo
read at S < 1 gives S.

Exit codes: 0 every input processed. 1 an input that matches nothing or cannot be read, or
whose outputs cannot be written: it is reported by name and the others are still processed (a
full disk or an unwritable folder stops the run); when no input matches anything, nothing is
written, not even the output folder. 2 before any work: bad or unknown flags, a model that
cannot be loaded or is not a tf_defocus model, an output folder that cannot be created or
written. ``--help``: 0.
"""

from tf_defocus import cli, prediction   # TensorFlow start-up lines: hidden by tf_defocus/__init__

main, run = cli.config_app(prediction.PredictConfig, prediction.run_config, positional="input",
                           flag_error_code=2)
"""``main(argv, flag_values=None)`` -> exit code; ``run()``: the console script
(``tf-defocus-predict``). Bad flags exit 2; positional arguments are inputs."""


if __name__ == "__main__":
    run()
