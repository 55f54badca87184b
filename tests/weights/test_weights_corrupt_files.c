/* Fault injection: missing, empty, truncated, mis-typed and corrupted checkpoints (both
 * formats) must each fail with a status and a one-line message that starts with the file name,
 * leave the output untouched, and never crash or read out of bounds (CI runs this under
 * AddressSanitizer). Byte-flip sweeps over the headers may also load (a harmless flip), but
 * never crash. */
#include "wtest.h"

#include <sys/stat.h>
#include <unistd.h>

static int n_cases = 0;

/* Must fail cleanly; `want` (may be NULL) must appear in the message. */
static void expect_fail(const char *path, const char *want, const char *what)
{
    ad_status st;
    int clean = w_fails_cleanly(path, &st);
    n_cases++;
    CHECK(st != AD_OK, "%s: loaded, expected a failure", what);
    if (st == AD_OK) return;
    CHECK(clean, "%s: unclean failure: '%s'", what, ad_errmsg());
    CHECK(!want || strstr(ad_errmsg(), want), "%s: message '%s' lacks '%s'", what, ad_errmsg(), want);
    printf("  %-34s -> %s\n", what, ad_errmsg() + strlen(path));
}

/* Either loads or fails cleanly. Returns 1 if it loaded. */
static int load_or_fail_cleanly(const char *path, const char *what)
{
    ad_status st;
    int clean = w_fails_cleanly(path, &st);
    CHECK(st == AD_OK || clean, "%s: unclean failure: '%s'", what, ad_errmsg());
    return st == AD_OK;
}

/* Overwrites n bytes at off in place. */
static void patch(const char *path, size_t off, const void *p, size_t n)
{
    FILE *f = fopen(path, "r+b");
    int ok = f && fseek(f, (long)off, SEEK_SET) == 0 && fwrite(p, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    CHECK(ok, "cannot patch %s", path);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    CHECK(w_write(path, p, n), "cannot write %s", path);
}

/* ---- safetensors ------------------------------------------------------------------------ */

static void st_edit(const char *src, const char *out, const char *tensor, const char *field,
                    cJSON *value, int remove)
{
    w_st s;
    if (!w_st_open(src, &s)) {
        CHECK(0, "cannot parse %s", src);
        cJSON_Delete(value);
        return;
    }
    if (remove) {
        cJSON_DeleteItemFromObjectCaseSensitive(s.hdr, tensor);
    } else {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(s.hdr, tensor);
        CHECK(t != NULL, "no %s in %s", tensor, src);
        if (t) cJSON_ReplaceItemInObjectCaseSensitive(t, field, value);
        else cJSON_Delete(value);
    }
    CHECK(w_st_save(&s, out), "cannot write %s", out);
    w_st_close(&s);
}

static cJSON *ints(int n, const double *v)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static void safetensors_cases(void)
{
    const char *src = t_data("dinov2/tiny.safetensors");
    const char *out = t_tmp("weights_bad.safetensors");
    size_t len;
    uint8_t *orig = w_read(src, &len);
    CHECK(orig != NULL, "cannot read %s", src);
    if (!orig) return;
    uint8_t *b = malloc(len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | orig[i];
    printf("safetensors (%zu bytes, header %llu):\n", len, (unsigned long long)hl);

    /* header length: past the end, 2^63, 2^64-1, too small to hold JSON */
    const uint64_t lens[] = {len - 7, (uint64_t)1 << 63, UINT64_MAX, 1};
    const char *lw[] = {"exceeds the file size", "exceeds", "exceeds", "absurd"};
    for (int k = 0; k < 4; k++) {
        memcpy(b, orig, len);
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)(lens[k] >> (8 * i));
        write_bytes(out, b, len);
        char what[64];
        snprintf(what, sizeof what, "header length %llu", (unsigned long long)lens[k]);
        expect_fail(out, lw[k], what);
    }
    /* corrupt JSON: a stray byte in the middle, and a header cut short */
    memcpy(b, orig, len);
    b[(uint8_t *)memchr(orig + 8 + hl / 2, ',', hl / 2) - orig] = '#';
    write_bytes(out, b, len);
    expect_fail(out, "JSON", "header JSON corrupt");
    memcpy(b, orig, len);
    size_t close = 8 + (size_t)hl - 1;
    while (close > 8 && b[close] != '}') close--;  /* the header may end in space padding */
    b[close] = ' ';
    write_bytes(out, b, len);
    expect_fail(out, "JSON", "header JSON unterminated");
    /* wrong magic: neither zip nor '{' after the length */
    memcpy(b, orig, len);
    b[8] = '[';
    write_bytes(out, b, len);
    expect_fail(out, "not a PyTorch zip checkpoint nor a safetensors", "wrong magic");

    size_t data_len = len - 8 - (size_t)hl;
    const double past[2] = {1024, (double)data_len + 4};
    st_edit(src, out, "layernorm.bias", "data_offsets", ints(2, past), 0);
    expect_fail(out, "outside the data area", "offsets past the data");
    const double rev[2] = {1024, 512};
    st_edit(src, out, "layernorm.bias", "data_offsets", ints(2, rev), 0);
    expect_fail(out, "outside the data area", "offsets reversed");
    const double neg[2] = {-512, 0};
    st_edit(src, out, "layernorm.bias", "data_offsets", ints(2, neg), 0);
    expect_fail(out, "data_offsets", "offsets negative");
    const double frac[2] = {0.5, 512.5};
    st_edit(src, out, "layernorm.bias", "data_offsets", ints(2, frac), 0);
    expect_fail(out, "data_offsets", "offsets fractional");
    const double shp_small[1] = {64};
    st_edit(src, out, "layernorm.bias", "shape", ints(1, shp_small), 0);
    expect_fail(out, "layernorm.bias", "shape vs byte size");
    const double huge[4] = {4294967296.0, 4294967296.0, 4294967296.0, 4294967296.0};
    st_edit(src, out, "layernorm.bias", "shape", ints(4, huge), 0);
    expect_fail(out, "layernorm.bias", "shape product overflows");

    st_edit(src, out, "encoder.layer.1.mlp.fc2.bias", NULL, NULL, 1);
    expect_fail(out, "missing tensor 'encoder.layer.1.mlp.fc2.bias'", "missing tensor");
    st_edit(src, out, "embeddings.cls_token", NULL, NULL, 1);
    expect_fail(out, "cls_token", "missing cls token");
    const double wrong[2] = {64, 256};
    st_edit(src, out, "encoder.layer.0.attention.output.dense.weight", "shape", ints(2, wrong), 0);
    expect_fail(out, "'encoder.layer.0.attention.output.dense.weight' has shape [64, 256], expected "
                     "[128, 128]", "mis-shaped tensor");
    const double wrongq[2] = {256, 64};
    st_edit(src, out, "encoder.layer.1.attention.attention.key.weight", "shape", ints(2, wrongq), 0);
    expect_fail(out, "key.weight' has shape [256, 64], expected [128, 128]", "mis-shaped key");

    const char *dts[4] = {"F64", "I8", "I32", "Q9"};
    const char *dwant[4] = {"F64", "I8", "only F32, F16 and BF16", "unknown dtype 'Q9'"};
    for (int k = 0; k < 4; k++) {
        st_edit(src, out, "encoder.layer.0.norm1.weight", "dtype", cJSON_CreateString(dts[k]), 0);
        char what[64];
        snprintf(what, sizeof what, "dtype %s", dts[k]);
        expect_fail(out, dwant[k], what);
    }

    /* truncated at ~50 points, and within the first bytes */
    write_bytes(out, orig, len);
    for (int k = 49; k >= 0; k--) {
        size_t at = len / 50 * (size_t)k + (size_t)k * 7 % 13;
        CHECK(truncate(out, (off_t)at) == 0, "truncate");
        char what[64];
        snprintf(what, sizeof what, "truncated at %zu", at);
        expect_fail(out, NULL, what);
    }
    for (size_t at = 1; at < 12; at++) {
        write_bytes(out, orig, at);
        expect_fail(out, NULL, "truncated in the length");
    }

    /* byte flips over the whole header: loads or fails cleanly */
    int loaded = 0, tried = 0;
    write_bytes(out, orig, len);
    for (size_t at = 0; at < 8 + hl; at += 29) {
        uint8_t x = orig[at] ^ 0x5a;
        patch(out, at, &x, 1);
        loaded += load_or_fail_cleanly(out, "header byte flip");
        patch(out, at, orig + at, 1);
        tried++;
    }
    printf("  header byte flips: %d tried, %d still loaded\n", tried, loaded);
    free(b);
    free(orig);
}

/* ---- pth ---------------------------------------------------------------------------------- */

/* Repacks tiny.pth with data.pkl replaced by pkl[0..n) (CRCs recomputed). */
static void repack_pkl(w_zent *z, int nz, const uint8_t *pkl, size_t n, const char *out)
{
    w_zent *p = w_zip_find(z, nz, "/data.pkl");
    uint8_t *keep = p->data;
    size_t keep_len = p->len;
    p->data = (uint8_t *)pkl;
    p->len = n;
    CHECK(w_zip_write(out, z, nz, 0, 0), "cannot write %s", out);
    p->data = keep;
    p->len = keep_len;
}

/* data.pkl with the first occurrence of `from` replaced by `to`. */
static uint8_t *pkl_replace(const w_zent *p, const char *from, const char *to, size_t *n)
{
    size_t fl = strlen(from), tl = strlen(to);
    uint8_t *r = malloc(p->len + tl + 1);
    const uint8_t *hit = NULL;
    for (size_t i = 0; i + fl <= p->len && !hit; i++)
        if (!memcmp(p->data + i, from, fl)) hit = p->data + i;
    CHECK(hit != NULL, "'%s' not in data.pkl", from);
    if (!hit) hit = p->data;
    size_t pre = (size_t)(hit - p->data);
    memcpy(r, p->data, pre);
    memcpy(r + pre, to, tl);
    memcpy(r + pre + tl, hit + fl, p->len - pre - fl);
    *n = p->len - fl + tl;
    return r;
}

static uint32_t rd32(const uint8_t *p) { return w_r32(p); }

static void pth_cases(void)
{
    const char *src = t_data("dinov2/tiny.pth");
    const char *out = t_tmp("weights_bad.pth");
    size_t len;
    uint8_t *orig = w_read(src, &len);
    w_zent *z = NULL;
    int nz = w_zip_read(src, &z);
    CHECK(orig && nz > 0, "cannot read %s", src);
    if (!orig || nz <= 0) return;
    printf("pth (%zu bytes, %d entries):\n", len, nz);
    uint8_t *b = malloc(len);
    w_zent *pk = w_zip_find(z, nz, "/data.pkl");

    /* wrong magic */
    memcpy(b, orig, len);
    b[1] = 'X';
    write_bytes(out, b, len);
    expect_fail(out, NULL, "wrong magic");
    /* legacy torch format: a bare pickle */
    write_bytes(out, pk->data, pk->len);
    expect_fail(out, "legacy", "legacy non-zip pickle");

    /* pickle: unknown opcode, unknown global, unsupported storage type, truncated, no STOP */
    uint8_t *m = malloc(pk->len);
    memcpy(m, pk->data, pk->len);
    CHECK(m[27] == 'q', "opcode at 27 is 0x%02x, expected BINPUT", m[27]);
    m[27] = 0xfe;
    repack_pkl(z, nz, m, pk->len, out);
    expect_fail(out, "unsupported pickle opcode 0xfe at byte 27", "pickle unknown opcode");
    free(m);
    size_t n;
    m = pkl_replace(pk, "collections\nOrderedDict\n", "os\nsystem\n", &n);
    repack_pkl(z, nz, m, n, out);
    expect_fail(out, "unsupported global 'os.system'", "pickle unknown global");
    free(m);
    m = pkl_replace(pk, "torch\nFloatStorage\n", "torch\nDoubleStorage\n", &n);
    repack_pkl(z, nz, m, n, out);
    expect_fail(out, "DoubleStorage", "unsupported storage type");
    free(m);
    repack_pkl(z, nz, pk->data, pk->len / 2, out);
    expect_fail(out, "pickle", "pickle truncated");
    repack_pkl(z, nz, pk->data, pk->len - 1, out);
    expect_fail(out, "STOP", "pickle without STOP");
    m = pkl_replace(pk, "cls_token", "cls_tokeX", &n);
    repack_pkl(z, nz, m, n, out);
    expect_fail(out, "cls_token", "pickle without cls_token");
    free(m);

    /* a storage entry missing from the archive */
    w_zent *d5 = w_zip_find(z, nz, "/data/5");
    d5->name[strlen(d5->name) - 1] = 'X';
    CHECK(w_zip_write(out, z, nz, 0, 0), "write");
    expect_fail(out, "missing from the archive", "storage entry missing");
    d5->name[strlen(d5->name) - 1] = '5';
    /* a storage shorter than its declared element count */
    size_t keep = d5->len;
    d5->len -= 4;
    CHECK(w_zip_write(out, z, nz, 0, 0), "write");
    expect_fail(out, "storage", "storage too short");
    d5->len = keep;

    /* central directory damage, in place */
    size_t eocd = len - 22;
    while (eocd > 0 && rd32(orig + eocd) != 0x06054b50u) eocd--;
    size_t cd = rd32(orig + eocd + 16);
    memcpy(b, orig, len);
    b[cd + 46 * 3 + 40] ^= 0xff;  /* somewhere in an early entry: name/header bytes */
    b[cd] = 'X';                  /* first entry's signature */
    write_bytes(out, b, len);
    expect_fail(out, "central directory", "bad central directory signature");
    /* torch writes zip64 end records; their 32-bit twins must agree or say "see zip64" */
    CHECK(rd32(orig + eocd - 20) == 0x07064b50u, "no zip64 locator before the end record");
    size_t z64 = rd32(orig + eocd - 20 + 8);
    memcpy(b, orig, len);
    b[eocd + 19] = 0x7f;          /* 32-bit directory offset changed */
    write_bytes(out, b, len);
    expect_fail(out, "disagree", "zip / zip64 end records disagree");
    memcpy(b, orig, len);
    memset(b + eocd + 16, 0xff, 4);  /* directory offset far past the end */
    b[z64 + 48 + 5] = 0x01;
    write_bytes(out, b, len);
    expect_fail(out, "central directory", "central directory offset out of range");
    memcpy(b, orig, len);
    memset(b + eocd + 8, 0xff, 4);   /* more entries than the directory holds */
    b[z64 + 32 + 2] = 0x01;
    b[z64 + 24 + 2] = 0x01;
    write_bytes(out, b, len);
    expect_fail(out, "central directory", "central directory entry count");
    memcpy(b, orig, len);
    b[z64 + 2] = 'X';                /* zip64 end record signature */
    write_bytes(out, b, len);
    expect_fail(out, "zip64", "bad zip64 end record");
    memcpy(b, orig, len);
    b[cd + 10] = 12;              /* data.pkl compressed with bzip2 */
    write_bytes(out, b, len);
    expect_fail(out, "compression method 12", "unsupported compression method");
    memcpy(b, orig, len);
    b[cd + 42] = 0xf0;            /* data.pkl local header offset wrong */
    b[cd + 43] = 0xff;
    write_bytes(out, b, len);
    expect_fail(out, NULL, "local header offset wrong");
    /* a flipped data byte inside a weight: caught by the entry's CRC-32 */
    memcpy(b, orig, len);
    size_t d14 = 0;
    for (size_t p = cd; p + 46 < len && rd32(orig + p) == 0x02014b50u;) {
        size_t nl = w_r16(orig + p + 28), lo = rd32(orig + p + 42);
        if (nl >= 8 && !memcmp(orig + p + 46 + nl - 8, "/data/14", 8))
            d14 = lo + 30 + w_r16(orig + lo + 26) + w_r16(orig + lo + 28);
        p += 46 + nl + w_r16(orig + p + 30) + w_r16(orig + p + 32);
    }
    CHECK(d14 > 0, "no data/14 entry");
    b[d14 + 1000] ^= 0x01;
    write_bytes(out, b, len);
    expect_fail(out, "CRC-32", "flipped weight byte");

    /* truncated at ~50 points */
    write_bytes(out, orig, len);
    for (int k = 49; k >= 0; k--) {
        size_t at = len / 50 * (size_t)k + (size_t)k * 11 % 17;
        CHECK(truncate(out, (off_t)at) == 0, "truncate");
        char what[64];
        snprintf(what, sizeof what, "truncated at %zu", at);
        expect_fail(out, NULL, what);
    }

    /* byte flips in place: through the pickle (its CRC-32 in the directory updated so that
     * the parser sees the damage) and through the directory */
    int loaded = 0, tried = 0;
    size_t pkl_off = 0, pkl_crc = 0;
    for (size_t p = cd; p + 46 < len && rd32(orig + p) == 0x02014b50u;) {
        size_t nl = w_r16(orig + p + 28), lo = rd32(orig + p + 42);
        if (nl >= 9 && !memcmp(orig + p + 46 + nl - 9, "/data.pkl", 9)) {
            pkl_off = lo + 30 + w_r16(orig + lo + 26) + w_r16(orig + lo + 28);
            pkl_crc = p + 16;
        }
        p += 46 + nl + w_r16(orig + p + 30) + w_r16(orig + p + 32);
    }
    CHECK(pkl_off > 0 && !memcmp(orig + pkl_off, pk->data, pk->len), "data.pkl not found in place");
    write_bytes(out, orig, len);
    m = malloc(pk->len);
    for (size_t at = 0; at < pk->len; at += 7) {
        memcpy(m, pk->data, pk->len);
        m[at] ^= 0x5a;
        uint32_t crc = (uint32_t)crc32(0, m, (uInt)pk->len);
        uint8_t c4[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
        patch(out, pkl_off + at, m + at, 1);
        patch(out, pkl_crc, c4, 4);
        loaded += load_or_fail_cleanly(out, "pickle byte flip");
        patch(out, pkl_off + at, orig + pkl_off + at, 1);
        patch(out, pkl_crc, orig + pkl_crc, 4);
        tried++;
    }
    free(m);
    for (size_t at = cd; at < len; at += 3) {
        uint8_t x = orig[at] ^ 0xa5;
        patch(out, at, &x, 1);
        loaded += load_or_fail_cleanly(out, "directory byte flip");
        patch(out, at, orig + at, 1);
        tried++;
    }
    printf("  pickle / directory byte flips: %d tried, %d still loaded\n", tried, loaded);
    free(b);
    free(orig);
    w_zip_free(z, nz);
}

int main(void)
{
    ad_status st;
    const char *missing = t_tmp("weights_does_not_exist.pth");
    unlink(missing);
    CHECK(w_fails_cleanly(missing, &st) && st == AD_E_IO, "missing file: %s (%s)", ad_errmsg(),
          ad_status_name(st));
    printf("missing file -> %s\n", ad_errmsg());
    const char *dir = t_tmp("weights_a_directory");
    mkdir(dir, 0755);
    expect_fail(dir, "not a regular file", "directory");
    const char *empty = t_tmp("weights_empty.safetensors");
    write_bytes(empty, "", 0);
    expect_fail(empty, "empty", "empty file");
    const char *junk = t_tmp("weights_junk.bin");
    write_bytes(junk, "0123456789abcdefghijklmnopqrstuvwxyz", 36);
    expect_fail(junk, "not a PyTorch zip checkpoint nor a safetensors", "text file");
    adi_weights w;
    CHECK(adi_weights_load(NULL, &w) == AD_E_ARG, "NULL path accepted");
    CHECK(adi_weights_load(missing, NULL) == AD_E_ARG, "NULL output accepted");
    adi_weights_free(NULL);

    safetensors_cases();
    pth_cases();
    printf("%d failure cases\n", n_cases);
    return t_done("test_weights_corrupt_files");
}
