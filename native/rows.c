/*
 * drvault.repository._rows -- the in-memory index's sorted rows: building,
 * sorting, merging and searching them.
 *
 * A row is ROW_SIZE (49) bytes: blob ID (32), pack number, offset, sealed
 * length and plaintext length (each uint32 little-endian), flags (1 byte:
 * type << 4 | compression).  A table is rows back to back in one buffer,
 * sorted by blob ID, bytewise.  The layout is drvault.repository.rows.ROW;
 * this module only moves rows and compares their first 32 bytes.
 *
 *   from_records(records, start, count, pack) -> bytes
 *       rows of `count` 48-byte pack-table records (see drvault.repository.pack,
 *       ENTRY) at `start` of `records`, all in pack number `pack`.
 *   sort(rows) -> bytes
 *       the rows sorted by ID; stable (equal IDs keep their order).
 *   merge(a, b) -> bytes
 *       two sorted tables as one; among equal IDs the rows of `a` come first.
 *   duplicates(rows) -> list[int]
 *       positions of the rows whose ID equals the previous row's (sorted input).
 *   find(rows, blob_id) -> int
 *       position of the first row with that ID, or -1 (sorted input).
 *
 * sort is a least-significant-digit radix sort of (top 33 bits of the ID,
 * row position) pairs, three 11-bit passes, followed by an insertion sort of
 * the rare runs whose top bits are equal.  It needs 32 bytes a row of scratch
 * besides its output.  The GIL is
 * released while sorting, merging and converting; the buffers are held
 * (exported) meanwhile, so no other thread can resize them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ROW_SIZE 49
#define ID_SIZE 32
#define RECORD_SIZE 48

typedef struct {
    uint64_t key;
    uint64_t pos;
} item;

static uint64_t
key_of(const uint8_t *id)
{
    uint64_t k = 0;
    for (int i = 0; i < 8; i++) k = (k << 8) | id[i];
    return k;
}

static void
put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Take obj's buffer into b as a table: its number of rows, or -1 with an
 * exception set (and nothing held) when it is no buffer or not whole rows. */
static Py_ssize_t
get_table(PyObject *obj, Py_buffer *b, const char *what)
{
    if (PyObject_GetBuffer(obj, b, PyBUF_SIMPLE) < 0) return -1;
    if (b->len % ROW_SIZE != 0) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes is not a whole number of %d-byte rows",
                     what, b->len, ROW_SIZE);
        PyBuffer_Release(b);
        return -1;
    }
    return b->len / ROW_SIZE;
}

static int
check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t want)
{
    if (nargs == want) return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", name, want,
                 nargs);
    return -1;
}

PyDoc_STRVAR(from_records_doc,
"from_records(records, start, count, pack, /)\n--\n\n"
"Rows of count 48-byte pack-table records at start of records, in pack number pack.");

static PyObject *
from_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (check_nargs("from_records", nargs, 4) < 0) return NULL;
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t count = PyLong_AsSsize_t(args[2]);
    if (count == -1 && PyErr_Occurred()) return NULL;
    unsigned long pack = PyLong_AsUnsignedLong(args[3]);
    if (pack == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    if (pack > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "pack number above 2**32 - 1");
        return NULL;
    }
    Py_buffer rec;
    if (PyObject_GetBuffer(args[0], &rec, PyBUF_SIMPLE) < 0) return NULL;
    if (start < 0 || start > rec.len || count < 0 || count > (rec.len - start) / RECORD_SIZE) {
        PyErr_Format(PyExc_ValueError, "%zd records at %zd lie outside %zd bytes", count, start,
                     rec.len);
        PyBuffer_Release(&rec);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * ROW_SIZE);
    if (out == NULL) {
        PyBuffer_Release(&rec);
        return NULL;
    }
    const uint8_t *src = (const uint8_t *)rec.buf + start;
    uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++, src += RECORD_SIZE, dst += ROW_SIZE) {
        /* record: id 32, type 1, compression 1, reserved 2, offset 4, length 4, raw 4 */
        memcpy(dst, src, ID_SIZE);
        put_u32(dst + 32, (uint32_t)pack);
        memcpy(dst + 36, src + 36, 12); /* offset, length, raw: already little-endian */
        dst[48] = (uint8_t)((src[32] << 4) | (src[33] & 0x0F));
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&rec);
    return out;
}

/* Stable sort of n rows at src into dst; 0, or -1 when out of memory.
 *
 * Blob IDs are keyed hashes, so their top bits are uniform: a radix sort on the
 * top RADIX_BITS bits (three 11-bit passes) leaves only rare runs of rows that
 * share them, which an insertion sort orders by the whole ID.  Equal IDs stay
 * in input order (every pass is stable, the insertion sort too), and runs of
 * equal IDs are already in order, so even many copies of one ID cost a linear
 * pass. */
#define DIGIT_BITS 11
#define PASSES 3
#define RADIX_BITS (DIGIT_BITS * PASSES)
#define BUCKETS (1 << DIGIT_BITS)

#define HUGE_PAGE ((size_t)2 << 20)

/* Ask for transparent huge pages on the 2 MiB-aligned interior of a large,
 * not yet written buffer (an output table). */
static void
advise_huge(void *buf, size_t len)
{
#ifdef MADV_HUGEPAGE
    uintptr_t lo = ((uintptr_t)buf + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    uintptr_t hi = ((uintptr_t)buf + len) & ~(uintptr_t)(HUGE_PAGE - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)buf;
    (void)len;
#endif
}

/* Scratch for n items, on transparent huge pages when large: the passes and
 * the gather touch it at random, and 4 KiB pages would cost a TLB miss (two
 * levels deep in a virtual machine) on nearly every access. */
static item *
scratch(Py_ssize_t n)
{
    size_t size = (size_t)n * sizeof(item);
    if (size < HUGE_PAGE) return malloc(size ? size : 1);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, size) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, size & ~(HUGE_PAGE - 1), MADV_HUGEPAGE);
#endif
    return p;
}

static int
sort_rows(const uint8_t *src, Py_ssize_t n, uint8_t *dst)
{
    item *a = scratch(n), *b = scratch(n);
    size_t (*counts)[BUCKETS] = calloc(PASSES, sizeof *counts);
    if (a == NULL || b == NULL || counts == NULL) {
        free(a);
        free(b);
        free(counts);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t k = key_of(src + (size_t)i * ROW_SIZE) >> (64 - RADIX_BITS);
        a[i].key = k;
        a[i].pos = (uint64_t)i;
        for (int d = 0; d < PASSES; d++) counts[d][(k >> (DIGIT_BITS * d)) & (BUCKETS - 1)]++;
    }
    for (int d = 0; d < PASSES; d++) {
        size_t *c = counts[d];
        int trivial = 0;
        for (int v = 0; v < BUCKETS; v++) {
            if (c[v] == (size_t)n) trivial = 1;
        }
        if (trivial) continue; /* every key has the same digit here: the order stands */
        size_t sum = 0;
        for (int v = 0; v < BUCKETS; v++) {
            size_t t = c[v];
            c[v] = sum;
            sum += t;
        }
        for (Py_ssize_t i = 0; i < n; i++)
            b[c[(a[i].key >> (DIGIT_BITS * d)) & (BUCKETS - 1)]++] = a[i];
        item *t = a;
        a = b;
        b = t;
    }
    /* Equal top bits: order the run by the whole ID, then position (stable). */
    for (Py_ssize_t lo = 0; lo < n;) {
        Py_ssize_t hi = lo + 1;
        while (hi < n && a[hi].key == a[lo].key) hi++;
        for (Py_ssize_t i = lo + 1; i < hi; i++) {
            item x = a[i];
            const uint8_t *xr = src + x.pos * ROW_SIZE;
            Py_ssize_t j = i;
            while (j > lo) {
                const uint8_t *yr = src + a[j - 1].pos * ROW_SIZE;
                int c = memcmp(yr, xr, ID_SIZE);
                if (c < 0 || (c == 0 && a[j - 1].pos < x.pos)) break;
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
        lo = hi;
    }
    free(b);
    free(counts);
    for (Py_ssize_t i = 0; i < n; i++)
        memcpy(dst + (size_t)i * ROW_SIZE, src + a[i].pos * ROW_SIZE, ROW_SIZE);
    free(a);
    return 0;
}

PyDoc_STRVAR(sort_doc,
"sort(rows, /)\n--\n\n"
"The rows sorted by blob ID; rows with equal IDs keep their order.");

static PyObject *
sort(PyObject *module, PyObject *rows)
{
    (void)module;
    Py_buffer b;
    Py_ssize_t n = get_table(rows, &b, "sort");
    if (n < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, b.len);
    if (out == NULL) {
        PyBuffer_Release(&b);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    advise_huge(PyBytes_AS_STRING(out), (size_t)b.len);
    rc = sort_rows((const uint8_t *)b.buf, n, (uint8_t *)PyBytes_AS_STRING(out));
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b);
    if (rc < 0) {
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    return out;
}

PyDoc_STRVAR(merge_doc,
"merge(a, b, /)\n--\n\n"
"Two tables sorted by blob ID as one; among equal IDs the rows of a come first.");

static PyObject *
merge(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (check_nargs("merge", nargs, 2) < 0) return NULL;
    Py_buffer a, b;
    if (get_table(args[0], &a, "merge") < 0) return NULL;
    if (get_table(args[1], &b, "merge") < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, a.len + b.len);
    if (out != NULL) {
        const uint8_t *p = a.buf, *q = b.buf, *pe = p + a.len, *qe = q + b.len;
        uint8_t *d = (uint8_t *)PyBytes_AS_STRING(out);
        Py_BEGIN_ALLOW_THREADS
        advise_huge(d, (size_t)(a.len + b.len));
        while (p < pe && q < qe) {
            if (memcmp(q, p, ID_SIZE) < 0) {
                memcpy(d, q, ROW_SIZE);
                q += ROW_SIZE;
            } else {
                memcpy(d, p, ROW_SIZE);
                p += ROW_SIZE;
            }
            d += ROW_SIZE;
        }
        memcpy(d, p, (size_t)(pe - p));
        d += pe - p;
        memcpy(d, q, (size_t)(qe - q));
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return out;
}

PyDoc_STRVAR(duplicates_doc,
"duplicates(rows, /)\n--\n\n"
"Positions of the rows whose blob ID equals the previous row's (rows sorted by ID).");

static PyObject *
duplicates(PyObject *module, PyObject *rows)
{
    (void)module;
    Py_buffer b;
    Py_ssize_t n = get_table(rows, &b, "duplicates");
    if (n < 0) return NULL;
    PyObject *out = PyList_New(0);
    const uint8_t *p = b.buf;
    for (Py_ssize_t i = 1; out != NULL && i < n; i++) {
        if (memcmp(p + (size_t)i * ROW_SIZE, p + (size_t)(i - 1) * ROW_SIZE, ID_SIZE) == 0) {
            PyObject *pos = PyLong_FromSsize_t(i);
            if (pos == NULL || PyList_Append(out, pos) < 0) Py_CLEAR(out);
            Py_XDECREF(pos);
        }
    }
    PyBuffer_Release(&b);
    return out;
}

PyDoc_STRVAR(find_doc,
"find(rows, blob_id, /)\n--\n\n"
"Position of the first row whose ID is blob_id (rows sorted by ID), or -1.");

static PyObject *
find(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (check_nargs("find", nargs, 2) < 0) return NULL;
    Py_buffer b, id;
    Py_ssize_t n = get_table(args[0], &b, "find");
    if (n < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &id, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&b);
        return NULL;
    }
    PyObject *out = NULL;
    if (id.len != ID_SIZE) {
        PyErr_Format(PyExc_ValueError, "a blob ID is %d bytes, not %zd", ID_SIZE, id.len);
    } else {
        const uint8_t *p = b.buf;
        Py_ssize_t lo = 0, hi = n; /* first row not below id */
        while (lo < hi) {
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (memcmp(p + (size_t)mid * ROW_SIZE, id.buf, ID_SIZE) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        int hit = lo < n && memcmp(p + (size_t)lo * ROW_SIZE, id.buf, ID_SIZE) == 0;
        out = PyLong_FromSsize_t(hit ? lo : -1);
    }
    PyBuffer_Release(&id);
    PyBuffer_Release(&b);
    return out;
}

static PyMethodDef methods[] = {
    {"from_records", (PyCFunction)(void (*)(void))from_records, METH_FASTCALL, from_records_doc},
    {"sort", (PyCFunction)sort, METH_O, sort_doc},
    {"merge", (PyCFunction)(void (*)(void))merge, METH_FASTCALL, merge_doc},
    {"duplicates", (PyCFunction)duplicates, METH_O, duplicates_doc},
    {"find", (PyCFunction)(void (*)(void))find, METH_FASTCALL, find_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "drvault.repository._rows",
    .m_doc = "Sorted rows of the in-memory blob index (C hot path of drvault.repository.rows).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__rows(void)
{
    return PyModuleDef_Init(&module_def);
}
