"""Fixtures for the glibc-floor tests: C sources, gcc builds, and old/new glibc runtimes."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: threads, dlopen, libm and fcntl: the symbols a Debian 12 toolchain pins to 2.28..2.34
WORK_C = r"""
#include <pthread.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>
#include <time.h>
#include <signal.h>
#include <string.h>
#include <errno.h>
static void *run(void *a) { return (void *)((long)a * 2); }
int work(double x) {
    pthread_t t; void *r = 0; pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    if (pthread_create(&t, 0, run, (void *)21) || pthread_join(t, &r)) return -1;
    pthread_mutex_lock(&m); pthread_mutex_unlock(&m);
    void *h = dlopen("libm.so.6", RTLD_NOW);
    double (*cosp)(double) = h ? (double (*)(double))dlsym(h, "cos") : 0;
    int fl = fcntl(0, F_GETFD) >= 0 || errno == EBADF;  /* 1 whether or not stdin is open */
    timer_t tm; struct sigevent ev; memset(&ev, 0, sizeof ev); ev.sigev_notify = SIGEV_NONE;
    int tc = timer_create(CLOCK_MONOTONIC, &ev, &tm) == 0; if (tc) timer_delete(tm);
    return (int)(long)r + (cosp ? (int)(10 * cosp(0.0)) : 0) + fl + tc
        + (int)exp(x) + (int)log(x * 10) + (int)pow(x, 3.0);
}
"""

STAT_C = r"""
#include <sys/stat.h>
int has_stat(const char *p) { struct stat st; return stat(p, &st) == 0; }
"""

#: the program a rewritten library is loaded by on old and new glibc
DRIVER_C = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { printf("dlopen failed: %s\n", dlerror()); return 1; }
    int (*work)(double) = (int (*)(double))dlsym(h, "work");
    if (!work) { printf("no work()\n"); return 1; }
    printf("work(2.0) = %d\n", work(2.0));
    return 0;
}
"""

#: 42 (thread) + 10 (cos through dlopen) + 1 (fcntl) + 1 (timer) + 7 (exp) + 2 (log) + 8 (pow)
EXPECTED = "work(2.0) = 71"


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


def gcc_shared(src: str, out: Path, *flags: str, cc: str = "gcc") -> Path:
    """Build a shared library the way an extension is built against Python.h (_FILE_OFFSET_BITS)."""
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is needed to build the fixture")
    c = out.with_suffix(".c")
    c.write_text(src)
    proc = run(
        [
            cc,
            "-shared",
            "-fPIC",
            "-O1",
            "-D_FILE_OFFSET_BITS=64",
            "-D_GNU_SOURCE",
            *flags,
            "-o",
            str(out),
            str(c),
            "-lm",
            "-lpthread",
            "-ldl",
            "-lrt",
        ]
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return out


def patchelf() -> str:
    from relabel import patchelf as p

    return p.find()


@dataclass(frozen=True)
class Roots:
    work: Path
    bullseye: Path  # debootstrapped bullseye amd64 (glibc 2.31)
    trixie: Path  # trixie's libc6 amd64, unpacked (glibc 2.41)
    trixie_arm64: Path
    bullseye_arm64: Path

    def loader_231(self) -> list[str]:
        lib = self.bullseye / "lib/x86_64-linux-gnu"
        return [str(lib / "ld-2.31.so"), "--library-path", str(lib)]

    def loader_241(self) -> list[str]:
        lib = self.trixie / "usr/lib/x86_64-linux-gnu"
        return [str(lib / "ld-linux-x86-64.so.2"), "--library-path", str(lib)]


_ROOTS: list[Roots] = []


def glibc_roots() -> Roots:
    """The cached runtimes of ``.ci/glibc-roots``, made on first use (about 2 minutes)."""
    if _ROOTS:
        return _ROOTS[0]
    work = Path(os.environ.get("RELABEL_GLIBC_ROOTS", "/var/tmp/relabel-floor"))
    proc = run(["bash", str(REPO / ".ci" / "glibc-roots"), str(work)])
    if proc.returncode == 75:
        pytest.skip(f"the Debian mirror is unreachable: {proc.stderr.strip()[-300:]}")
    if proc.returncode == 2:
        pytest.skip("debootstrap of the bullseye root needs root; run .ci/glibc-roots as root once")
    if proc.returncode != 0:
        raise RuntimeError(f".ci/glibc-roots failed:\n{proc.stderr}")
    roots = Roots(
        work,
        work / "bullseye-amd64",
        work / "trixie-amd64",
        work / "trixie-arm64",
        work / "bullseye-arm64",
    )
    _ROOTS.append(roots)
    return roots


def bullseye_driver(roots: Roots, out: Path) -> Path:
    """DRIVER_C built inside the bullseye root, so it needs nothing newer than glibc 2.31."""
    if os.geteuid() != 0:
        pytest.skip("building the driver in the bullseye root needs chroot (root)")
    cached = roots.work / "driver-bullseye"
    if not cached.exists():
        scratch = roots.bullseye / "tmp" / "relabel-driver"
        scratch.mkdir(parents=True, exist_ok=True)
        (scratch / "driver.c").write_text(DRIVER_C)
        proc = run(
            [
                "chroot",
                str(roots.bullseye),
                "gcc",
                "-O1",
                "-o",
                "/tmp/relabel-driver/driver",
                "/tmp/relabel-driver/driver.c",
                "-ldl",
            ]
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        shutil.copy(scratch / "driver", cached)
    shutil.copy(cached, out)
    return out


#: an aarch64 driver without crt1.o (so without __libc_start_main@GLIBC_2.34): relabel lowers
#: the cross-built driver itself, then it loads ./lowered.so from its directory
START_DRIVER_C = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
static int run(void) {
    void *h = dlopen("./lowered.so", RTLD_NOW);
    if (!h) { printf("dlopen failed: %s\n", dlerror()); return 1; }
    int (*work)(double) = (int (*)(double))dlsym(h, "work");
    if (!work) { printf("no work()\n"); return 1; }
    printf("work(2.0) = %d\n", work(2.0));
    fflush(stdout);
    return 0;
}
void _start(void) { exit(run()); }
"""
