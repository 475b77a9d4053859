/* A tiny CPython extension: fastsum.total(iterable of ints) -> int. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *total(PyObject *self, PyObject *args) {
    PyObject *iterable;
    if (!PyArg_ParseTuple(args, "O", &iterable)) return NULL;
    PyObject *it = PyObject_GetIter(iterable);
    if (!it) return NULL;
    long long sum = 0;
    PyObject *item;
    while ((item = PyIter_Next(it))) {
        sum += PyLong_AsLongLong(item);
        Py_DECREF(item);
        if (PyErr_Occurred()) { Py_DECREF(it); return NULL; }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    return PyLong_FromLongLong(sum);
}

static PyMethodDef methods[] = {
    {"total", total, METH_VARARGS, "Sum of an iterable of integers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fastsum", NULL, -1, methods};

PyMODINIT_FUNC PyInit_fastsum(void) { return PyModule_Create(&module); }
