"""Float Keras weights recovered from a shipped int8 locator, so it can be fine-tuned instead of retrained.

Only the int8 ``models/locator.tflite`` of a release may survive (run directories are not committed),
and training a locator from scratch costs hours on a 2-core machine. The int8 file holds every weight:
per-channel int8 kernels with BatchNorm folded in, int32 biases, and for the dilated convolutions
(which the converter does not fold) the BatchNorm's multiplier and offset as int8 constants. This
module dequantizes them into ``trainer.locator.model.build_locator`` and re-parametrises each
BatchNorm so that the float model computes what the int8 one does (up to activation rounding) *and*
its training-mode batch statistics start where the data puts them: ``moving_mean``/``moving_variance``
are measured on real inputs and ``gamma``/``beta`` undo them, so fine-tuning starts from the shipped
model rather than from a network that batch-normalises itself into something else on the first step.

Tensors are matched to layers by the layer names the converter keeps in the tensor names
(``locator_1/<layer>_1/convolution``); a model without them is refused with an error naming the layer.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


class RecoveryError(ValueError):
    """The int8 file does not hold the weights of the locator architecture."""


def _dequantize(detail: dict, values: np.ndarray) -> np.ndarray:
    q = detail["quantization_parameters"]
    scales, zeros = q["scales"].astype(np.float64), q["zero_points"].astype(np.float64)
    if scales.size == 0:
        raise RecoveryError(f"tensor {detail['name']!r} is not quantized")
    axis = q["quantized_dimension"]
    shape = [1] * values.ndim
    if scales.size > 1:
        shape[axis] = scales.size
    return ((values.astype(np.float64) - zeros.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def _interpreter(tflite_path: Path):
    from device.runtime import build_interpreter

    interpreter, _ = build_interpreter(Path(tflite_path))
    interpreter.allocate_tensors()
    return interpreter


def read_int8_tensors(interpreter, tflite_path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per layer name: ``kernel`` [kh, kw, in, out], ``bias`` [out], and ``mul``/``sub`` for unfolded BatchNorms.

    Each convolution op names its kernel and bias tensors; the layer's name is in the kernel's name
    (its bias may be an anonymous constant). Activations carry layer names too, so ops, not names, pick them.
    ``tflite_path`` only names the file in errors.
    """
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    layers: dict[str, dict[str, np.ndarray]] = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] != "CONV_2D":
            continue
        kernel, bias = details[int(op["inputs"][1])], details[int(op["inputs"][2])]
        conv = re.search(r"/([A-Za-z0-9_]+?)_\d+/convolution(?:;|$)", kernel["name"])
        if conv is None:
            raise RecoveryError(f"{tflite_path}: convolution weights {kernel['name']!r} name no layer")
        layers[conv.group(1)] = {"kernel": _dequantize(kernel, interpreter.get_tensor(kernel["index"])).transpose(1, 2, 3, 0),
                                 "bias": _dequantize(bias, interpreter.get_tensor(bias["index"]))}
    for d in details.values():
        bn = re.search(r"/([A-Za-z0-9_]+?)_bn_\d+/batchnorm/(mul|sub)$", d["name"])
        if bn and d["dtype"] == np.int8 and len(d["shape"]) == 1:
            layers.setdefault(f"{bn.group(1)}_conv", {})[bn.group(2)] = _dequantize(d, interpreter.get_tensor(d["index"]))
    return layers


def recover_locator(tflite_path: Path, calibration: np.ndarray):
    """A float ``keras.Model`` equal to the int8 locator at ``tflite_path``; ``calibration`` [n, h, w] uint8 inputs
    of its input size (a ``RecoveryError`` names both sizes otherwise)."""
    import keras

    from trainer.locator.model import build_locator

    interpreter = _interpreter(tflite_path)
    (_, height, width, _) = (int(v) for v in interpreter.get_input_details()[0]["shape"])
    if tuple(calibration.shape[1:3]) != (height, width):
        raise RecoveryError(f"{tflite_path} takes {(height, width)} inputs, the scenes are {tuple(calibration.shape[1:3])}")
    tensors = read_int8_tensors(interpreter, tflite_path)
    if "s4_conv" not in tensors or "kernel" not in tensors["s4_conv"]:
        raise RecoveryError(f"{tflite_path}: no layer 's4_conv' among its tensors: not a digitcam locator")
    model = build_locator(height, width, tensors["s4_conv"]["kernel"].shape[-1] / 32)
    folded: dict[str, np.ndarray] = {}  # conv name -> the bias its BatchNorm adds
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        t = tensors.get(layer.name)
        if t is None or "kernel" not in t:
            raise RecoveryError(f"{tflite_path}: no kernel for layer {layer.name!r}")
        kernel, bias = t["kernel"], t["bias"]
        if kernel.shape != tuple(layer.kernel.shape):
            raise RecoveryError(f"{tflite_path}: layer {layer.name!r} is {kernel.shape}, the architecture wants {tuple(layer.kernel.shape)}")
        if "mul" in t:  # an unfolded BatchNorm after the conv: y = (conv + bias) * mul + sub
            kernel, bias = kernel * t["mul"], bias * t["mul"] + t["sub"]
        if layer.name == "stem_conv":  # the converter folded the 1/255 rescaling into the first conv
            kernel = kernel * 255.0
        if layer.use_bias:
            layer.set_weights([kernel, bias])
        else:
            layer.set_weights([kernel])
            folded[layer.name] = bias
    _fit_batchnorms(model, folded, calibration)
    return model


def _fit_batchnorms(model, folded: dict[str, np.ndarray], calibration: np.ndarray) -> None:
    """Each BatchNorm adds its conv's folded bias in inference mode and starts from the data's statistics."""
    import keras

    norms = {name: model.get_layer(name.removesuffix("_conv") + "_bn") for name in folded}
    for conv, bn in norms.items():  # identity + bias first, so the statistics below see the int8 model's activations
        bn.set_weights([np.ones_like(folded[conv]), folded[conv], np.zeros_like(folded[conv]),
                        np.full_like(folded[conv], 1.0 - bn.epsilon)])
    probe = keras.Model(model.inputs, [model.get_layer(conv).output for conv in norms])
    outputs = probe.predict(calibration[..., None].astype(np.float32), batch_size=32, verbose=0)
    for (conv, bn), z in zip(norms.items(), outputs):
        z = z.reshape(-1, z.shape[-1]).astype(np.float64)
        mean, var = z.mean(axis=0), z.var(axis=0)
        bn.set_weights([np.sqrt(var + bn.epsilon).astype(np.float32), (mean + folded[conv]).astype(np.float32),
                        mean.astype(np.float32), var.astype(np.float32)])
