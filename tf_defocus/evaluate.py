"""Evaluate defocus models and the DoF weight map on the public benchmark layouts.

    python -m tf_defocus.evaluate --dataset=cuhk --data_dir=CUHK --blurred_value=0 \\
        --model=ours=blur_estimator.keras --model=int8=blur_estimator_int8.tflite \\
        --method=model --method=dof_weight --method=lbp --method=hifst --output=eval/cuhk

Data sets (``tf_defocus.data.readers``): ``syndof`` (sigma labels; ``--label_convention`` =
sigma10 | released, required), ``rtf`` (``.npy`` sigma), ``cuhk`` and ``dut`` (binary masks;
``--blurred_value`` = 255 | 0 says which grey level marks blurred pixels, required).

Metrics (``tf_defocus.metrics``), per image then averaged over images:

* sigma data sets, defocus models: ``mse`` / ``mae`` on sigma/7, ``mae_px``; on RTF also
  ``rtf_mse`` / ``rtf_mae`` (sigma clipped at 3.275 px, divided by 3.275 - the authors'
  protocol);
* sigma data sets, every method: ``spearman``, Spearman's rank correlation between the blur
  score and the true sigma per image (ties share their mean rank; at most 100k pixels per image,
  a fixed random subset - ``metrics.spearman``);
* every data set and method: blur detection against the mask (1 = blurred; on sigma data sets
  the mask is ``gt sigma > --mask_threshold_px``): ``accuracy`` (DMENet's: blur map thresholded
  at 0.3 max + 0.7 min per image), ``ap`` (mean of per-image average precision = mAP),
  ``auc``, ``mae`` (min-max normalised blur score vs mask), ``max_f`` (F-beta, beta^2 = 0.3: the
  per-image F curves over 256 thresholds averaged, then the maximum), ``iou`` (blurred class;
  prediction = sigma > --mask_threshold_px, or weight < --mask_threshold_weight).

The blur score is sigma [px] for a defocus model and ``1 - weight`` for a focus-weight map,
including the training-free baselines of ``tf_defocus.classical``: ``dof_weight`` (KCI 2020),
``lbp`` (Yi & Eramian, TIP 2016) and ``hifst`` (Golestaneh & Karam, CVPR 2017), which give a
focus score with no blur unit (kind ``dof_weight``), so the sigma errors do not apply to them.
Writes ``per_image.csv``, ``results.json``, ``results.md`` and ``evaluate_config.json`` into
``--output``. An image or label that cannot be read, and a file that cannot be paired (an image
without a label, a label without an image), is reported by name once and left out; the other
images are evaluated and the exit code is 1 (``--skip_bad``: unpaired files are a warning, not
a failure). Exit code 2: bad or unknown flags, data set layout, model or output folder,
before any work; ``--help``: 0. TensorFlow's start-up log lines are hidden unless ``--verbose``.
"""

from tf_defocus import cli, evaluation   # TensorFlow start-up lines: hidden by tf_defocus/__init__

main, run = cli.config_app(evaluation.EvaluateConfig, evaluation.run_config, flag_error_code=2)
"""``main(argv, flag_values=None)`` -> exit code; ``run()``: the console script
(``tf-defocus-evaluate``). Bad flags exit 2."""


if __name__ == "__main__":
    run()
