"""Builds onnx_compress: the C++ extension comes from the repository's CMake build (target
_onnx_compress, pybind11 from Debian), so the package links the same static libraries as the CLI.

    python3 -m venv --system-site-packages V && V/bin/pip install --no-build-isolation ./python

ONNX_COMPRESS_BUILD_DIR picks the CMake build folder (default: build/ at the repository root, what
scripts/build.sh makes; a configured folder is reused, so an already built tree installs in seconds).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = Path(os.environ.get("ONNX_COMPRESS_BUILD_DIR", "build"))
        if not build_dir.is_absolute():
            build_dir = ROOT / build_dir
        configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DOC_BUILD_PYTHON=ON",
                     f"-DPython3_EXECUTABLE={sys.executable}"]
        if not (build_dir / "CMakeCache.txt").exists():
            configure.append("-DCMAKE_BUILD_TYPE=Release")
            if shutil.which("ccache"):
                configure.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
        subprocess.check_call(configure, stdout=subprocess.DEVNULL)
        jobs = os.environ.get("ONNX_COMPRESS_JOBS", str(os.cpu_count() or 2))
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "_onnx_compress", "-j", jobs])
        built = sorted((build_dir / "python").glob("_onnx_compress*.so"))
        if not built:
            raise RuntimeError(f"no _onnx_compress module in {build_dir / 'python'} (is pybind11-dev installed?)")
        dest = Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], dest)
        # Shipped recipes travel with the package (found through ONNX_COMPRESS_RECIPES).
        recipes = dest.parent / "recipes"
        recipes.mkdir(exist_ok=True)
        for r in (ROOT / "recipes").glob("*.json"):
            shutil.copyfile(r, recipes / r.name)


def version():
    for line in (ROOT / "CMakeLists.txt").read_text().splitlines():
        if line.startswith("project(onnx_compress VERSION"):
            return line.split()[2]
    return "0.0.0"


setup(
    name="onnx_compress",
    version=version(),
    description="Structured pruning and mixed-bit quantization of ONNX models (C++ core)",
    packages=["onnx_compress"],
    ext_modules=[CMakeExtension("onnx_compress._onnx_compress")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    zip_safe=False,
)
