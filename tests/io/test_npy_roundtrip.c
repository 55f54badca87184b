/* .npy: every supported dtype survives write + read; files written here are byte-identical to
 * numpy.save's (checked against golden files made by NumPy); version 2.0 headers are read;
 * Fortran order, big endian, other dtypes, truncated data and header garbage are refused. */
#include "io/io.h"
#include "testutil.h"

#include <string.h>

static int write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* A hand-made .npy: version major, the dict text, then `data_bytes` bytes of value 0x3f. */
static const char *make_npy(const char *name, int major, const char *dict, size_t data_bytes)
{
    static unsigned char buf[4096];
    size_t pre = major == 1 ? 10 : 12;
    size_t dl = strlen(dict);
    size_t hl = (pre + dl + 1 + 63) / 64 * 64 - pre;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    if (major == 2) buf[10] = buf[11] = 0;
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hl - dl - 1);
    buf[pre + hl - 1] = '\n';
    memset(buf + pre + hl, 0x3f, data_bytes);
    const char *path = t_tmp(name);
    CHECK(write_bytes(path, buf, pre + hl + data_bytes), "cannot write %s", path);
    return path;
}

static void expect_refused(const char *name, int major, const char *dict, size_t data_bytes,
                           const char *why)
{
    const char *path = make_npy(name, major, dict, data_bytes);
    adi_npy a;
    memset(&a, 0xAB, sizeof a);
    adi_npy before = a;
    ad_status st = adi_npy_read(path, &a);
    CHECK(st == AD_E_FORMAT, "%s: expected a format error, got %s", why, ad_status_name(st));
    CHECK(strstr(ad_errmsg(), name) != NULL, "%s: message does not name the file: %s", why,
          ad_errmsg());
    CHECK(memcmp(&a, &before, sizeof a) == 0, "%s: output touched on failure", why);
    printf("refused (%s): %s\n", why, ad_errmsg());
}

static void roundtrip(adi_npy_dtype dt, size_t esz, int ndim, const size_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    unsigned char *src = malloc(n * esz + 1);
    for (size_t i = 0; i < n; i++) {
        if (dt == AD_NPY_F4) ((float *)src)[i] = (float)i * 0.37f - 5.0f;
        else if (dt == AD_NPY_F8) ((double *)src)[i] = (double)i * 1e-3 - 2.5e10;
        else if (dt == AD_NPY_U1) src[i] = (unsigned char)(i * 37);
        else src[i] = (unsigned char)(i % 3 == 0);
    }
    char name[64];
    snprintf(name, sizeof name, "rt_%d_%d.npy", (int)dt, ndim);
    const char *path = t_tmp(name);
    CHECK_OK(adi_npy_write(path, dt, src, ndim, shape));
    adi_npy a;
    ad_status st = adi_npy_read(path, &a);
    CHECK(st == AD_OK, "read back %s: %s", path, ad_errmsg());
    if (st == AD_OK) {
        CHECK(a.dtype == dt && a.ndim == ndim && a.count == n, "dtype %d ndim %d count %zu",
              (int)a.dtype, a.ndim, a.count);
        for (int i = 0; i < ndim && i < a.ndim; i++)
            CHECK(a.shape[i] == shape[i], "shape[%d] %zu vs %zu", i, a.shape[i], shape[i]);
        CHECK(a.count != n || memcmp(a.data, src, n * esz) == 0, "data differs (dtype %d)",
              (int)dt);
        double *d = adi_npy_to_f64(&a);
        float *f = adi_npy_to_f32(&a);
        CHECK(d && f, "conversion failed: %s", ad_errmsg());
        double md = 0;
        size_t where = 0;
        for (size_t i = 0; d && f && i < n; i++) {
            double ref = dt == AD_NPY_F4 ? ((float *)src)[i]
                       : dt == AD_NPY_F8 ? ((double *)src)[i] : (double)src[i];
            double e = fabs(d[i] - ref);
            if (e > md) { md = e; where = i; }
            CHECK((double)f[i] == (double)(float)ref, "f32 conversion at %zu", i);
        }
        printf("roundtrip dtype %d ndim %d n %zu: max |f64 - source| %g at %zu\n", (int)dt, ndim,
               n, md, where);
        CHECK(md == 0, "f64 conversion differs by %g at %zu", md, where);
        adi_free(d);
        adi_free(f);
        adi_npy_free(&a);
    }
    free(src);
}

/* Reading a NumPy-written golden file and writing it again gives the same bytes. */
static void golden_bytes(const char *rel)
{
    const char *gpath = t_data(rel);
    adi_npy a;
    ad_status st = adi_npy_read(gpath, &a);
    CHECK(st == AD_OK, "read %s: %s", gpath, ad_errmsg());
    if (st) return;
    const char *out = t_tmp("golden_copy.npy");
    CHECK_OK(adi_npy_write(out, a.dtype, a.data, a.ndim, a.shape));
    size_t n1 = 0, n2 = 0;
    char *b1 = adi_io_read_file(gpath, &n1), *b2 = adi_io_read_file(out, &n2);
    CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0,
          "%s: rewritten file differs from NumPy's (%zu vs %zu bytes)", rel, n1, n2);
    printf("golden %s: dtype %d shape (%zu,%zu) rewritten byte-identical: %s\n", rel, (int)a.dtype,
           a.shape[0], a.ndim > 1 ? a.shape[1] : 0,
           b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0 ? "yes" : "no");
    free(b1);
    free(b2);
    adi_npy_free(&a);
}

int main(void)
{
    size_t s1[1] = {17}, s2[2] = {5, 7}, s3[3] = {2, 3, 4}, s0[1] = {0};
    roundtrip(AD_NPY_F4, 4, 2, s2);
    roundtrip(AD_NPY_F8, 8, 1, s1);
    roundtrip(AD_NPY_U1, 1, 3, s3);
    roundtrip(AD_NPY_B1, 1, 2, s2);
    roundtrip(AD_NPY_F4, 4, 0, NULL); /* a scalar: shape () */
    roundtrip(AD_NPY_F8, 8, 1, s0);   /* empty */

    golden_bytes("pipeline/seed0/res448_rot0_mask0_test_0_map.npy");  /* <f4 */
    golden_bytes("pipeline/seed0/res448_rot0_mask0_test_0_grid.npy"); /* <f8 */
    golden_bytes("pipeline/seed0/res448_rot0_mask1_test_0_mask.npy"); /* |b1 */

    /* version 2.0 and alternative spellings NumPy accepts */
    {
        const char *p = make_npy("v2.npy", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
        adi_npy a;
        ad_status st = adi_npy_read(p, &a);
        CHECK(st == AD_OK, "v2.0: %s", ad_errmsg());
        if (!st) {
            CHECK(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.count == 6, "v2 shape");
            float v;
            memcpy(&v, "\x3f\x3f\x3f\x3f", 4);
            CHECK(((float *)a.data)[5] == v, "v2 data");
            adi_npy_free(&a);
        }
        p = make_npy("keys.npy", 1, "{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"|u1\"}", 3);
        st = adi_npy_read(p, &a);
        CHECK(st == AD_OK, "reordered keys: %s", ad_errmsg());
        if (!st) {
            CHECK(a.dtype == AD_NPY_U1 && a.count == 3, "reordered keys content");
            adi_npy_free(&a);
        }
        /* trailing bytes after the data are ignored, as numpy.load does */
        p = make_npy("trail.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", 5);
        st = adi_npy_read(p, &a);
        CHECK(st == AD_OK && a.count == 2, "trailing bytes: %s", ad_errmsg());
        if (!st) adi_npy_free(&a);
    }

    expect_refused("fortran.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, "fortran order");
    expect_refused("bigend.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24, "big endian");
    expect_refused("int32.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", 24, "other dtype");
    expect_refused("f2.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", 24, "float16");
    expect_refused("struct.npy", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "structured dtype");
    expect_refused("trunc.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 47, "truncated data");
    expect_refused("huge.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 100000000000), }", 8, "overflowing shape");
    expect_refused("bigshape.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000,), }", 8, "shape beyond the file");
    expect_refused("garbage.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } xyz", 24, "garbage after dict");
    expect_refused("nodict.npy", 1, "hello world", 24, "not a dict");
    expect_refused("nokey.npy", 1, "{'descr': '<f4', 'shape': (2, 3), }", 24, "missing key");
    expect_refused("badshape.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 24, "negative shape");
    expect_refused("ndim9.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4, "9 dimensions");
    expect_refused("unknownkey.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4, "unknown key");
    {
        /* bad magic, unknown version, truncated header */
        const char *p = t_tmp("magic.npy");
        write_bytes(p, "\x93NUMPX\x01\x00\x10\x00{}", 12);
        adi_npy a;
        CHECK(adi_npy_read(p, &a) == AD_E_FORMAT, "bad magic accepted");
        p = t_tmp("v9.npy");
        write_bytes(p, "\x93NUMPY\x09\x00\x10\x00{}", 12);
        CHECK(adi_npy_read(p, &a) == AD_E_FORMAT, "version 9 accepted");
        p = t_tmp("shorthdr.npy");
        write_bytes(p, "\x93NUMPY\x01\x00\x40\x00{'descr'", 17);
        CHECK(adi_npy_read(p, &a) == AD_E_FORMAT, "truncated header accepted");
        CHECK(adi_npy_read(t_tmp("does_not_exist.npy"), &a) == AD_E_IO, "missing file");
        printf("missing file: %s\n", ad_errmsg());
    }
    /* every prefix of a valid file is refused, never read out of bounds */
    {
        const char *gp = t_data("pipeline/seed0/res224_rot0_mask0_test_0_grid.npy");
        size_t n = 0;
        char *b = adi_io_read_file(gp, &n);
        CHECK(b != NULL, "read %s", gp);
        int accepted = 0;
        const char *p = t_tmp("prefix.npy");
        for (size_t cut = 0; b && cut < n; cut += (cut < 200 ? 1 : 37)) {
            write_bytes(p, b, cut);
            adi_npy a;
            if (adi_npy_read(p, &a) == AD_OK) {
                accepted++;
                adi_npy_free(&a);
            }
        }
        CHECK(accepted == 0, "%d truncated prefixes were accepted", accepted);
        free(b);
    }
    /* write argument checks */
    {
        float x = 1;
        size_t sh[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
        CHECK(adi_npy_write(t_tmp("bad.npy"), AD_NPY_F4, &x, 9, sh) == AD_E_ARG, "9 dims written");
        CHECK(adi_npy_write(t_tmp("bad.npy"), AD_NPY_F4, NULL, 1, sh) == AD_E_ARG, "NULL data");
        CHECK(adi_npy_write(t_tmp("no_such_dir/x.npy"), AD_NPY_F4, &x, 1, sh) == AD_E_IO,
              "write into a missing folder");
    }
    return t_done("test_npy_roundtrip");
}
