/* The same .pth checkpoint repacked as torch or other zip writers may produce it (stored or
 * deflated entries, zip64 records, another archive prefix, a byteorder entry) loads to the
 * very same arrays and fingerprint; a big-endian byteorder or a corrupt deflate stream is
 * refused cleanly. */
#include "wtest.h"

static void compare(const adi_weights *a, const adi_weights *b, const char *label)
{
    w_fields fa, fb;
    w_list(a, &fa);
    w_list(b, &fb);
    double worst = 0;
    int differ = fa.count != fb.count;
    for (int i = 0; i < fa.count && i < fb.count; i++) {
        worst = fmax(worst, t_maxdiff_f32(fa.p[i], fb.p[i], fa.n[i], NULL));
        differ |= memcmp(fa.p[i], fb.p[i], fa.n[i] * 4) != 0;
    }
    CHECK(!differ, "%s: values differ from the original (max %g)", label, worst);
    CHECK(a->fingerprint == b->fingerprint, "%s: fingerprint %016llx vs %016llx", label,
          (unsigned long long)a->fingerprint, (unsigned long long)b->fingerprint);
    CHECK(a->dim == b->dim && a->depth == b->depth && a->swiglu == b->swiglu &&
              a->ffn_hidden == b->ffn_hidden && !strcmp(b->format, "pth"),
          "%s: config differs", label);
    printf("%-28s max |diff| %g, fingerprint %016llx\n", label, worst,
           (unsigned long long)b->fingerprint);
}

static void variant(const adi_weights *ref, w_zent *z, int nz, int method, int zip64,
                    const char *label)
{
    char rel[96];
    snprintf(rel, sizeof rel, "weights_variant_%d_%d.pth", method, zip64);
    const char *out = t_tmp(rel);
    CHECK(w_zip_write(out, z, nz, method, zip64), "cannot write %s", out);
    adi_weights w;
    ad_status st = adi_weights_load(out, &w);
    CHECK(st == AD_OK, "%s: %s", label, ad_errmsg());
    if (st) return;
    compare(ref, &w, label);
    adi_weights_free(&w);
}

/* Re-encodes a torch (protocol 2) pickle with the protocol-4 opcodes a pickle_protocol=4 save
 * would use: FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE. Returns the new length, 0 if
 * the input holds an opcode this rewriter does not know. */
static size_t to_protocol4(const uint8_t *p, size_t n, uint8_t *o)
{
    size_t i = 0, k = 0, frame_at = 0;
    uint32_t memo = 0;
    while (i < n) {
        uint8_t op = p[i++];
        size_t arg = 0;
        switch (op) {
        case 0x80:
            o[k++] = 0x80;
            o[k++] = 4;
            i++;
            o[k++] = 0x95;
            frame_at = k;
            k += 8;
            continue;
        case 'c': {
            const uint8_t *m = p + i, *e1 = memchr(m, '\n', n - i), *nm = e1 + 1;
            const uint8_t *e2 = memchr(nm, '\n', (size_t)(p + n - nm));
            o[k++] = 0x8c;
            o[k++] = (uint8_t)(e1 - m);
            memcpy(o + k, m, (size_t)(e1 - m));
            k += (size_t)(e1 - m);
            o[k++] = 0x8c;
            o[k++] = (uint8_t)(e2 - nm);
            memcpy(o + k, nm, (size_t)(e2 - nm));
            k += (size_t)(e2 - nm);
            o[k++] = 0x93;
            i = (size_t)(e2 + 1 - p);
            continue;
        }
        case 'X': {
            uint32_t len = w_r32(p + i);
            if (len < 256) {
                o[k++] = 0x8c;
                o[k++] = (uint8_t)len;
                memcpy(o + k, p + i + 4, len);
                k += len;
                i += 4 + len;
                continue;
            }
            arg = 4 + len;
            break;
        }
        case 'q':
        case 'r': {
            uint32_t idx = op == 'q' ? p[i] : w_r32(p + i);
            if (idx != memo++) return 0;  /* MEMOIZE numbers slots in order */
            o[k++] = 0x94;
            i += op == 'q' ? 1 : 4;
            continue;
        }
        case 'h': case 'K': arg = 1; break;
        case 'M': arg = 2; break;
        case 'j': case 'J': arg = 4; break;
        case ')': case 'R': case '(': case 't': case 'Q': case 0x85: case 0x86: case 0x87:
        case 0x88: case 0x89: case '}': case 's': case 'u': case 'b': case '.': case 'N':
            break;
        default:
            return 0;
        }
        o[k++] = op;
        memcpy(o + k, p + i, arg);
        k += arg;
        i += arg;
    }
    uint64_t fl = k - frame_at - 8;
    for (int b = 0; b < 8; b++) o[frame_at + b] = (uint8_t)(fl >> (8 * b));
    return k;
}

int main(void)
{
    const char *src = t_data("dinov2/tiny_swiglu.pth");
    adi_weights ref;
    CHECK_OK(adi_weights_load(src, &ref));
    w_zent *z = NULL;
    int nz = w_zip_read(src, &z);
    CHECK(nz > 0, "cannot read %s", src);
    if (t_failures) return t_done("test_weights_pth_zip_variants");

    variant(&ref, z, nz, 0, 0, "stored");
    variant(&ref, z, nz, 8, 0, "deflate");
    variant(&ref, z, nz, 0, 1, "stored + zip64 records");
    variant(&ref, z, nz, 8, 1, "deflate + zip64 records");

    /* the pickle re-encoded with protocol-4 opcodes */
    w_zent *pk = w_zip_find(z, nz, "/data.pkl");
    uint8_t *p4 = malloc(pk->len * 2 + 16), *keep = pk->data;
    size_t keep_len = pk->len, n4 = to_protocol4(pk->data, pk->len, p4);
    CHECK(n4 > 0, "data.pkl holds an opcode the protocol-4 rewriter does not know");
    if (n4) {
        pk->data = p4;
        pk->len = n4;
        variant(&ref, z, nz, 0, 0, "pickle protocol 4 opcodes");
        w_write(t_tmp("weights_protocol4.pkl"), p4, n4);
        pk->data = keep;
        pk->len = keep_len;
    }
    free(p4);

    /* torch >= 1.13 names the archive "archive/" whatever the file name */
    for (int i = 0; i < nz; i++) {
        char *sl = strchr(z[i].name, '/');
        char rest[200];
        snprintf(rest, sizeof rest, "%.150s", sl ? sl : "");
        snprintf(z[i].name, sizeof z[i].name, "archive%s", rest);
    }
    variant(&ref, z, nz, 0, 0, "prefix archive/");

    /* byteorder entry (torch >= 2.1) */
    w_zent *z2 = calloc((size_t)nz + 1, sizeof *z2);
    memcpy(z2, z, (size_t)nz * sizeof *z2);
    snprintf(z2[nz].name, sizeof z2[nz].name, "archive/byteorder");
    z2[nz].data = (uint8_t *)"little";
    z2[nz].len = 6;
    variant(&ref, z2, nz + 1, 0, 0, "byteorder little");
    z2[nz].data = (uint8_t *)"big";
    z2[nz].len = 3;
    const char *out = t_tmp("weights_bigendian.pth");
    CHECK(w_zip_write(out, z2, nz + 1, 0, 0), "write %s", out);
    ad_status st;
    CHECK(w_fails_cleanly(out, &st), "big-endian: status %d, '%s'", (int)st, ad_errmsg());
    CHECK(strstr(ad_errmsg(), "big-endian") != NULL, "message: %s", ad_errmsg());
    printf("byteorder big -> %s\n", ad_errmsg());
    free(z2);

    /* a corrupt deflate stream inside a weight entry */
    out = t_tmp("weights_deflate_bad.pth");
    CHECK(w_zip_write(out, z, nz, 8, 0), "write %s", out);
    size_t len;
    uint8_t *b = w_read(out, &len);
    int flipped = 0;
    for (size_t p = 0; b && p + 30 < len && !flipped; p++) {
        /* the local header of the largest entry (fc1 weight, data/..): flip inside its data */
        if (w_r32(b + p) == 0x04034b50u && w_r32(b + p + 18) > 100000) {
            size_t d = p + 30 + w_r16(b + p + 26) + w_r16(b + p + 28);
            for (size_t k = 0; k < 64; k++) b[d + 500 + k] ^= 0xff;
            flipped = 1;
        }
    }
    CHECK(flipped, "no large deflated entry found");
    w_write(out, b, len);
    free(b);
    CHECK(w_fails_cleanly(out, &st), "corrupt deflate: status %d, '%s'", (int)st, ad_errmsg());
    printf("corrupt deflate -> %s\n", ad_errmsg());

    w_zip_free(z, nz);
    adi_weights_free(&ref);
    return t_done("test_weights_pth_zip_variants");
}
