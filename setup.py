"""Builds the Cython extensions and nothing else (metadata lives in pyproject.toml): engine._fastpath,
the record loop, and engine.bench._floor, the benchmark's librdkafka-only floor."""

import shutil
import sys
import sysconfig

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


def extensions():
    try:
        from Cython.Build import cythonize
    except ImportError:
        sys.exit("mirror-engine: Cython >= 3 is required to build engine/_fastpath.pyx (pip install 'Cython>=3')")

    return cythonize(
        [Extension("engine._fastpath", ["engine/_fastpath.pyx"], include_dirs=["engine"], extra_compile_args=["-O2"],
                   # librdkafka's symbols stay unresolved here: engine/librdkafka.py loads the library
                   # of the confluent-kafka wheel before the module is imported
                   depends=["engine/_librdkafka.h", "engine/_librdkafka.pxd", "engine/_fastpath.pxd"]),
         # the same C API on the same unresolved symbols: loaded after engine.librdkafka too
         Extension("engine.bench._floor", ["engine/bench/_floor.pyx"], include_dirs=["engine"],
                   extra_compile_args=["-O2"], depends=["engine/_librdkafka.h", "engine/_librdkafka.pxd"])],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildFastpath})
