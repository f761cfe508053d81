"""DMENet networks (B, D, S, C) and their custom layers.

Importing this package registers the custom layers and models for ``keras.saving.load_model``.
"""

from tf_defocus.models.layers import (CaffePreprocess, NearestUpsample, SymmetricPad, channels,
                                      conv_block)
from tf_defocus.models.vgg import load_vgg19_imagenet, vgg19_trunk
from tf_defocus.models.blur_estimator import BlurEstimator
from tf_defocus.models.two_scale import TwoScaleBlurEstimator, copy_weights_by_name
from tf_defocus.models.discriminator import DomainDiscriminator
from tf_defocus.models.calibrator import SharpnessCalibrator
from tf_defocus.models.content_loss import ContentLoss
from tf_defocus.models.dofnet import DoFNet

__all__ = ["BlurEstimator", "CaffePreprocess", "ContentLoss", "DoFNet", "DomainDiscriminator",
           "NearestUpsample", "SharpnessCalibrator", "SymmetricPad", "TwoScaleBlurEstimator",
           "channels", "conv_block", "copy_weights_by_name", "load_vgg19_imagenet",
           "vgg19_trunk"]
