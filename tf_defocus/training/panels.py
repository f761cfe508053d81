"""TensorBoard image panels of the training tasks (``TrainingTask.image_panels``).

Each task's factory takes its trainer and returns callable(element) -> {panel name: uint8
(N, P, 3P, 3)}: one row per image, ``input | truth | prediction``, maps drawn as focus
(``visualize.colorize``: red = sharp, blue = blurred).
"""

import numpy as np

from tf_defocus.visualize import colorize


def rows(images, truth_focus, pred_focus):
    """uint8 (N, P, 3P, 3): each image (float RGB [0, 1]) beside its two focus maps."""
    to_u8 = lambda im: np.round(np.clip(np.asarray(im, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.stack([np.concatenate([to_u8(im), colorize(t), colorize(p)], axis=1)
                     for im, t, p in zip(images, truth_focus, pred_focus)])


def dmenet_panels_fn(trainer, max_images=3):
    """Panels of a ``DMENetTrainer``: synthetic input | ground truth | prediction, drawn as
    focus (1 - sigma/7), and for real masks input | 1 - mask | 1 - blur score."""
    def panels(element):
        out = {}
        syn = element["synthetic"]
        img = np.asarray(syn["image"])[:max_images]
        pred = np.asarray(trainer.blur_estimator(img, training=False)["defocus"])[..., 0]
        truth = np.asarray(syn["sigma_norm"])[:max_images, ..., 0]
        out["synthetic: input | ground truth | prediction"] = rows(img, 1 - truth, 1 - pred)
        if "real_mask" in element:
            rm = element["real_mask"]
            img = np.asarray(rm["image"])[:max_images]
            score = np.asarray(trainer.blur_score(img))[..., 0]
            mask = np.asarray(rm["mask"])[:max_images, ..., 0]
            out["real_mask: input | mask | blur score"] = rows(img, 1 - mask, 1 - score)
        return out
    return panels


def dof_panels_fn(trainer, max_images=3):
    """Panels of a ``dof_task.DoFTrainer``: input | target W_s | recovered focus."""
    def panels(element):
        img = np.asarray(element["image"])[:max_images]
        w = np.asarray(element["weight"])[:max_images, ..., 0]
        pred = np.asarray(trainer.focus([trainer.net(img, training=False), img]))[..., 0]
        return {"input | target W_s | prediction": rows(img, w, pred)}
    return panels
