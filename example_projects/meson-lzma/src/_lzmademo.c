#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <lzma.h>

static PyObject *
lzmademo_lzma_version(PyObject *self, PyObject *Py_UNUSED(args))
{
    return PyUnicode_FromString(lzma_version_string());
}

static PyObject *
lzmademo_roundtrip(PyObject *self, PyObject *arg)
{
    Py_buffer in;
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0) {
        return NULL;
    }

    size_t comp_cap = lzma_stream_buffer_bound((size_t)in.len);
    uint8_t *comp = PyMem_Malloc(comp_cap);
    uint8_t *out = PyMem_Malloc(in.len > 0 ? (size_t)in.len : 1);
    if (comp == NULL || out == NULL) {
        PyMem_Free(comp);
        PyMem_Free(out);
        PyBuffer_Release(&in);
        return PyErr_NoMemory();
    }

    size_t comp_len = 0, in_pos = 0, out_len = 0;
    uint64_t memlimit = UINT64_MAX;
    lzma_ret rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, in.buf,
                                 (size_t)in.len, comp, &comp_len, comp_cap);
    if (rc == LZMA_OK) {
        rc = lzma_stream_buffer_decode(&memlimit, 0, NULL, comp, &in_pos,
                                       comp_len, out, &out_len, (size_t)in.len);
    }
    Py_END_ALLOW_THREADS

    PyObject *result = NULL;
    if (rc != LZMA_OK) {
        PyErr_Format(PyExc_RuntimeError, "liblzma error %d", (int)rc);
    }
    else {
        result = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)out_len);
    }
    PyMem_Free(comp);
    PyMem_Free(out);
    PyBuffer_Release(&in);
    return result;
}

static PyMethodDef lzmademo_methods[] = {
    {"lzma_version", lzmademo_lzma_version, METH_NOARGS,
     "Return the version string of the linked liblzma."},
    {"roundtrip", lzmademo_roundtrip, METH_O,
     "Compress then decompress the given bytes with liblzma."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef lzmademo_module = {
    PyModuleDef_HEAD_INIT, "lzmademo._lzmademo", NULL, -1, lzmademo_methods,
};

PyMODINIT_FUNC
PyInit__lzmademo(void)
{
    return PyModule_Create(&lzmademo_module);
}
