"""pipekit.vision: decode, presize cache, batch augmentation (plan + executors), image blocks, models.

>>> from pipekit.vision import ImageBlock, Resize, aug_transforms, Normalize, imagenet_stats, Albumentations
>>> tfms = aug_transforms(size=224, min_scale=0.75) + [Normalize.from_stats(*imagenet_stats)]
"""
from pipekit.vision.albu import Albumentations
from pipekit.vision.augment import AugmentPlan, AugmentSettings, map_boxes, map_points, sample_plan, warp_cv2, warp_torch
from pipekit.vision.bbox import BBoxBlock, BBoxLblBlock, TensorBBox, bb_pad, get_annotations
from pipekit.vision.blocks import (ImageBlock, MaskBlock, PILImage, PILImageBW, PILMask, PointBlock, TensorImage,
                                    TensorPoint, dataloaders_from_arrays, image2tensor, image_paths_with)
from pipekit.vision.cache import ImageStore, build_image_store, clear_image_cache, default_cache_dir
from pipekit.vision.dataloaders import ImageDataLoaders, SegmentationDataLoaders
from pipekit.vision.decode import (ImageDecodeError, decode_bytes, decode_image, image_from_value, resize_image,
                                   resize_images, resize_to, verify_images)
from pipekit.vision.efficientnet import (EfficientNetLite, EfficientNetLiteBody, efficientnet_lite, efficientnet_lite0,
                                         efficientnet_lite1, efficientnet_lite2, efficientnet_lite_body,
                                         efficientnet_lite_stats, efficientnet_lite_weights, load_pretrained,
                                         pretrained_archs, require_weights)
from pipekit.learn.interpret import SegmentationInterpretation  # fastai's name, as vision.all gives it
from pipekit.vision.imagenet import IMAGENET_CATS, IMAGENET_DOGS, imagenet_labels, imagenet_predict
from pipekit.vision.learner import (Dice, DiceMulti, ForegroundAcc, JaccardCoeff, PixelAccuracy, check_model_output,
                                    foreground_acc, load_body_weights, pixel_accuracy, unet_learner, vision_learner,
                                    cnn_learner, create_cnn_model, create_vision_model)
from pipekit.vision.models import (AdaptiveConcatPool2d, LayerGrouped, ResBlock, ResNet, ResNetBody, UNet, XResNet,
                                   XResNetBody, create_body,
                                   create_head, model_meta, resnet18, resnet34, resnet50, resnet101, resnet152, simple_cnn, unet,
                                   vision_model, xresnet18, xresnet34, xresnet50)
from pipekit.vision.presize import CropPad, PadMode, RandomResizedCrop, Resize, ResizeMethod
from pipekit.vision.samplers import (AffineSampler, Brightness, Contrast, Dihedral, Flip, FlipVert, Hue, LightingSampler,
                                     RandomCrop, ResizedCrop, Rotate, Sampler, Saturation, Warp, Zoom)
from pipekit.data.plotting import show_image, show_images
from pipekit.data.transform import ItemTransform  # fastai's transform of whole items, refused by a DataBlock
from pipekit.vision.show import show_batch, show_results
from pipekit.vision.transforms import (BatchAugment, DihedralItem, FlipItem, IntToFloat, IntToFloatTensor, Normalize, RandomErasing,
                                       ResizedCropAugment, ToTensor, aug_transforms, imagenet_stats, mnist_stats)

__all__ = [
    "AffineSampler", "Albumentations", "AugmentPlan", "AugmentSettings", "BBoxBlock", "BBoxLblBlock", "bb_pad", "get_annotations", "BatchAugment", "CropPad", "ImageBlock", "ImageDecodeError", "ImageStore", "IntToFloat", "IntToFloatTensor", "ToTensor",
    "MaskBlock", "Normalize", "PointBlock", "RandomErasing", "RandomResizedCrop", "ResizedCrop", "ResizedCropAugment", "Resize", "aug_transforms", "build_image_store",
    "clear_image_cache", "dataloaders_from_arrays", "decode_bytes", "decode_image", "default_cache_dir", "image_paths_with", "imagenet_stats",
    "map_boxes", "map_points", "mnist_stats", "resize_image", "resize_images", "resize_to", "sample_plan", "verify_images", "warp_cv2", "warp_torch",
    "PixelAccuracy", "Dice", "DiceMulti", "ForegroundAcc", "JaccardCoeff", "foreground_acc", "ResBlock", "UNet", "XResNet", "cnn_learner", "create_head", "load_body_weights", "pixel_accuracy", "simple_cnn", "unet",
    "Brightness", "Contrast", "Dihedral", "DihedralItem", "Flip", "FlipItem", "FlipVert", "Hue", "Saturation", "LightingSampler", "RandomCrop", "Rotate", "Sampler", "Warp", "Zoom",
    "show_batch", "show_image", "show_images", "show_results", "SegmentationInterpretation", "unet_learner", "vision_learner", "vision_model", "xresnet18", "xresnet34", "xresnet50",
    "EfficientNetLite", "EfficientNetLiteBody", "efficientnet_lite", "efficientnet_lite_body", "efficientnet_lite_stats",
    "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "efficientnet_lite_weights", "load_pretrained",
    "imagenet_labels", "imagenet_predict", "ImageDataLoaders", "SegmentationDataLoaders", "image_from_value",
    "pretrained_archs", "require_weights", "create_body", "check_model_output", "ResizeMethod", "PadMode", "IMAGENET_CATS",
    "IMAGENET_DOGS", "ItemTransform", "PILImage", "PILImageBW", "PILMask", "TensorImage", "TensorPoint", "TensorBBox", "XResNetBody", "LayerGrouped", "image2tensor",
    "ResNet", "ResNetBody", "model_meta", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "AdaptiveConcatPool2d", "create_vision_model", "create_cnn_model",
]
