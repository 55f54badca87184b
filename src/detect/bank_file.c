/* Bank files: the memory bank with every setting needed to use it again (docs/design.md,
 * "What we add"; docs/banks.md). Layout, version 3 (version 2 is the same without the part
 * marked v3, version 1 without the parts marked v2 and v3), all integers and floats
 * little-endian:
 *
 *   "ADBANK"  u16 version
 *   u32 dim  i32 resolution  u8 rotate  u8 mask_refs  u8 mask_test  u8 0  i32 knn_k
 *   u64 fingerprint  char model_name[32] (NUL padded)
 *   u8 has_threshold  u8 rule  u16 0  f64 threshold  f64 quantile
 *   u64 rows  u64 side_rows  u32 n_images  u32 0
 *   n_images x { i32 id  i32 grid_h  i32 grid_w  i32 n_inserts  u8 has_keep
 *                [grid_h*grid_w bytes keep_test if has_keep] }
 *   i32 row_image[rows]  u8 row_angle[rows]  i32 row_cell[rows]  f32 feat[rows*dim]
 *   i32 side_image[side_rows]  i32 side_cell[side_rows]  f32 side_feat[side_rows*dim]
 *   v2: f64 coreset (0 none, (0,1] fraction, > 1 rows)  f64 coreset_frac  u64 coreset_offered
 *   v2: n_images x { i64 added (Unix s)  u32 name_len  name bytes (no NUL) }
 *   v2: u32 n_history  u32 0
 *       n_history x { u8 rule  u8 source  u16 0  i32 n_refs  f64 quantile  f64 threshold
 *                     i64 time  u32 n_scores  u32 0  f64 scores[n_scores] }
 *   v3: u32 index (0 none, 1 IVF)  u32 lists  u32 probes  u32 iterations
 *   v3, index 1: f32 centroids[lists*dim]  i32 row_list[rows]
 *   u32 crc32 (zlib) of every byte before it
 *
 * Loading checks the magic, the version, every size against the file size before allocating,
 * the checksum, and the cross references, so a damaged file is refused with one line. */
#include "detect/detect.h"
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define BANK_MAGIC "ADBANK"
#define BANK_VERSION 3
#define BANK_EXT_FIXED 32    /* v2: coreset fields + history count */
#define BANK_INDEX_FIXED 16  /* v3: index kind, lists, probes, iterations */
#define BANK_MAX_SCORES (1u << 24)
#define BANK_FIXED_BYTES 108 /* magic .. the u32 after n_images */
#define BANK_IMAGE_BYTES 17  /* one image record without its keep bytes */
#define BANK_MAX_DIM 65536
#define BANK_MAX_GRID 65535

static int host_is_le(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

typedef struct {
    FILE *fp;
    const char *path;
    uLong crc;
    int failed;
    int err;    /* errno of the first failed write */
} wstream;

static void w_bytes(wstream *w, const void *p, size_t n)
{
    if (w->failed || n == 0) return;
    const unsigned char *c = p;
    size_t done = 0;
    while (done < n) {
        size_t part = n - done > (1u << 30) ? (1u << 30) : n - done;
        w->crc = crc32(w->crc, c + done, (uInt)part);
        done += part;
    }
    if (fwrite(p, 1, n, w->fp) != n) {
        w->failed = 1;
        w->err = errno ? errno : EIO;
    }
}

static void put_le(uint8_t *dst, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) dst[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *src, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)src[i] << (8 * i);
    return v;
}

static uint64_t f64_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, 8);
    return u;
}

/* Arrays of 4-byte elements in file byte order (swapped through a small buffer on a big-endian
 * host). */
static void w_array4(wstream *w, const void *p, size_t count)
{
    if (host_is_le()) {
        w_bytes(w, p, count * 4);
        return;
    }
    uint8_t buf[4096];
    const uint8_t *s = p;
    for (size_t i = 0; i < count;) {
        size_t m = count - i < sizeof buf / 4 ? count - i : sizeof buf / 4;
        for (size_t j = 0; j < m; j++)
            for (int b = 0; b < 4; b++) buf[4 * j + b] = s[4 * (i + j) + 3 - b];
        w_bytes(w, buf, m * 4);
        i += m;
    }
}

static void swap4_inplace(void *p, size_t count)
{
    if (host_is_le()) return;
    uint8_t *s = p;
    for (size_t i = 0; i < count; i++) {
        uint8_t t0 = s[4 * i], t1 = s[4 * i + 1];
        s[4 * i] = s[4 * i + 3];
        s[4 * i + 1] = s[4 * i + 2];
        s[4 * i + 2] = t1;
        s[4 * i + 3] = t0;
    }
}

ad_status ad_bank_save(const ad_bank *b, const char *path)
{
    if (!b || !path) return adi_fail(AD_E_ARG, "ad_bank_save: NULL %s", b ? "path" : "bank");
    if (b->dim <= 0) return adi_fail(AD_E_ARG, "%s: the bank has no features yet", path);
    /* Written to a unique file beside the target, synced and renamed over it (adi_atomic), so
     * that a failed save (or a crash) never leaves half a bank and concurrent savers never
     * share a file. */
    adi_atomic at;
    ad_status ast = adi_atomic_open(&at, path);
    if (ast != AD_OK) return ast;
    FILE *fp = at.f;
    wstream w = {fp, path, crc32(0L, Z_NULL, 0), 0, 0};

    uint8_t h[BANK_FIXED_BYTES];
    memset(h, 0, sizeof h);
    memcpy(h, BANK_MAGIC, 6);
    put_le(h + 6, BANK_VERSION, 2);
    put_le(h + 8, (uint32_t)b->dim, 4);
    put_le(h + 12, (uint32_t)b->p.resolution, 4);
    h[16] = (uint8_t)b->p.rotate;
    h[17] = (uint8_t)b->p.mask_refs;
    h[18] = (uint8_t)b->p.mask_test;
    put_le(h + 20, (uint32_t)b->p.knn_k, 4);
    put_le(h + 24, b->fingerprint, 8);
    memcpy(h + 32, b->model_name, 32);
    h[63] = 0;
    h[64] = (uint8_t)b->has_threshold;
    h[65] = (uint8_t)b->rule;
    put_le(h + 68, f64_bits(b->has_threshold ? b->threshold : 0), 8);
    put_le(h + 76, f64_bits(b->has_threshold ? b->quantile : 0), 8);
    put_le(h + 84, b->rows, 8);
    put_le(h + 92, b->side_rows, 8);
    put_le(h + 100, (uint32_t)b->n_images, 4);
    w_bytes(&w, h, sizeof h);

    for (int i = 0; i < b->n_images; i++) {
        const dt_image *im = &b->images[i];
        uint8_t r[BANK_IMAGE_BYTES];
        put_le(r, (uint32_t)im->id, 4);
        put_le(r + 4, (uint32_t)im->grid_h, 4);
        put_le(r + 8, (uint32_t)im->grid_w, 4);
        put_le(r + 12, (uint32_t)im->n_inserts, 4);
        r[16] = im->keep_test != NULL;
        w_bytes(&w, r, sizeof r);
        if (im->keep_test) w_bytes(&w, im->keep_test, (size_t)im->grid_h * (size_t)im->grid_w);
    }
    size_t d = (size_t)b->dim;
    w_array4(&w, b->row_image, b->rows);
    w_bytes(&w, b->row_angle, b->rows);
    w_array4(&w, b->row_cell, b->rows);
    w_array4(&w, b->feat, b->rows * d);
    w_array4(&w, b->side_image, b->side_rows);
    w_array4(&w, b->side_cell, b->side_rows);
    w_array4(&w, b->side_feat, b->side_rows * d);
    /* v2: coreset setting, reference names and times, threshold history */
    uint8_t e[BANK_EXT_FIXED];
    memset(e, 0, sizeof e);
    put_le(e, f64_bits(b->coreset), 8);
    put_le(e + 8, f64_bits(b->coreset_frac), 8);
    put_le(e + 16, b->coreset_offered, 8);
    w_bytes(&w, e, 24);
    for (int i = 0; i < b->n_images; i++) {
        const dt_image *im = &b->images[i];
        uint8_t r[12];
        size_t len = im->name ? strlen(im->name) : 0;
        put_le(r, (uint64_t)im->added, 8);
        put_le(r + 8, (uint32_t)len, 4);
        w_bytes(&w, r, sizeof r);
        w_bytes(&w, im->name, len);
    }
    put_le(e, (uint32_t)b->n_hist, 4);
    put_le(e + 4, 0, 4);
    w_bytes(&w, e, 8);
    for (int i = 0; i < b->n_hist; i++) {
        const dt_thresh_rec *t = &b->hist[i];
        uint8_t r[40];
        memset(r, 0, sizeof r);
        r[0] = (uint8_t)t->rule;
        r[1] = (uint8_t)t->source;
        put_le(r + 4, (uint32_t)t->n_refs, 4);
        put_le(r + 8, f64_bits(t->quantile), 8);
        put_le(r + 16, f64_bits(t->threshold), 8);
        put_le(r + 24, (uint64_t)t->time, 8);
        put_le(r + 32, (uint32_t)t->n_scores, 4);
        w_bytes(&w, r, sizeof r);
        for (int k = 0; k < t->n_scores; k++) {
            uint8_t v[8];
            put_le(v, f64_bits(t->scores[k]), 8);
            w_bytes(&w, v, 8);
        }
    }

    /* v3: the index */
    {
        const dt_ivf *ix = b->ivf;
        uint8_t r[BANK_INDEX_FIXED];
        put_le(r, ix ? 1 : 0, 4);
        put_le(r + 4, ix ? (uint32_t)ix->lists : 0, 4);
        put_le(r + 8, ix ? (uint32_t)ix->probes : 0, 4);
        put_le(r + 12, ix ? (uint32_t)ix->iterations : 0, 4);
        w_bytes(&w, r, sizeof r);
        if (ix) {
            w_array4(&w, ix->centroids, (size_t)ix->lists * d);
            w_array4(&w, b->row_list, b->rows);
        }
    }

    uint8_t crc[4];
    put_le(crc, (uint32_t)w.crc, 4);
    w_bytes(&w, crc, 4);
    if (w.failed) {
        int err = w.err;
        adi_atomic_abort(&at);
        return adi_fail(AD_E_IO, "%s: write failed: %s", path, strerror(err));
    }
    return adi_atomic_commit(&at);
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
    FILE *fp;
    uLong crc;
    uint64_t left; /* bytes of the file not read yet */
} rstream;

static int r_bytes(rstream *r, void *p, size_t n)
{
    if (n == 0) return 1;
    if (n > r->left || fread(p, 1, n, r->fp) != n) return 0;
    r->left -= n;
    const unsigned char *c = p;
    size_t done = 0;
    while (done < n) {
        size_t part = n - done > (1u << 30) ? (1u << 30) : n - done;
        r->crc = crc32(r->crc, c + done, (uInt)part);
        done += part;
    }
    return 1;
}

/* a*b + c*d ... with overflow check: returns 0 on overflow. */
static int mul_add(uint64_t *acc, uint64_t a, uint64_t b)
{
    if (a != 0 && b > UINT64_MAX / a) return 0;
    if (*acc > UINT64_MAX - a * b) return 0;
    *acc += a * b;
    return 1;
}

/* Image records sorted by id: duplicate detection and row lookups in O(log n_images), so that a
 * bank of many references (or a hostile file) does not cost n_images^2 or rows x n_images. */
typedef struct {
    int32_t id;
    int idx;
} id_index;

static int cmp_id_index(const void *a, const void *b)
{
    int32_t x = ((const id_index *)a)->id, y = ((const id_index *)b)->id;
    return (x > y) - (x < y);
}

/* Index of the image record with that id, or -1; *last caches the previous hit (rows of one
 * image are contiguous in every bank this library writes). */
static int find_sorted(const id_index *ix, int n, int32_t id, int *last)
{
    if (*last >= 0 && ix[*last].id == id) return ix[*last].idx;
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (ix[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    if (lo < n && ix[lo].id == id) {
        *last = lo;
        return ix[lo].idx;
    }
    return -1;
}

/* Version 2 additions (after the rows, before the checksum). NULL, or why the file is refused
 * (an allocation failure reads as corrupt: sizes are bounded by the file first). */
static const char *read_ext(rstream *r, ad_bank *b)
{
    uint8_t e[40];
    if (!r_bytes(r, e, 24)) return "truncated bank (coreset fields)";
    uint64_t cb = get_le(e, 8), fb = get_le(e + 8, 8);
    memcpy(&b->coreset, &cb, 8);
    memcpy(&b->coreset_frac, &fb, 8);
    b->coreset_offered = get_le(e + 16, 8);
    if (!isfinite(b->coreset) || b->coreset < 0 || (b->coreset > 1 && b->coreset != floor(b->coreset)) ||
        !(b->coreset_frac >= 0 && b->coreset_frac <= 1) || (b->coreset > 0) != (b->coreset_frac > 0))
        return "corrupt bank (coreset fields out of range)";
    for (int i = 0; i < b->n_images; i++) {
        if (!r_bytes(r, e, 12)) return "truncated bank (reference names)";
        uint32_t len = (uint32_t)get_le(e + 8, 4);
        b->images[i].added = (int64_t)get_le(e, 8);
        if (len > DT_MAX_NAME || len + 4 > r->left) return "corrupt bank (reference name length)";
        if (len) {
            char *nm = adi_malloc(len + 1);
            if (!nm) return "out of memory";
            if (!r_bytes(r, nm, len)) {
                adi_free(nm);
                return "truncated bank (reference names)";
            }
            nm[len] = 0;
            b->images[i].name = nm;
            if (strlen(nm) != len) return "corrupt bank (NUL in a reference name)";
        }
    }
    if (!r_bytes(r, e, 8)) return "truncated bank (threshold history)";
    uint32_t nh = (uint32_t)get_le(e, 4);
    if (nh > DT_MAX_HISTORY || get_le(e + 4, 4) != 0 || (uint64_t)nh * 40 + 4 > r->left)
        return "corrupt bank (threshold history size)";
    b->hist = adi_calloc(nh ? nh : 1, sizeof *b->hist);
    if (!b->hist) return "out of memory";
    b->hist_cap = (int)(nh ? nh : 1);
    for (uint32_t i = 0; i < nh; i++) {
        if (!r_bytes(r, e, 40)) return "truncated bank (threshold history)";
        dt_thresh_rec *t = &b->hist[b->n_hist];
        uint64_t qb = get_le(e + 8, 8), tb = get_le(e + 16, 8);
        t->rule = (ad_thresh_rule)e[0];
        t->source = (ad_thresh_source)e[1];
        t->n_refs = (int32_t)get_le(e + 4, 4);
        memcpy(&t->quantile, &qb, 8);
        memcpy(&t->threshold, &tb, 8);
        t->time = (int64_t)get_le(e + 24, 8);
        uint32_t ns = (uint32_t)get_le(e + 32, 4);
        if (e[0] > 1 || e[1] > 1 || e[2] || e[3] || t->n_refs < 0 || !(t->quantile >= 0 && t->quantile <= 1) ||
            !isfinite(t->threshold) || ns > BANK_MAX_SCORES || get_le(e + 36, 4) != 0 ||
            (uint64_t)ns * 8 + 4 > r->left)
            return "corrupt bank (threshold record)";
        t->scores = adi_malloc((size_t)(ns ? ns : 1) * sizeof *t->scores);
        if (!t->scores) return "out of memory";
        b->n_hist++;
        t->n_scores = (int32_t)ns;
        for (uint32_t k = 0; k < ns; k++) {
            uint8_t v[8];
            if (!r_bytes(r, v, 8)) return "truncated bank (threshold scores)";
            uint64_t vb = get_le(v, 8);
            memcpy(&t->scores[k], &vb, 8);
            if (!isfinite(t->scores[k])) return "corrupt bank (non-finite threshold score)";
        }
    }
    return NULL;
}

/* Version 3 addition: the index (after the history, before the checksum). Its list-ordered copy
 * is built once the rows are checked (dt_ivf_sync). NULL, or why the file is refused. */
static const char *read_index(rstream *r, ad_bank *b)
{
    uint8_t e[BANK_INDEX_FIXED];
    if (!r_bytes(r, e, sizeof e)) return "truncated bank (index fields)";
    uint32_t kind = (uint32_t)get_le(e, 4), lists = (uint32_t)get_le(e + 4, 4);
    uint32_t probes = (uint32_t)get_le(e + 8, 4), iters = (uint32_t)get_le(e + 12, 4);
    if (kind == 0) {
        if (lists || probes || iters) return "corrupt bank (index fields out of range)";
        return NULL;
    }
    if (kind != 1 || lists < 1 || lists > DT_IVF_MAX_LISTS || (uint64_t)lists > b->rows ||
        probes < 1 || probes > lists || iters < 1 || iters > 1000)
        return "corrupt bank (index fields out of range)";
    const size_t d = (size_t)b->dim;
    uint64_t need = 4;
    if (!mul_add(&need, lists, 4 * (uint64_t)d) || !mul_add(&need, b->rows, 4) || need > r->left)
        return "truncated or corrupt bank (index sizes exceed the file)";
    dt_ivf *ix = adi_calloc(1, sizeof *ix);
    if (!ix) return "out of memory";
    b->ivf = ix;
    ix->lists = (int)lists;
    ix->probes = (int)probes;
    ix->iterations = (int)iters;
    ix->centroids = adi_alloc((size_t)lists * d, sizeof *ix->centroids);
    if (!ix->centroids) return "out of memory";
    if (!r_bytes(r, ix->centroids, (size_t)lists * d * 4) || !r_bytes(r, b->row_list, b->rows * 4))
        return "truncated bank (index)";
    swap4_inplace(ix->centroids, (size_t)lists * d);
    swap4_inplace(b->row_list, b->rows);
    for (size_t i = 0; i < (size_t)lists * d; i++)
        if (!isfinite(ix->centroids[i])) return "corrupt bank (non-finite index centroid)";
    for (size_t j = 0; j < b->rows; j++)
        if (b->row_list[j] < 0 || (uint32_t)b->row_list[j] >= lists)
            return "corrupt bank (index list out of range)";
    return NULL;
}

static ad_bank *load_fail(ad_bank *b, FILE *fp, ad_status st, const char *path, const char *why)
{
    ad_bank_free(b);
    if (fp) fclose(fp);
    return adi_fail_null(st, "%s: %s", path, why);
}

/* Reads a bank from the open stream fp of fsize bytes, and closes fp. */
static ad_bank *bank_load_stream(FILE *fp, uint64_t fsize, const char *path)
{
    rstream r = {fp, crc32(0L, Z_NULL, 0), fsize};

    uint8_t h[BANK_FIXED_BYTES];
    if (r.left < 8 || !r_bytes(&r, h, 8) || memcmp(h, BANK_MAGIC, 6) != 0)
        return load_fail(NULL, fp, AD_E_FORMAT, path, "not a bank file (no ADBANK magic)");
    unsigned version = (unsigned)get_le(h + 6, 2);
    if (version > BANK_VERSION) {
        fclose(fp);
        return adi_fail_null(AD_E_FORMAT,
                            "%s: bank format version %u is newer than this build reads (%d)",
                            path, version, BANK_VERSION);
    }
    if (version == 0) return load_fail(NULL, fp, AD_E_FORMAT, path, "corrupt bank (version 0)");
    if (!r_bytes(&r, h + 8, BANK_FIXED_BYTES - 8))
        return load_fail(NULL, fp, AD_E_FORMAT, path, "truncated bank (header)");

    ad_bank *b = adi_calloc(1, sizeof *b);
    if (!b) return load_fail(NULL, fp, AD_E_NOMEM, path, "out of memory");
    uint32_t dim = (uint32_t)get_le(h + 8, 4);
    b->p.resolution = (int32_t)get_le(h + 12, 4);
    b->p.rotate = h[16];
    b->p.mask_refs = h[17];
    b->p.mask_test = h[18];
    b->p.knn_k = (int32_t)get_le(h + 20, 4);
    b->fingerprint = get_le(h + 24, 8);
    memcpy(b->model_name, h + 32, 32);
    b->has_threshold = h[64];
    b->rule = (ad_thresh_rule)h[65];
    uint64_t tb = get_le(h + 68, 8), qb = get_le(h + 76, 8);
    memcpy(&b->threshold, &tb, 8);
    memcpy(&b->quantile, &qb, 8);
    uint64_t rows = get_le(h + 84, 8), side = get_le(h + 92, 8);
    uint32_t n_images = (uint32_t)get_le(h + 100, 4);
    if (dim == 0 || dim > BANK_MAX_DIM || b->p.resolution < 0 || b->p.resolution > 16384 ||
        b->p.knn_k < 1 || b->p.knn_k > 4096 || h[16] > 1 || h[17] > 1 || h[18] > 1 || h[19] ||
        h[63] || h[64] > 1 || h[65] > 1 || h[66] || h[67] || get_le(h + 104, 4) != 0 ||
        (b->has_threshold && (!isfinite(b->threshold) || !(b->quantile >= 0 && b->quantile <= 1))))
        return load_fail(b, fp, AD_E_FORMAT, path, "corrupt bank (header fields out of range)");
    b->dim = (int)dim;

    /* Everything that follows the image records, checked against the file before allocating. */
    uint64_t tail = 4 + (version >= 2 ? BANK_EXT_FIXED : 0) + (version >= 3 ? BANK_INDEX_FIXED : 0);
    if (!mul_add(&tail, rows, 9 + 4 * (uint64_t)dim) || !mul_add(&tail, side, 8 + 4 * (uint64_t)dim) ||
        (version >= 2 && !mul_add(&tail, n_images, 12)) ||
        tail > r.left || (uint64_t)n_images * BANK_IMAGE_BYTES > r.left - tail || n_images > INT32_MAX)
        return load_fail(b, fp, AD_E_FORMAT, path, "truncated or corrupt bank (sizes exceed the file)");

    b->images = adi_calloc(n_images ? n_images : 1, sizeof *b->images);
    if (!b->images) return load_fail(b, fp, AD_E_NOMEM, path, "out of memory");
    b->images_cap = (int)(n_images ? n_images : 1);
    for (uint32_t i = 0; i < n_images; i++) {
        uint8_t rec[BANK_IMAGE_BYTES];
        if (!r_bytes(&r, rec, sizeof rec))
            return load_fail(b, fp, AD_E_FORMAT, path, "truncated bank (image records)");
        dt_image *im = &b->images[b->n_images++];
        im->id = (int32_t)get_le(rec, 4);
        im->grid_h = (int32_t)get_le(rec + 4, 4);
        im->grid_w = (int32_t)get_le(rec + 8, 4);
        im->n_inserts = (int32_t)get_le(rec + 12, 4);
        if (im->id < 0 || im->grid_h <= 0 || im->grid_w <= 0 || im->grid_h > BANK_MAX_GRID ||
            im->grid_w > BANK_MAX_GRID || im->n_inserts < 1 || im->n_inserts > DT_MAX_INSERTS ||
            rec[16] > 1)
            return load_fail(b, fp, AD_E_FORMAT, path, "corrupt bank (image record)");
        if (rec[16]) {
            uint64_t cells = (uint64_t)im->grid_h * (uint64_t)im->grid_w;
            /* what the file still holds beyond the tail and the records still to come (r.left
             * may already be below that when earlier masks ate into it) */
            uint64_t later = (uint64_t)(n_images - 1 - i) * BANK_IMAGE_BYTES;
            if (r.left < tail || r.left - tail < later || cells > r.left - tail - later)
                return load_fail(b, fp, AD_E_FORMAT, path, "truncated or corrupt bank (mask sizes)");
            im->keep_test = adi_malloc((size_t)cells);
            if (!im->keep_test) return load_fail(b, fp, AD_E_NOMEM, path, "out of memory");
            if (!r_bytes(&r, im->keep_test, (size_t)cells))
                return load_fail(b, fp, AD_E_FORMAT, path, "truncated bank (masks)");
        }
    }
    /* version 1 ends exactly there; version 2 has names and history of variable size */
    if (r.left < tail || (version < 2 && r.left != tail))
        return load_fail(b, fp, AD_E_FORMAT, path,
                         r.left < tail ? "truncated bank" : "corrupt bank (unexpected trailing bytes)");

    size_t d = dim;
    b->rows = b->cap = (size_t)rows;
    b->side_rows = b->side_cap = (size_t)side;
    b->feat = adi_malloc(rows * d * 4 + 1);
    b->norm2 = adi_malloc(rows * 4 + 1);
    b->row_image = adi_malloc(rows * 4 + 1);
    b->row_angle = adi_malloc(rows + 1);
    b->row_cell = adi_malloc(rows * 4 + 1);
    b->row_list = adi_malloc(rows * 4 + 1);
    b->side_feat = adi_malloc(side * d * 4 + 1);
    b->side_image = adi_malloc(side * 4 + 1);
    b->side_cell = adi_malloc(side * 4 + 1);
    if (!b->feat || !b->norm2 || !b->row_image || !b->row_angle || !b->row_cell || !b->row_list || !b->side_feat ||
        !b->side_image || !b->side_cell)
        return load_fail(b, fp, AD_E_NOMEM, path, "out of memory for the bank rows");
    if (!r_bytes(&r, b->row_image, rows * 4) || !r_bytes(&r, b->row_angle, rows) ||
        !r_bytes(&r, b->row_cell, rows * 4) || !r_bytes(&r, b->feat, rows * d * 4) ||
        !r_bytes(&r, b->side_image, side * 4) || !r_bytes(&r, b->side_cell, side * 4) ||
        !r_bytes(&r, b->side_feat, side * d * 4))
        return load_fail(b, fp, AD_E_IO, path, "read error");
    if (version >= 2) {
        const char *why = read_ext(&r, b);
        if (why)
            return load_fail(b, fp, strcmp(why, "out of memory") ? AD_E_FORMAT : AD_E_NOMEM, path,
                             why);
    }
    if (version >= 3) {
        const char *why = read_index(&r, b);
        if (why)
            return load_fail(b, fp, strcmp(why, "out of memory") ? AD_E_FORMAT : AD_E_NOMEM, path,
                             why);
    } else {
        for (size_t j = 0; j < b->rows; j++) b->row_list[j] = -1;
    }
    if (r.left != 4)
        return load_fail(b, fp, AD_E_FORMAT, path, "corrupt bank (unexpected trailing bytes)");
    uLong crc = r.crc;
    uint8_t cb[4];
    if (!r_bytes(&r, cb, 4)) return load_fail(b, fp, AD_E_IO, path, "read error");
    if (ADI_CHECKSUMS && (uint32_t)get_le(cb, 4) != (uint32_t)crc)
        return load_fail(b, fp, AD_E_FORMAT, path, "corrupt bank (checksum mismatch)");
    fclose(fp);
    fp = NULL;
    swap4_inplace(b->row_image, rows);
    swap4_inplace(b->row_cell, rows);
    swap4_inplace(b->feat, rows * d);
    swap4_inplace(b->side_image, side);
    swap4_inplace(b->side_cell, side);
    swap4_inplace(b->side_feat, side * d);

    /* Cross references: a checksummed file can still come from a buggy writer. */
    id_index *ix = adi_malloc((size_t)(b->n_images ? b->n_images : 1) * sizeof *ix);
    if (!ix) return load_fail(b, NULL, AD_E_NOMEM, path, "out of memory");
    for (int i = 0; i < b->n_images; i++) ix[i] = (id_index){b->images[i].id, i};
    qsort(ix, (size_t)b->n_images, sizeof *ix, cmp_id_index);
    const char *bad = NULL;
    for (int i = 1; i < b->n_images && !bad; i++)
        if (ix[i].id == ix[i - 1].id) bad = "corrupt bank (duplicate image id)";
    int last = -1;
    for (size_t j = 0; j < b->rows && !bad; j++) {
        int im = find_sorted(ix, b->n_images, b->row_image[j], &last);
        if (im < 0 || b->row_angle[j] >= b->images[im].n_inserts || b->row_cell[j] < 0 ||
            (b->row_angle[j] == 0 &&
             (size_t)b->row_cell[j] >= (size_t)b->images[im].grid_h * b->images[im].grid_w))
            bad = "corrupt bank (row references)";
        b->norm2[j] = dt_norm2_row(b->feat + j * d, (int)d);
        /* rows are unit vectors (or 0): a non-finite value would silently never match */
        if (!bad && !isfinite(b->norm2[j])) bad = "corrupt bank (non-finite feature values)";
    }
    last = -1;
    for (size_t j = 0; j < b->side_rows && !bad; j++) {
        int im = find_sorted(ix, b->n_images, b->side_image[j], &last);
        if (im < 0 || b->side_cell[j] < 0 ||
            (size_t)b->side_cell[j] >= (size_t)b->images[im].grid_h * b->images[im].grid_w)
            bad = "corrupt bank (side row references)";
        else if (!isfinite(dt_norm2_row(b->side_feat + j * d, (int)d)))
            bad = "corrupt bank (non-finite feature values)";
    }
    adi_free(ix);
    if (bad) return load_fail(b, NULL, AD_E_FORMAT, path, bad);
    /* the index's rows grouped by list (every row has its list from the file: no BLAS here) */
    if (b->ivf && dt_ivf_sync(b, 1) != AD_OK)
        return load_fail(b, NULL, AD_E_NOMEM, path, "out of memory for the index");
    return b;
}

ad_bank *ad_bank_load(const char *path)
{
    if (!path) return adi_fail_null(AD_E_ARG, "ad_bank_load: NULL path");
    FILE *fp = fopen(path, "rb");
    if (!fp) return adi_fail_null(AD_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode))
        return load_fail(NULL, fp, AD_E_IO, path, "not a regular file");
    return bank_load_stream(fp, (uint64_t)sb.st_size, path);
}

ad_bank *dt_bank_load_mem(const void *buf, size_t len, const char *name)
{
    if (!buf && len) return adi_fail_null(AD_E_ARG, "dt_bank_load_mem: NULL buffer");
    if (!name) name = "(buffer)";
    if (len == 0) return adi_fail_null(AD_E_FORMAT, "%s: not a bank file (no ADBANK magic)", name);
    FILE *fp = fmemopen((void *)buf, len, "rb");
    if (!fp) return adi_fail_null(AD_E_NOMEM, "%s: cannot open the buffer: %s", name, strerror(errno));
    return bank_load_stream(fp, (uint64_t)len, name);
}

ad_status ad_bank_check_model(const ad_bank *b, const ad_model *m)
{
    if (!b || !m) return adi_fail(AD_E_ARG, "ad_bank_check_model: NULL %s", b ? "model" : "bank");
    ad_model_info info = ad_model_get_info(m);
    if (b->fingerprint == 0)
        return adi_fail(AD_E_MISMATCH, "bank records no weights' identity (made without a model)");
    if (b->fingerprint != info.fingerprint || b->dim != info.dim)
        return adi_fail(AD_E_MISMATCH,
                       "bank was made with other weights (%s, fingerprint %016llx, dim %d); "
                       "these are %s (fingerprint %016llx, dim %d)",
                       b->model_name[0] ? b->model_name : "?", (unsigned long long)b->fingerprint,
                       b->dim, info.name ? info.name : "?", (unsigned long long)info.fingerprint,
                       info.dim);
    return AD_OK;
}
