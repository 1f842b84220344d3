"""Builds the Cython extensions and nothing else (metadata lives in pyproject.toml): engine._fastpath,
the record loop (engine/_fastpath.pyx including engine/fastpath/*), and engine.bench._floor, the
benchmark's librdkafka-only floor."""

import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildFastpath(build_ext):
    """Fails loudly, naming what is missing, instead of half-building."""

    def run(self):
        compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
        if shutil.which(compiler) is None:
            sys.exit(
                f"mirror-engine: no C compiler found (looked for {compiler!r}); "
                "engine/_fastpath.pyx must be compiled. Install gcc (e.g. apt-get install gcc) and retry."
            )
        try:
            import Cython
        except ImportError:
            sys.exit("mirror-engine: Cython >= 3 is required to build engine/_fastpath.pyx (pip install 'Cython>=3')")
        if int(Cython.__version__.split(".")[0]) < 3:
            sys.exit(f"mirror-engine: Cython >= 3 is required, found {Cython.__version__}")
        super().run()


# what engine/_fastpath.pyx and .pxd include, one concern a file: all of them, or no build
FASTPATH_PARTS = [f"engine/fastpath/{name}" for name in (
    "clock.pxi", "errors.pyx", "provenance.pyx", "ledger.pyx", "ledger.pxd", "record_filter.pyx",
    "record_filter.pxd", "bookkeeper.pyx", "bookkeeper.pxd", "native_relay.pyx", "native_relay.pxd", "clients.pxi")]
LIBRDKAFKA = ["engine/_librdkafka.h", "engine/_librdkafka.pxd"]


def _present(paths):
    missing = [path for path in paths if not (Path(__file__).parent / path).is_file()]
    if missing:
        sys.exit(f"mirror-engine: cannot build the fast path: missing {', '.join(missing)} "
                 "(an incomplete checkout or sdist; check out the repository again)")
    return paths


def extensions():
    try:
        from Cython.Build import cythonize
    except ImportError:
        sys.exit("mirror-engine: Cython >= 3 is required to build engine/_fastpath.pyx (pip install 'Cython>=3')")

    return cythonize(
        [Extension("engine._fastpath", ["engine/_fastpath.pyx"], include_dirs=["engine"], extra_compile_args=["-O2"],
                   # librdkafka's symbols stay unresolved here: engine/librdkafka.py loads the library
                   # of the confluent-kafka wheel before the module is imported
                   depends=_present(LIBRDKAFKA + ["engine/_fastpath.pxd"] + FASTPATH_PARTS)),
         # the same C API on the same unresolved symbols: loaded after engine.librdkafka too
         Extension("engine.bench._floor", ["engine/bench/_floor.pyx"], include_dirs=["engine"],
                   extra_compile_args=["-O2"], depends=_present(LIBRDKAFKA + ["engine/fastpath/clients.pxi"]))],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
        include_path=["engine"],  # include "fastpath/..." from engine/bench/_floor.pyx too
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildFastpath})
