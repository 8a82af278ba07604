#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#ifdef FLOOR_WITH_STAT
#include <sys/stat.h>
#endif

static void *twice(void *arg) { return (void *)((long)arg * 2); }

/* compute(2.0): 42 from a thread, 10 from cos() found with dlopen, 1 from fcntl, and
   exp(2) + log(20) + pow(2, 3) = 7 + 2 + 8 from libm: 70 */
static PyObject *compute(PyObject *self, PyObject *arg) {
    double x = PyFloat_AsDouble(arg);
    if (x == -1.0 && PyErr_Occurred())
        return NULL;
    pthread_t thread;
    void *result = NULL;
    if (pthread_create(&thread, NULL, twice, (void *)21) != 0 || pthread_join(thread, &result) != 0)
        return PyErr_Format(PyExc_OSError, "pthread_create failed");
    void *libm = dlopen("libm.so.6", RTLD_NOW);
    double (*cosine)(double) = libm ? (double (*)(double))dlsym(libm, "cos") : NULL;
    if (cosine == NULL)
        return PyErr_Format(PyExc_OSError, "dlopen(libm.so.6) failed");
    /* 1 whether or not stdin is open: either way fcntl ran */
    int ran = fcntl(0, F_GETFD) >= 0 || errno == EBADF;
    long total = (long)result + (long)(10 * cosine(0.0)) + ran
        + (long)exp(x) + (long)log(10 * x) + (long)pow(x, 3.0);
    return PyLong_FromLong(total);
}

static PyObject *has_stat(PyObject *self, PyObject *args) {
#ifdef FLOOR_WITH_STAT
    struct stat st;
    return PyBool_FromLong(stat("/", &st) == 0);
#else
    Py_RETURN_NONE;
#endif
}

static PyMethodDef methods[] = {
    {"compute", compute, METH_O, "compute(2.0) is 70 when threads, dlopen, libm and fcntl work"},
    {"has_stat", has_stat, METH_NOARGS, "stat(\"/\") succeeded (None: built without stat)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_floordemo", NULL, -1, methods};

PyMODINIT_FUNC PyInit__floordemo(void) { return PyModule_Create(&module); }
