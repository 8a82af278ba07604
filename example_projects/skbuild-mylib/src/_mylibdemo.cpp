#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string>

#include "mylib.h"

static PyObject *mylibdemo_greet(PyObject *, PyObject *arg)
{
    Py_ssize_t size = 0;
    const char *name = PyUnicode_AsUTF8AndSize(arg, &size);
    if (name == nullptr) {
        return nullptr;
    }
    try {
        std::string text = mylib::greeting(std::string(name, static_cast<size_t>(size)));
        return PyUnicode_FromStringAndSize(text.data(), static_cast<Py_ssize_t>(text.size()));
    }
    catch (const std::exception &exc) {
        PyErr_SetString(PyExc_RuntimeError, exc.what());
        return nullptr;
    }
}

static PyMethodDef mylibdemo_methods[] = {
    {"greet", mylibdemo_greet, METH_O, "Return a greeting for name, built by libmylib."},
    {nullptr, nullptr, 0, nullptr},
};

static struct PyModuleDef mylibdemo_module = {
    PyModuleDef_HEAD_INIT, "mylibdemo._mylibdemo", nullptr, -1, mylibdemo_methods,
};

PyMODINIT_FUNC PyInit__mylibdemo(void)
{
    return PyModule_Create(&mylibdemo_module);
}
