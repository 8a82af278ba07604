#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <bzlib.h>
#include <limits.h>

static PyObject *
bz2demo_bz2_version(PyObject *self, PyObject *Py_UNUSED(args))
{
    return PyUnicode_FromString(BZ2_bzlibVersion());
}

static PyObject *
bz2demo_roundtrip(PyObject *self, PyObject *arg)
{
    Py_buffer in;
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (in.len > (Py_ssize_t)(UINT_MAX / 2 - 1024)) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_OverflowError, "input too large");
        return NULL;
    }

    /* bzip2 guarantees the output fits in len + 1% + 600 bytes. */
    unsigned int comp_cap = (unsigned int)(in.len + in.len / 100 + 601);
    char *comp = PyMem_Malloc(comp_cap);
    char *out = PyMem_Malloc(in.len > 0 ? (size_t)in.len : 1);
    if (comp == NULL || out == NULL) {
        PyMem_Free(comp);
        PyMem_Free(out);
        PyBuffer_Release(&in);
        return PyErr_NoMemory();
    }

    unsigned int comp_len = comp_cap;
    unsigned int out_len = (unsigned int)in.len;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = BZ2_bzBuffToBuffCompress(comp, &comp_len, (char *)in.buf,
                                  (unsigned int)in.len, 9, 0, 0);
    if (rc == BZ_OK) {
        rc = BZ2_bzBuffToBuffDecompress(out, &out_len, comp, comp_len, 0, 0);
    }
    Py_END_ALLOW_THREADS

    PyObject *result = NULL;
    if (rc != BZ_OK) {
        PyErr_Format(PyExc_RuntimeError, "libbz2 error %d", rc);
    }
    else {
        result = PyBytes_FromStringAndSize(out, out_len);
    }
    PyMem_Free(comp);
    PyMem_Free(out);
    PyBuffer_Release(&in);
    return result;
}

static PyMethodDef bz2demo_methods[] = {
    {"bz2_version", bz2demo_bz2_version, METH_NOARGS,
     "Return the version string of the linked libbz2."},
    {"roundtrip", bz2demo_roundtrip, METH_O,
     "Compress then decompress the given bytes with libbz2."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef bz2demo_module = {
    PyModuleDef_HEAD_INIT, "bz2demo._bz2demo", NULL, -1, bz2demo_methods,
};

PyMODINIT_FUNC
PyInit__bz2demo(void)
{
    return PyModule_Create(&bz2demo_module);
}
