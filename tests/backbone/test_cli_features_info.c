/* The command-line front of the backbone: `anomalydino features` writes the golden features
 * (float32 .npy, N x D, and the CLS), one file per layer with --layers, and `anomalydino info`
 * prints the inferred configuration; usage errors exit 2, failures exit 1, with one line on
 * stderr. */
#include "anomalydino.h"
#include "io/io.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <string.h>

static float *npy_f32(const char *path, int ndim, size_t d0, size_t d1)
{
    adi_npy a;
    if (adi_npy_read(path, &a) != AD_OK) {
        CHECK(0, "%s: %s", path, ad_errmsg());
        return NULL;
    }
    int ok = a.dtype == AD_NPY_F4 && a.ndim == ndim && a.shape[0] == d0 &&
             (ndim == 1 || a.shape[1] == d1);
    CHECK(ok, "%s: dtype %d, ndim %d, shape %zu x %zu; expected float32 %zu x %zu", path,
          (int)a.dtype, a.ndim, a.shape[0], ndim > 1 ? a.shape[1] : 0, d0, d1);
    float *f = ok ? adi_npy_to_f32(&a) : NULL;
    adi_npy_free(&a);
    return f;
}

static void compare(const char *what, const float *a, const float *b, size_t n, size_t dim)
{
    if (!a || !b) return;
    size_t w;
    double d = t_maxdiff_f32(a, b, n, &w);
    printf("%-34s max|diff| %.3g at token %zu ch %zu\n", what, d, w / dim, w % dim);
    CHECK(d <= 1e-3, "%s: max|diff| %g", what, d);
}

int main(void)
{
    const char *bin = t_bin();
    char w[1024], img[1024]; /* t_data / t_tmp reuse a few static buffers: keep copies */
    snprintf(w, sizeof w, "%s", t_data("dinov2/tiny_swiglu.safetensors"));
    snprintf(img, sizeof img, "%s", t_data("dinov2/input_364x252.png"));
    const size_t N = 26 * 18, D = 192;
    char out[1024], cls[1024];
    snprintf(out, sizeof out, "%s", t_tmp("bb_cli_patch.npy"));
    snprintf(cls, sizeof cls, "%s", t_tmp("bb_cli_cls.npy"));

    int rc = t_run("ANOMALYDINO_QUIET=1 '%s' features -m '%s' '%s' --no-resize -o '%s' --cls '%s' "
                   "--threads 2 > /dev/null",
                   bin, w, img, out, cls);
    CHECK(rc == 0, "features exited %d", rc);
    float *p = npy_f32(out, 2, N, D), *c = npy_f32(cls, 1, D, 0);
    float *gp = npy_f32(t_data("dinov2/tiny_swiglu_364x252_patch.npy"), 2, N, D);
    float *gc = npy_f32(t_data("dinov2/tiny_swiglu_364x252_cls.npy"), 1, D, 0);
    compare("features --no-resize patch vs golden", p, gp, N * D, D);
    compare("features --no-resize cls vs golden", c, gc, D, D);

    /* --layers: one file per 0-based block; -1 names the last block (1 of 2) */
    rc = t_run("ANOMALYDINO_QUIET=1 '%s' features -m '%s' '%s' --no-resize -o '%s' --cls '%s' "
               "--layers 0,-1 > /dev/null",
               bin, w, img, t_tmp("bb_cli_l.npy"), t_tmp("bb_cli_lc.npy"));
    CHECK(rc == 0, "features --layers exited %d", rc);
    float *l1 = npy_f32(t_tmp("bb_cli_l_layer1.npy"), 2, N, D);
    float *l0 = npy_f32(t_tmp("bb_cli_l_layer0.npy"), 2, N, D);
    float *lc = npy_f32(t_tmp("bb_cli_lc_layer1.npy"), 1, D, 0);
    compare("--layers -1 (file _layer1) vs golden", l1, gp, N * D, D);
    compare("--layers -1 cls vs golden", lc, gc, D, D);
    if (l0 && gp) {
        size_t where;
        double d = t_maxdiff_f32(l0, gp, N * D, &where);
        CHECK(d > 1e-2, "block 0 output equals the last block's (%g)", d);
    }

    /* default: smaller edge resized to 448 first -> 448 x 640 (int(448*364/252) = 647, cropped) */
    rc = t_run("ANOMALYDINO_QUIET=1 '%s' features -m '%s' '%s' -o '%s' > /dev/null", bin, w, img,
               t_tmp("bb_cli_448.npy"));
    CHECK(rc == 0, "features (default resolution) exited %d", rc);
    float *r = npy_f32(t_tmp("bb_cli_448.npy"), 2, (size_t)(647 / 14) * 32, D);
    adi_free(r);

    /* info */
    char js[1024], errf[1024];
    snprintf(js, sizeof js, "%s", t_tmp("bb_cli_info.json"));
    snprintf(errf, sizeof errf, "%s", t_tmp("bb_cli_err.txt"));
    rc = t_run("'%s' info -m '%s' --json > '%s'", bin, t_data("dinov2/tiny_reg.pth"), js);
    CHECK(rc == 0, "info --json exited %d", rc);
    size_t len;
    char *txt = adi_io_read_file(js, &len);
    cJSON *o = txt ? cJSON_Parse(txt) : NULL;
    CHECK(o != NULL, "info --json is not JSON: %s", txt ? txt : "(no output)");
    if (o) {
        const cJSON *dim = cJSON_GetObjectItemCaseSensitive(o, "dim");
        const cJSON *reg = cJSON_GetObjectItemCaseSensitive(o, "registers");
        const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format");
        const cJSON *pi = cJSON_GetObjectItemCaseSensitive(o, "pos_interp");
        CHECK(cJSON_IsNumber(dim) && dim->valueint == 128, "info dim");
        CHECK(cJSON_IsNumber(reg) && reg->valueint == 4, "info registers");
        CHECK(cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "pth"), "info format");
        CHECK(cJSON_IsString(pi) && !strcmp(pi->valuestring, "bicubic-antialias"),
              "info pos_interp");
    }
    cJSON_Delete(o);
    free(txt);
    rc = t_run("'%s' info -m '%s' > /dev/null", bin, w);
    CHECK(rc == 0, "info (text) exited %d", rc);

    /* exit codes: 2 usage, 1 failure, 0 help */
    static const struct {
        const char *args;
        int want;
    } cases[] = {
        {"features --help", 0},
        {"info --help", 0},
        {"features -o x.npy IMG", 2}, /* no -m */
        {"features -m W IMG", 2},     /* no -o */
        {"features -m W -o OUT", 2},  /* no image */
        {"features -m W IMG -o OUT --resolution 448 --no-resize", 2},
        {"features -m W IMG -o OUT --resolution 10", 2},
        {"features -m W IMG -o OUT --threads x", 2},
        {"features -m W IMG -o OUT --layers 0,a", 2},
        {"features -m W IMG -o OUT --no-norm", 2},
        {"features -m W IMG -o OUT --bogus", 2},
        {"features -m W IMG -o OUT --cls OUT", 2}, /* CLS would overwrite the patch tokens */
        {"features -m W IMG -o OUT --layers 5", 1}, /* 2-block model */
        /* 1 and -1 are the same block of a 2-block model: OUT_layer1.npy would be written twice */
        {"features -m W IMG -o OUT --layers 1,-1", 2},
        {"features -m MISSING IMG -o OUT", 1},
        {"features -m W MISSING -o OUT", 1},
        {"features -m W IMG -o /nonexistent-dir/x.npy", 1},
        {"info", 2},
        {"info -m MISSING", 1},
        {"info -m W extra", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1024] = "", *d = args;
        for (const char *s = cases[i].args; *s && d < args + sizeof args - 300;) {
            const char *rep = NULL;
            size_t skip = 0;
            if (!strncmp(s, "MISSING", 7))
                rep = t_data("dinov2/missing.pth"), skip = 7;
            else if (!strncmp(s, "IMG", 3))
                rep = img, skip = 3;
            else if (!strncmp(s, "OUT", 3))
                rep = t_tmp("bb_cli_x.npy"), skip = 3;
            else if (s[0] == 'W' && (s[1] == ' ' || !s[1]) && (s == cases[i].args || s[-1] == ' '))
                rep = w, skip = 1;
            if (rep) {
                d += snprintf(d, 300, "%s", rep);
                s += skip;
            } else {
                *d++ = *s++;
            }
        }
        *d = 0;
        rc = t_run("ANOMALYDINO_QUIET=1 '%s' %s > /dev/null 2> '%s'", bin, args, errf);
        char *err = adi_io_read_file(errf, &len);
        printf("anomalydino %-52s -> exit %d%s%.*s", cases[i].args, rc, err && *err ? ": " : "\n",
               (int)(err ? strcspn(err, "\n") + 1 : 0), err ? err : "");
        CHECK(rc == cases[i].want, "'%s' exited %d, expected %d", cases[i].args, rc, cases[i].want);
        if (cases[i].want == 1)
            CHECK(err && strncmp(err, "anomalydino ", 12) == 0 &&
                      strchr(err, '\n') == err + strlen(err) - 1,
                  "'%s': expected one error line, got '%s'", cases[i].args, err ? err : "");
        free(err);
    }

    adi_free(p);
    adi_free(c);
    adi_free(gp);
    adi_free(gc);
    adi_free(l0);
    adi_free(l1);
    adi_free(lc);
    return t_done("cli_features_info");
}
