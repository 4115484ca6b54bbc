"""Display names (as the paper prints them) and letters-only LaTeX macro names.

Pure functions over strings; every renderer asks here how to call a method, a model or a dataset
so that the Markdown, LaTeX, HTML and plots agree.
"""

from __future__ import annotations

import functools
import re

METHOD_NAMES: dict[str, str] = {
    "kd": "KD",
    "skd": "SKD",
    "sckd": "SCKD",
    "cirkd": "CIRKD",
    "ifd": "IFD",
    "fgkd": "FGKD",
    "cwt": "CWT",
    "cwd": "CWD",
    "slimseg": "SlimSeg",
    "bglsseg": "BGLSSeg",
    "fam": "FAM",
    "crosskd": "CrossKD",
    "bpkd": "BPKD",
    "bcd": "BCD",
    "ifvd": "IFVD",
    "tat": "TAT",
    "sstkd": "SSTKD",
    "c2vkd": "C2VKD",
    "fgd": "FGD",
    "gid": "GID",
    "ld": "LD",
    "pkd": "PKD",
    "bd": "BD",
    "cd": "CD",
    "wd": "WD",
    "none": "Baseline",
    "teacher": "Teacher",
    "student": "Student",
}

MODEL_NAMES: dict[str, str] = {
    "pspnet_r101": "PSPNet-101",
    "pspnet_r38": "PSPNet-38",
    "pspnet_r18": "PSPNet-18",
    "efficientnet_b1": "EfficientNet-B1",
    "segformer_b0": "SegFormer-B0",
    "danet": "DANet",
    "hrnet": "HRNet",
    "deeplabv3_r101": "DeepLabV3-101",
    "deeplabv3plus_r101": "DeepLabV3+-101",
    "deeplabv3plus_r18": "DeepLabV3+-18",
    "espnet": "ESPNet",
    "mobilenetv2": "MobileNetV2",
    "mask2former": "Mask2Former",
    "segvit": "SegViT",
    "gfl_r50": "GFL-R50",
    "gfl_r18": "GFL-R18",
    "cascade_mask_rcnn_r101": "Cascade Mask R-CNN-R101",
    "cascade_mask_rcnn_r50": "Cascade Mask R-CNN-R50",
    "retinanet_r101": "RetinaNet-R101",
    "retinanet_r50": "RetinaNet-R50",
    "retinagfl_r101": "RetinaGFL-R101",
    "retinagfl_r50": "RetinaGFL-R50",
    "cascade_mask_rcnn_rpngfl_r101": "Cascade Mask R-CNN-R101 (GFL RPN)",
    "cascade_mask_rcnn_rpngfl_r50": "Cascade Mask R-CNN-R50 (GFL RPN)",
}

DATASET_NAMES: dict[str, str] = {
    "voc2012": "Pascal VOC 2012",
    "cityscapes": "Cityscapes",
    "ade20k": "ADE20K",
    "coco_stuff10k": "COCO-Stuff 10K",
    "coco2017": "MS-COCO 2017",
}

# Short dataset words for macro names (``\bcdVocMiou``).
DATASET_MACRO: dict[str, str] = {
    "voc2012": "Voc",
    "cityscapes": "Cityscapes",
    "ade20k": "Ade",
    "coco_stuff10k": "CocoStuff",
    "coco2017": "Coco",
}

METRIC_NAMES: dict[str, str] = {
    "miou": "mIoU",
    "aacc": "aAcc",
    "ap_box": "AP^b",
    "ap_mask": "AP^m",
    "params_m": "Params (M)",
    "flops_g": "FLOPs (G)",
    "fps": "FPS",
}

DIGIT_WORDS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
SYMBOL_WORDS = {"+": "Plus", "&": "And", "-": "", "_": "", ".": "", " ": ""}


def method_name(key: str) -> str:
    """Paper spelling of a method key; composites join their parts: ``tat+bcd`` -> ``TAT + BCD``."""
    if "+" in key:
        return " + ".join(method_name(part) for part in key.split("+"))
    return METHOD_NAMES.get(key, key)


def model_name(key: str | None) -> str:
    """Paper spelling of a model key (``pspnet_r18`` -> ``PSPNet-18``); unknown keys unchanged."""
    if not key:
        return ""
    return MODEL_NAMES.get(key, key)


def dataset_name(key: str | None) -> str:
    """Paper spelling of a dataset key (``ade20k`` -> ``ADE20K``)."""
    if not key:
        return ""
    return DATASET_NAMES.get(key, key)


def metric_name(key: str) -> str:
    """Column label of a metric key (``miou`` -> ``mIoU``)."""
    return METRIC_NAMES.get(key, key)


@functools.lru_cache(maxsize=4096)
def macro_word(text: str) -> str:
    """Turn any key into a capitalised, letters-only word: ``pspnet_r38`` -> ``PspnetRThreeEight``.

    Digits become their English names, ``+`` becomes ``Plus``, ``&`` ``And``; other symbols are
    dropped. Each separated part gets a capital first letter (the rest keeps its case) so the
    result reads in camel case and already camel-cased words pass through unchanged.
    """
    out: list[str] = []
    for part in re.split(r"([^A-Za-z0-9])", text):
        if not part:
            continue
        if part in SYMBOL_WORDS or not part.isalnum():
            out.append(SYMBOL_WORDS.get(part, ""))
            continue
        # split letters from digits so "r38" -> "R", "ThreeEight"
        for chunk in re.findall(r"[A-Za-z]+|[0-9]+", part):
            if chunk.isdigit():
                out.append("".join(DIGIT_WORDS[int(d)] for d in chunk))
            else:
                out.append(chunk[:1].upper() + chunk[1:])
    return "".join(out)


def macro_name(*parts: str) -> str:
    """Letters-only macro name in lower camel case from key parts (no backslash).

    ``macro_name("tat+bcd", "Ade", "miou")`` -> ``tatPlusBcdAdeMiou``.
    """
    word = "".join(macro_word(p) for p in parts if p)
    if not word:
        raise ValueError(f"no letters in macro parts {parts!r}")
    return word[:1].lower() + word[1:]
