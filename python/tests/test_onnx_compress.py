"""pytest for the onnx_compress package on the bundled Fashion-MNIST CNN (models/fashion_cnn)."""
import _thread
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import onnx_compress as oc

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "fashion_cnn" / "model.onnx"
X = np.load(ROOT / "models" / "fashion_cnn" / "test_x.npy")
Y = np.load(ROOT / "models" / "fashion_cnn" / "test_y.npy")
# One executor thread: quick and steady on a loaded 2-core CI machine (OpenMP threads spin when oversubscribed).
CLI = shutil.which("onnx-compress") or os.environ.get("ONNX_COMPRESS_CLI")


def test_inspect_reports_the_model():
    s = oc.inspect(MODEL)
    assert s["params"] == 108456
    assert [i["name"] for i in s["inputs"]] == ["x"]
    d = oc.inspect(MODEL, deploy=True)["deployment"]
    assert d["compute_layers"] == 15 and d["integer_layers"] == 0


def test_compress_int8_with_arrays_returns_the_report(tmp_path):
    out = tmp_path / "int8.onnx"
    seen = []
    r = oc.compress(MODEL, out, recipe="int8", calib=X[:64], eval=X[200:328], labels=Y[200:328],
                    eval_samples=128, progress=seen.append, report=tmp_path / "r.json", html=tmp_path / "r.html", threads=1)
    assert out.exists() and out.stat().st_size < MODEL.stat().st_size / 2
    assert r["schema"] == "onnx-compress-report" and r["command"] == "quantize"
    assert r["accuracy"]["reference"] == pytest.approx(
        oc.evaluate(MODEL, MODEL, X[200:328], Y[200:328], threads=1)["accuracy"]["reference"])
    assert r["accuracy"]["candidate"] > 0.8
    assert r["deployment"]["integer_layers"] >= 14
    assert json.loads((tmp_path / "r.json").read_text())["totals"] == r["totals"]
    assert "Accuracy" in (tmp_path / "r.html").read_text()
    stages = {p["stage"] for p in seen}
    assert "calibrate quantize" in stages and "evaluate" in stages
    calib = [p for p in seen if p["stage"] == "calibrate quantize"]
    assert [p["done"] for p in calib] == sorted(p["done"] for p in calib) and calib[-1]["done"] == calib[-1]["total"]


def test_prune_quantize_evaluate_and_compare(tmp_path):
    a, b = tmp_path / "p.onnx", tmp_path / "q.onnx"
    rp = oc.prune(MODEL, a, calib={"x": X[:32]}, target_macs=0.7, criterion="obs", threads=1)
    assert rp["command"] == "prune" and rp["totals"]["after"]["macs"] <= 0.71 * rp["totals"]["before"]["macs"]
    np.save(tmp_path / "calib.npy", X[:32])
    rq = oc.quantize(MODEL, b, calib=tmp_path / "calib.npy", bits=4, method="gptq", threads=1)
    assert rq["command"] == "quantize" and all(l["bits"] in (4, 8) for l in rq["layers"])
    e = oc.evaluate(MODEL, b, X[:128], Y[:128], threads=1)
    assert e["samples"] == 128 and 0.5 < e["accuracy"]["candidate"] <= 1
    assert e["fidelity"]["logits"]["cosine"] > 0.9
    c = oc.compare([rp, rq], labels=["pruned", "w4"], html=tmp_path / "c.html")
    assert [r["label"] for r in c["runs"]] == ["pruned", "w4"]
    assert c["best"]["file_bytes"] == "w4"
    assert "pruned" in (tmp_path / "c.html").read_text()


def test_errors_are_exceptions_with_the_cli_message(tmp_path):
    with pytest.raises(oc.InvalidArgument) as e:
        oc.compress(MODEL, tmp_path / "o.onnx", recipe="no-such-recipe", threads=1)
    assert str(e.value).startswith("recipe 'no-such-recipe' is neither a file nor a shipped recipe")
    assert isinstance(e.value, oc.Error)
    with pytest.raises(oc.InvalidArgument, match="calibration input 'x' has shape \\[4,28,28\\]"):
        oc.quantize(MODEL, tmp_path / "o.onnx", calib=np.zeros((4, 28, 28), np.float32), bits=8, method="gptq", threads=1)
    bad = X[:8].copy()
    bad[3, 0, 5, 5] = np.nan
    with pytest.raises(oc.InvalidArgument, match="has NaN in sample 3 of .*calib.npy"):
        oc.quantize(MODEL, tmp_path / "o.onnx", calib=bad, bits=8, method="gptq", threads=1)
    r = oc.quantize(MODEL, tmp_path / "o.onnx", calib=bad, bits=8, method="gptq", skip_bad_samples=True, threads=1)
    assert r["extra"]["skipped_samples"]["calibration"] == 1
    os.remove(tmp_path / "o.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(oc.LoadError):
        oc.inspect(tmp_path / "junk.onnx")
    assert not (tmp_path / "o.onnx").exists()
    if CLI:  # the same line as the command line's, after its "onnx-compress quantize: error: " prefix
        p = subprocess.run([CLI, "compress", str(MODEL), "-o", str(tmp_path / "o.onnx"), "--recipe", "no-such-recipe"],
                           capture_output=True, text=True)
        assert p.stderr.strip() == "onnx-compress compress: error: " + str(e.value)


def test_a_raising_progress_callback_stops_the_work_and_writes_nothing(tmp_path):
    out = tmp_path / "o.onnx"

    def boom(p):
        if p["done"] > 0:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        oc.compress(MODEL, out, recipe="int8", calib=X[:64], batch_size=4, progress=boom, threads=1)
    assert not out.exists()


def test_stop_flag_cancels_and_writes_nothing(tmp_path):
    out = tmp_path / "o.onnx"
    stop = oc.StopFlag()

    def progress(p):
        if p["done"] >= 2:
            stop.set()

    with pytest.raises(oc.Cancelled):
        oc.compress(MODEL, out, recipe="int8", calib=X[:64], batch_size=4, progress=progress, stop=stop, threads=1)
    assert not out.exists() and stop.is_set()


def test_keyboard_interrupt_stops_cleanly(tmp_path):
    out = tmp_path / "o.onnx"
    calls = []

    def progress(p):  # runs on the library's worker thread: Ctrl-C as the main thread sees it
        calls.append(p)
        if len(calls) == 3:
            _thread.interrupt_main()
            # Hold the worker (sleep releases the GIL) past a few of the caller's 50 ms signal polls, so
            # the interrupt is seen while work remains.
            time.sleep(0.3)

    # Python's own Ctrl-C handler, whatever the process inherited: a job started in the background of a
    # non-interactive shell has SIGINT ignored, and then interrupt_main() does nothing.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            oc.compress(MODEL, out, recipe="int8", calib=X[:128], batch_size=2, progress=progress, threads=1)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not out.exists()
    # Stopped early: calibration did not run to the end.
    assert all(not (p["stage"] == "evaluate") for p in calls)
    # The library is usable afterwards.
    oc.quantize(MODEL, out, bits=8, threads=1)
    assert out.exists()


def test_the_gil_is_released_while_working(tmp_path):
    ticks = [0]
    running = threading.Event()

    def count():
        running.set()
        while running.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    running.wait()
    start = ticks[0]
    t0 = time.monotonic()
    oc.quantize(MODEL, tmp_path / "o.onnx", calib=X[:256], bits=4, method="gptq", batch_size=8, threads=1)
    elapsed = time.monotonic() - t0
    done = ticks[0] - start
    running.clear()
    t.join()
    # A thread sleeping 1 ms per tick makes progress only while the GIL is free.
    assert elapsed > 0.05
    assert done > 0.3 * elapsed * 1000 / 2
