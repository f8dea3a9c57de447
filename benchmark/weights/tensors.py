"""The values of a checkpoint, checked one by one before and after renaming.

RULE: every tensor the converted file keeps is a dense, real, floating-point array with data and
finite values, written as float32 (what detectron2's model holds). Half precision (float16,
bfloat16) is upcast, which is exact, and the summary says so; float64 is rounded to float32, as
the model would round it when loading. Everything else a backbone weight cannot be (float8,
quantized, sparse, meta, complex, bool or integer tensors, keys that are not strings, NaN or Inf
values, a negative BatchNorm running_var) is refused with one line naming the key (and the
dtype): converting it would either fail mid-run or fine-tune from numbers that are not the
checkpoint's. Tensors the format drops (heads, queues, num_batches_tracked) are not looked at.
`as_float32` applies the dtype part before renaming, `check_values` all of it to the renamed
weights (and to a converted .pkl given as it is); their names and shapes are
benchmark.weights.architecture's rule, checked before the values.
"""
import numpy as np
import torch

from benchmark.weights.errors import ConversionError, listing

EXACT = ("float16", "bfloat16")  # upcast to float32 without changing a value


def _dtype_name(value) -> str:
    return str(value.dtype).replace("torch.", "")


def check_keys(state_dict) -> None:
    """Refuse a state dict whose keys are not all strings (names are what formats rename)."""
    bad = [k for k in state_dict if not isinstance(k, str)]
    if bad:
        raise ConversionError(None, f"key {bad[0]!r} ({type(bad[0]).__name__}) is not a string: not a state dict of "
                                    f"named tensors ({len(bad)} of {len(state_dict)} keys are not strings)")


def _refusal(key, value):
    """Why `value` (a kept tensor or array) cannot be a backbone weight, or None."""
    if isinstance(value, torch.Tensor):
        dtype = _dtype_name(value)
        if value.layout != torch.strided:
            return f"tensor {key!r} is sparse ({str(value.layout).replace('torch.', '')}, {dtype}): save it dense (to_dense())"
        if value.is_meta:
            return f"tensor {key!r} is a meta tensor ({dtype}): it has a shape but no data; save the real weights"
        if value.is_quantized:
            return f"tensor {key!r} is quantized ({dtype}): dequantize it (dequantize()) and save it as float32"
        if value.is_complex():
            return f"tensor {key!r} is complex ({dtype}): a ResNet weight is real"
        if dtype.startswith("float8"):
            return f"tensor {key!r} is {dtype}: float8 cannot be converted exactly; save the float32 weights"
        if not value.is_floating_point():
            return f"tensor {key!r} is {dtype}: a convolution or BatchNorm tensor must be floating point"
        return None
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "c":
            return f"array {key!r} is complex ({value.dtype}): a ResNet weight is real"
        if value.dtype.kind != "f":
            return f"array {key!r} is {value.dtype}: a convolution or BatchNorm tensor must be floating point"
        return None
    return None  # not a tensor at all: convert_state_dict names its type


def as_float32(state_dict, rename) -> tuple:
    """(state dict with every kept tensor as a float32 numpy array, {source dtype: count} of casts).

    `rename`: the format's rename (None = dropped; those values pass untouched). Raises
    ConversionError (no file named) for the first kept value that is refused.
    """
    out, casts = {}, {}
    for key, value in state_dict.items():
        if rename(key) is None or not isinstance(value, (torch.Tensor, np.ndarray)):
            out[key] = value
            continue
        problem = _refusal(key, value)
        if problem:
            raise ConversionError(None, problem)
        dtype = _dtype_name(value)
        if dtype != "float32":
            casts[dtype] = casts.get(dtype, 0) + 1
        if isinstance(value, torch.Tensor):
            out[key] = value.detach().to(device="cpu", dtype=torch.float32).numpy()
        else:
            out[key] = value.astype(np.float32, copy=False)
    return out, casts


def cast_summary(casts) -> str | None:
    """'float16 -> float32 (exact): 265 tensors' for the summary, or None without casts."""
    parts = [f"{dtype} -> float32 ({'exact' if dtype in EXACT else 'rounded, as the float32 model would'}): {n} tensors"
             for dtype, n in sorted(casts.items())]
    return "; ".join(parts) or None


def check_values(converted) -> None:
    """Refuse converted weights a trained ResNet cannot have (the module's rule): NaN/Inf values,
    arrays that are not real floating point, negative BatchNorm running_var.

    Also applied to a converted .pkl given as it is (its dtypes and values are only what the
    file says).
    """
    # A diverged or corrupted pretraining run saves NaN/Inf weights; fine-tuning from them burns
    # hours before the loss turns NaN, so they are refused here, where it costs one pass over memory.
    non_finite = sorted(k for k, v in converted.items()
                        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all())
    if non_finite:
        raise ConversionError(None, "weights are not finite: " + listing("tensors with NaN or Inf values", non_finite))
    for key, value in converted.items():
        problem = _refusal(key, value)
        if problem:
            raise ConversionError(None, problem)
    negative = sorted(k for k, v in converted.items() if k.endswith("running_var") and (np.asarray(v) < 0).any())
    if negative:
        raise ConversionError(None, "BatchNorm variances cannot be negative: " + listing("running_var tensors with negative "
                                                                                          "values", negative))
