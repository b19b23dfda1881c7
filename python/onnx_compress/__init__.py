"""onnx-compress for Python: prune, quantize and compress ONNX models; inspect, evaluate, compare.

    import onnx_compress as oc
    report = oc.compress("model.onnx", "small.onnx", recipe="int8", calib=x[:256], eval=x_test, labels=y_test)
    print(report["accuracy"], report["totals"]["after"]["file_bytes"])

Data (``calib``, ``eval``, ``data``): a numpy array (first axis = samples, single-input models), a
dict of arrays keyed by input name, or a path the command line takes (.npy, .npz, a folder of
.npy/.npz or of .png/.jpg images, ``random:N[:SEED]``). ``labels``: an integer array or a .npy path;
an image folder's class sub-folders give labels where none are given.

Errors are exceptions carrying the command line's one-line message: ``InvalidArgument`` (a bad option or
bad data), ``LoadError``, ``UnsupportedError``, ``SaveError``,
``Cancelled``; all derive from ``onnx_compress.Error``. The work runs with the GIL released;
Ctrl-C raises KeyboardInterrupt once the library has stopped, and a ``StopFlag`` set from another
thread raises ``Cancelled``; either way no output file is written.
"""
import os
import tempfile
from pathlib import Path

from . import _onnx_compress as _core
from ._onnx_compress import (Cancelled, Error, InvalidArgument, LoadError, SaveError, StopFlag,
                             UnsupportedError)

__version__ = _core.__version__
__all__ = ["compress", "prune", "quantize", "plan", "inspect", "evaluate", "compare", "shipped_recipes",
           "Error", "InvalidArgument", "LoadError", "UnsupportedError", "SaveError", "Cancelled", "StopFlag"]

_RECIPES = Path(__file__).resolve().parent / "recipes"
if _RECIPES.is_dir():
    os.environ.setdefault("ONNX_COMPRESS_RECIPES", str(_RECIPES))


def shipped_recipes():
    """Names of the recipes shipped with the package (int8, w8, prune30-obs-int8, ...)."""
    return list(_core.shipped_recipes())


def _spec(data, tmp, name):
    """A data argument as a spec string: arrays and dicts are written to `tmp` as .npy/.npz."""
    if data is None:
        return ""
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    import numpy as np
    if isinstance(data, dict):
        path = os.path.join(tmp, name + ".npz")
        np.savez(path, **{k: np.ascontiguousarray(v) for k, v in data.items()})
        return path
    path = os.path.join(tmp, name + ".npy")
    np.save(path, np.ascontiguousarray(data))
    return path


def _labels(labels, tmp):
    if labels is None:
        return ""
    if isinstance(labels, (str, os.PathLike)):
        return os.fspath(labels)
    import numpy as np
    path = os.path.join(tmp, "labels.npy")
    np.save(path, np.asarray(labels).astype(np.int64).reshape(-1))
    return path


def _image_options(mean, std, bgr, resize):
    o = {"bgr": bool(bgr)}
    if mean is not None:
        o["mean"] = [float(v) for v in mean] if hasattr(mean, "__len__") else float(mean)
    if std is not None:
        o["std"] = [float(v) for v in std] if hasattr(std, "__len__") else float(std)
    if resize is not None:
        o["resize"] = resize
    return o


def _shapes(input_shapes):
    return {k: [int(d) for d in v] for k, v in (input_shapes or {}).items()}


def _path(p):
    return "" if p is None else os.fspath(p)


def compress(input, output, recipe="int8", calib=None, eval=None, labels=None, progress=None, stop=None, *,
             calib_samples=0, batch_size=8, eval_samples=64, eval_on_calib=True, input_shapes=None, threads=0,
             device="cpu", external_data=False, mean=None, std=None, bgr=False, resize=None,
             skip_bad_samples=False, report=None, html=None):
    """Runs a recipe (a shipped name, a .json path or a dict) on `input`, writes `output` and returns
    the report (docs/REPORT_SCHEMA.md) as a dict. `progress(p)` gets {"stage", "step", "steps",
    "done", "total"}; `report`/`html` also write the JSON/HTML report."""
    with tempfile.TemporaryDirectory(prefix="onnx_compress_") as tmp:
        opts = {"calib": _spec(calib, tmp, "calib"), "eval": _spec(eval, tmp, "eval"),
                "labels": _labels(labels, tmp), "calib_samples": int(calib_samples),
                "batch_size": int(batch_size), "eval_samples": int(eval_samples),
                "eval_on_calib": bool(eval_on_calib), "input_shapes": _shapes(input_shapes),
                "threads": int(threads), "device": device, "external_data": bool(external_data),
                "skip_bad_samples": bool(skip_bad_samples), "report": _path(report), "html": _path(html)}
        opts.update(_image_options(mean, std, bgr, resize))
        return _core.compress(os.fspath(input), os.fspath(output), recipe, opts, progress, stop)


def _step(kind, input, output, calib, eval, labels, progress, stop, common, step_options):
    options = {k.replace("_", "-"): v for k, v in step_options.items()}
    recipe = {"name": kind, "steps": [{kind: options}]}
    # As the `prune` / `quantize` commands: fidelity only on --eval data, all of it.
    common.setdefault("eval_on_calib", False)
    common.setdefault("eval_samples", 0)
    return compress(input, output, recipe, calib, eval, labels, progress, stop, **common)


_COMMON = {"calib_samples", "batch_size", "eval_samples", "eval_on_calib", "input_shapes", "threads", "device",
           "external_data", "mean", "std", "bgr", "resize", "skip_bad_samples", "report", "html"}


def prune(input, output, calib=None, eval=None, labels=None, progress=None, stop=None, **options):
    """Structured pruning: the `prune` command's options as keywords (target_macs=0.7,
    criterion="obs", compensate=True, ...). Returns the report dict."""
    common = {k: options.pop(k) for k in list(options) if k in _COMMON}
    return _step("prune", input, output, calib, eval, labels, progress, stop, common, options)


def quantize(input, output, calib=None, eval=None, labels=None, progress=None, stop=None, **options):
    """Mixed-bit quantization: the `quantize` command's options as keywords (bits=8, avg_bits=4.5,
    method="gptq", activations="int8", ...). Returns the report dict."""
    common = {k: options.pop(k) for k in list(options) if k in _COMMON}
    return _step("quantize", input, output, calib, eval, labels, progress, stop, common, options)


def plan(input, recipe="int8", input_shapes=None):
    """Dry run: predicted params, MACs and file size after each step, without data; writes nothing."""
    return _core.plan(os.fspath(input), recipe, {"input_shapes": _shapes(input_shapes)})


def inspect(path, deploy=False, input_shapes=None):
    """The model summary (`onnx-compress inspect --json`) as a dict; `deploy` adds the deployment check."""
    return _core.inspect(os.fspath(path), {"deploy": bool(deploy), "input_shapes": _shapes(input_shapes)})


def evaluate(reference, candidate, data, labels=None, progress=None, stop=None, *, batch_size=16, max_samples=0,
             threads=0, input_shapes=None, mean=None, std=None, bgr=False, resize=None, skip_bad_samples=False):
    """Fidelity (cosine, SQNR, max error, top-1 agreement), accuracy with labels, and latency of
    `candidate` against `reference` on `data` (`onnx-compress evaluate --json`)."""
    with tempfile.TemporaryDirectory(prefix="onnx_compress_") as tmp:
        opts = {"data": _spec(data, tmp, "data"), "labels": _labels(labels, tmp), "batch_size": int(batch_size),
                "max_samples": int(max_samples), "threads": int(threads), "input_shapes": _shapes(input_shapes),
                "skip_bad_samples": bool(skip_bad_samples)}
        opts.update(_image_options(mean, std, bgr, resize))
        return _core.evaluate(os.fspath(reference), os.fspath(candidate), opts, progress, stop)


def compare(reports, labels=None, html=None):
    """Reports (paths or dicts) side by side: {"runs", "best", "notes", "text"}; `html` writes the page."""
    items = [r if isinstance(r, dict) else os.fspath(r) for r in reports]
    return _core.compare(items, None if labels is None else list(labels), None if html is None else os.fspath(html))
