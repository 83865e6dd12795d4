/*
 * drvault.filesystem._sparse -- restore's write of one blob into a file, leaving
 * all-zero blocks as holes.
 *
 *   pwrite_sparse(fd, data, offset, block) -> None
 *       write `data` at `offset` of `fd`, skipping every block of `block`
 *       bytes (aligned to the file offset, not to `data`) that is all zeros;
 *       the runs of non-zero blocks go out with one pwrite each (repeated on
 *       a short write or EINTR).  OSError on a failed write; what was written
 *       before it stays.
 *
 * This is drvault.filesystem.sparse.py_pwrite_sparse in C: the same blocks
 * skipped, the same bytes written.  The GIL is released for the scan and the
 * writes, so a restore's workers write in parallel without a Python step per
 * block.  `data` is held (exported) meanwhile, so no thread can resize it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* Whether n bytes at p are all zero: the first word decides most data blocks. */
static int
all_zero(const uint8_t *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (; i + 8 <= n && i < 64; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w) return 0;
    }
    for (; i + 64 <= n; i += 64) {
        uint64_t w[8];
        memcpy(w, p + i, 64);
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) return 0;
    }
    for (; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* pwrite all n bytes; 0, or the errno of the failure. */
static int
write_all(int fd, const uint8_t *p, Py_ssize_t n, int64_t offset)
{
    while (n > 0) {
        ssize_t done = pwrite(fd, p, (size_t)n, (off_t)offset);
        if (done < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (done == 0) return EIO;
        p += done;
        n -= done;
        offset += done;
    }
    return 0;
}

static int
sparse_write(int fd, const uint8_t *data, Py_ssize_t length, int64_t offset, Py_ssize_t block)
{
    Py_ssize_t run = -1; /* start of the pending run of non-zero blocks */
    Py_ssize_t start = 0;
    while (start < length) {
        Py_ssize_t end = start + block - (Py_ssize_t)((offset + start) % block);
        if (end > length) end = length;
        if (all_zero(data + start, end - start)) {
            if (run >= 0) {
                int err = write_all(fd, data + run, start - run, offset + run);
                if (err) return err;
                run = -1;
            }
        }
        else if (run < 0) {
            run = start;
        }
        start = end;
    }
    if (run >= 0) return write_all(fd, data + run, length - run, offset + run);
    return 0;
}

PyDoc_STRVAR(pwrite_sparse_doc,
"pwrite_sparse(fd, data, offset, block, /)\n--\n\n"
"Write data at offset of fd, skipping all-zero blocks aligned to the file offset.");

static PyObject *
pwrite_sparse(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "pwrite_sparse() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred()) return NULL;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "bad file descriptor %ld", fd);
        return NULL;
    }
    long long offset = PyLong_AsLongLong(args[2]);
    if (offset == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t block = PyLong_AsSsize_t(args[3]);
    if (block == -1 && PyErr_Occurred()) return NULL;
    if (offset < 0 || block <= 0) {
        PyErr_Format(PyExc_ValueError, "offset %lld and block %zd: offset must not be negative, "
                     "block must be positive", offset, block);
        return NULL;
    }
    Py_buffer data;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) return NULL;
    if (data.len > INT64_MAX - offset) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_OverflowError, "offset + length above 2**63 - 1");
        return NULL;
    }
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = sparse_write((int)fd, (const uint8_t *)data.buf, data.len, (int64_t)offset, block);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"pwrite_sparse", (PyCFunction)(void (*)(void))pwrite_sparse, METH_FASTCALL,
     pwrite_sparse_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "drvault.filesystem._sparse",
    .m_doc = "Sparse writes of restored blobs (C hot path of drvault.filesystem.sparse).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__sparse(void)
{
    return PyModule_Create(&module_def);
}
