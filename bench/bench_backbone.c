/* Speed and memory of the DINOv2 forward pass (not a test).
 *
 * Writes a temporary Hugging Face-style model.safetensors with random weights of an official
 * shape (no download), loads it through the public API, and times ad_extract on a random
 * SIZE x SIZE input: a warm-up, then RUNS timed runs per thread count. Prints seconds per image
 * (best and mean), effective GFLOP/s and the peak resident memory (getrusage ru_maxrss), then
 * deletes the file.
 *
 * FLOPs counted (multiply-add = 2), T = 1 + R + N tokens, N = (SIZE/14)^2 patches:
 *   patch embedding      2 N (3*14*14) D
 *   per block            2 T D 3D (qkv) + 2 T D D (proj) + 2 * 2 T T D (q k^T and p v, all heads)
 *                        + MLP 2 * 2 T D H  or  SwiGLU 2 T D 2H + 2 T H D
 * LayerNorm, softmax, GELU and the residuals are not counted. ViT-S/14 at 448: 63.4 GFLOP.
 *
 *   bench_backbone [--model s|b|l|g] [--size 448] [--runs 5] [--threads 1,2] [--tmp DIR]
 *
 * --model g writes a 4.4 GB file (ViT-g/14, 1.1 B parameters) and checks that it loads and runs;
 * use --runs 1 (about 20 s per image on 2 cores). */
#include "anomalydino.h"

#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char name;
    const char *hub;
    int dim, depth, hidden, swiglu;
} shape;

/* dinov2 vision_transformer.py vit_small / vit_base / vit_large / vit_giant2 */
static const shape shapes[] = {
    {'s', "vits14", 384, 12, 1536, 0},
    {'b', "vitb14", 768, 12, 3072, 0},
    {'l', "vitl14", 1024, 24, 4096, 0},
    {'g', "vitg14", 1536, 40, 4096, 1},
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static long peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

/* ---- a random checkpoint, written tensor by tensor (the writer itself stays small) ---- */
typedef enum { INIT_SMALL, INIT_ONE, INIT_GAMMA } init_kind;
typedef struct {
    char name[96];
    int ndim;
    long long shape[4];
    init_kind init;
    size_t count;
} tensor;

static uint64_t rng_state = 0x853c49e6748fea9bULL;
static float rnd(void) /* uniform [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0) - 1.0);
}

static int add(tensor *t, int *n, init_kind init, int ndim, long long a, long long b, long long c,
               long long d, const char *fmt, int i)
{
    tensor *x = &t[(*n)++];
    snprintf(x->name, sizeof x->name, fmt, i);
    x->ndim = ndim;
    x->shape[0] = a;
    x->shape[1] = b;
    x->shape[2] = c;
    x->shape[3] = d;
    x->init = init;
    x->count = 1;
    for (int k = 0; k < ndim; k++) x->count *= (size_t)x->shape[k];
    return 0;
}

static int write_model(const char *path, const shape *s)
{
    int D = s->dim, H = s->hidden, n = 0, cap = 16 + 20 * s->depth;
    tensor *t = calloc((size_t)cap, sizeof *t);
    if (!t) return -1;
    /* Hugging Face Dinov2Model key names (docs/design.md, "Backbone": checkpoints) */
    add(t, &n, INIT_SMALL, 3, 1, 1, D, 0, "embeddings.cls_token", 0);
    add(t, &n, INIT_SMALL, 2, 1, D, 0, 0, "embeddings.mask_token", 0);
    add(t, &n, INIT_SMALL, 3, 1, 1370, D, 0, "embeddings.position_embeddings", 0);
    add(t, &n, INIT_SMALL, 4, D, 3, 14, 14, "embeddings.patch_embeddings.projection.weight", 0);
    add(t, &n, INIT_SMALL, 1, D, 0, 0, 0, "embeddings.patch_embeddings.projection.bias", 0);
    for (int i = 0; i < s->depth; i++) {
        add(t, &n, INIT_ONE, 1, D, 0, 0, 0, "encoder.layer.%d.norm1.weight", i);
        add(t, &n, INIT_SMALL, 1, D, 0, 0, 0, "encoder.layer.%d.norm1.bias", i);
        static const char *qkv[3] = {"query", "key", "value"};
        for (int k = 0; k < 3; k++) {
            char f[96];
            snprintf(f, sizeof f, "encoder.layer.%%d.attention.attention.%s.weight", qkv[k]);
            add(t, &n, INIT_SMALL, 2, D, D, 0, 0, f, i);
            snprintf(f, sizeof f, "encoder.layer.%%d.attention.attention.%s.bias", qkv[k]);
            add(t, &n, INIT_SMALL, 1, D, 0, 0, 0, f, i);
        }
        add(t, &n, INIT_SMALL, 2, D, D, 0, 0, "encoder.layer.%d.attention.output.dense.weight", i);
        add(t, &n, INIT_SMALL, 1, D, 0, 0, 0, "encoder.layer.%d.attention.output.dense.bias", i);
        add(t, &n, INIT_GAMMA, 1, D, 0, 0, 0, "encoder.layer.%d.layer_scale1.lambda1", i);
        add(t, &n, INIT_ONE, 1, D, 0, 0, 0, "encoder.layer.%d.norm2.weight", i);
        add(t, &n, INIT_SMALL, 1, D, 0, 0, 0, "encoder.layer.%d.norm2.bias", i);
        if (s->swiglu) {
            add(t, &n, INIT_SMALL, 2, 2 * H, D, 0, 0, "encoder.layer.%d.mlp.weights_in.weight", i);
            add(t, &n, INIT_SMALL, 1, 2 * H, 0, 0, 0, "encoder.layer.%d.mlp.weights_in.bias", i);
            add(t, &n, INIT_SMALL, 2, D, H, 0, 0, "encoder.layer.%d.mlp.weights_out.weight", i);
            add(t, &n, INIT_SMALL, 1, D, 0, 0, 0, "encoder.layer.%d.mlp.weights_out.bias", i);
        } else {
            add(t, &n, INIT_SMALL, 2, H, D, 0, 0, "encoder.layer.%d.mlp.fc1.weight", i);
            add(t, &n, INIT_SMALL, 1, H, 0, 0, 0, "encoder.layer.%d.mlp.fc1.bias", i);
            add(t, &n, INIT_SMALL, 2, D, H, 0, 0, "encoder.layer.%d.mlp.fc2.weight", i);
            add(t, &n, INIT_SMALL, 1, D, 0, 0, 0, "encoder.layer.%d.mlp.fc2.bias", i);
        }
        add(t, &n, INIT_GAMMA, 1, D, 0, 0, 0, "encoder.layer.%d.layer_scale2.lambda1", i);
    }
    add(t, &n, INIT_ONE, 1, D, 0, 0, 0, "layernorm.weight", 0);
    add(t, &n, INIT_SMALL, 1, D, 0, 0, 0, "layernorm.bias", 0);

    size_t hcap = (size_t)n * 200 + 64, hl = 0, off = 0;
    char *h = malloc(hcap);
    FILE *f = fopen(path, "wb");
    if (!h || !f) {
        fprintf(stderr, "bench_backbone: cannot write %s\n", path);
        free(h);
        free(t);
        if (f) fclose(f);
        return -1;
    }
    hl += (size_t)snprintf(h + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        hl += (size_t)snprintf(h + hl, hcap - hl, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[",
                               t[i].name);
        for (int k = 0; k < t[i].ndim; k++)
            hl += (size_t)snprintf(h + hl, hcap - hl, "%s%lld", k ? "," : "", t[i].shape[k]);
        hl += (size_t)snprintf(h + hl, hcap - hl, "],\"data_offsets\":[%zu,%zu]}", off,
                               off + 4 * t[i].count);
        off += 4 * t[i].count;
    }
    hl += (size_t)snprintf(h + hl, hcap - hl, "}");
    while (hl % 8) h[hl++] = ' ';
    uint64_t hlen = hl;
    int ok = fwrite(&hlen, 8, 1, f) == 1 && fwrite(h, 1, hl, f) == hl;
    enum { CHUNK = 1 << 16 };
    static float buf[CHUNK];
    for (int i = 0; i < n && ok; i++)
        for (size_t done = 0; done < t[i].count && ok;) {
            size_t m = t[i].count - done < CHUNK ? t[i].count - done : CHUNK;
            for (size_t k = 0; k < m; k++)
                buf[k] = t[i].init == INIT_ONE     ? 1.0f + 0.1f * rnd()
                         : t[i].init == INIT_GAMMA ? 0.1f + 0.05f * rnd()
                                                   : 0.035f * rnd(); /* std ~0.02 */
            ok = fwrite(buf, 4, m, f) == m;
            done += m;
        }
    if (fclose(f)) ok = 0;
    free(h);
    free(t);
    if (!ok) fprintf(stderr, "bench_backbone: writing %s failed (disk full?)\n", path);
    return ok ? 0 : -1;
}

static double count_flops(const ad_model_info *in, int size)
{
    double g = size / 14, N = g * g, T = 1 + in->n_registers + N, D = in->dim, H = in->ffn_hidden;
    double blk = 2 * T * D * 3 * D + 2 * T * D * D + 2 * 2 * T * T * D +
                 (in->swiglu ? 2 * T * D * 2 * H + 2 * T * H * D : 2 * 2 * T * D * H);
    return 2 * N * 588 * D + in->depth * blk;
}

static void random_image(ad_image *img)
{
    for (size_t i = 0; i < (size_t)img->width * img->height * 3; i++)
        img->data[i] = (uint8_t)(128 + 127 * rnd());
}

/* Issue 3's budget: the whole predict (resize, backbone, nearest neighbour over the 1-shot
 * agnostic bank, score; and the full-size map) against the backbone alone on the same input. */
static int bench_predict(const ad_model *m, int size, int runs, int threads)
{
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = threads;
    ad_context *ctx = ad_context_new(m, cp);
    ad_bank_params bp = ad_bank_default_params();
    bp.resolution = size;
    bp.rotate = 1;
    ad_bank *bank = ctx ? ad_bank_new(m, &bp) : NULL;
    ad_image ref = {0}, test = {0};
    ad_input in = {0};
    if (!bank || ad_image_alloc(&ref, 1024, 1024) || ad_image_alloc(&test, 1024, 1024)) {
        fprintf(stderr, "bench_backbone: %s\n", ad_errmsg());
        return 1;
    }
    random_image(&ref);
    random_image(&test);
    if (ad_bank_add_image(bank, ctx, &ref, 0) || ad_preprocess(&test, size, &in)) {
        fprintf(stderr, "bench_backbone: %s\n", ad_errmsg());
        return 1;
    }
    float *map = malloc(sizeof(float) * 1024 * 1024);
    double best_bb = INFINITY, best_pr = INFINITY, best_map = INFINITY;
    for (int r = 0; r < runs + 1; r++) { /* run 0 warms the caches up */
        ad_features f = {0};
        ad_result res = {0};
        double t0 = now();
        ad_status st = ad_extract(ctx, &in, &f);
        double t1 = now();
        if (st == AD_OK) st = ad_predict(bank, ctx, &test, 0, &res);
        double t2 = now();
        if (st == AD_OK && map)
            st = ad_anomaly_map(res.grid, res.grid_h, res.grid_w, 1024, 1024, map);
        double t3 = now();
        ad_features_free(&f);
        ad_result_free(&res);
        if (st != AD_OK) {
            fprintf(stderr, "bench_backbone: %s\n", ad_errmsg());
            return 1;
        }
        if (r == 0) continue;
        if (t1 - t0 < best_bb) best_bb = t1 - t0;
        if (t2 - t1 < best_pr) best_pr = t2 - t1;
        if (t3 - t2 < best_map) best_map = t3 - t2;
    }
    printf("predict, 1-shot agnostic (bank %zu rows), 1024x1024 image at %d, threads %d: "
           "backbone alone %.3f s, whole predict %.3f s (%.1f%% over), map %.3f s "
           "(predict + map %.1f%% over the backbone)\n",
           ad_bank_rows(bank), size, ad_context_threads(ctx), best_bb, best_pr,
           100.0 * (best_pr / best_bb - 1.0), best_map,
           100.0 * ((best_pr + best_map) / best_bb - 1.0));
    free(map);
    ad_input_free(&in);
    ad_image_free(&ref);
    ad_image_free(&test);
    ad_bank_free(bank);
    ad_context_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    char model = 's', tmpdir[512] = "/tmp", threads_s[64] = "1,2";
    int size = 448, runs = 5, predict = 0;
    const char *write_only = NULL; /* --write-model PATH: write the random checkpoint, exit */
    static const struct option opts[] = {
        {"write-model", required_argument, 0, 'w'},
        {"predict", no_argument, 0, 'p'},
        {"model", required_argument, 0, 'm'},
        {"size", required_argument, 0, 's'},
        {"runs", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'},
        {"tmp", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "m:s:r:t:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg[0]; break;
        case 's': size = atoi(optarg); break;
        case 'r': runs = atoi(optarg); break;
        case 't': snprintf(threads_s, sizeof threads_s, "%s", optarg); break;
        case 'd': snprintf(tmpdir, sizeof tmpdir, "%s", optarg); break;
        case 'p': predict = 1; break;
        case 'w': write_only = optarg; break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: bench_backbone [--model s|b|l|g] [--size 448] [--runs 5] "
                    "[--threads 1,2] [--tmp DIR] [--predict] [--write-model PATH]\n"
                    "--write-model: only write the random checkpoint to PATH (kept)\n"
                    "--predict: also time the whole 1-shot agnostic predict (8 rotations,\n"
                    "  bank of 8 x N patches) of a 1024x1024 image at --size, against the\n"
                    "  backbone alone, with the last --threads value\n");
            return c == 'h' ? 0 : 2;
        }
    }
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (shapes[i].name == model) sh = &shapes[i];
    if (!sh || size < 14 || size % 14 || runs < 1) {
        fprintf(stderr, "bench_backbone: bad --model, --size (multiple of 14) or --runs\n");
        return 2;
    }

    if (write_only) return write_model(write_only, sh) ? 1 : 0;
    char path[600];
    snprintf(path, sizeof path, "%s/ad_bench_%ld_%s.safetensors", tmpdir, (long)getpid(), sh->hub);
    double t0 = now();
    if (write_model(path, sh)) {
        remove(path);
        return 1;
    }
    double t_write = now() - t0;
    long rss_before = peak_rss_mb();
    t0 = now();
    ad_model *m = ad_model_load(path);
    double t_load = now() - t0;
    remove(path); /* the weights are in memory now */
    if (!m) {
        fprintf(stderr, "bench_backbone: %s\n", ad_errmsg());
        return 1;
    }
    ad_model_info info = ad_model_get_info(m);
    double flops = count_flops(&info, size);
    printf("model %s (%s, %llu params) written in %.1f s, loaded in %.2f s; input %dx%d, "
           "%d tokens, %.1f GFLOP per image\n",
           info.name, sh->hub, (unsigned long long)info.n_params, t_write, t_load, size, size,
           1 + info.n_registers + (size / 14) * (size / 14), flops / 1e9);

    ad_input in = {size, size, malloc(sizeof(float) * 3 * size * size)};
    if (!in.data) return 1;
    for (int i = 0; i < 3 * size * size; i++) in.data[i] = 2.0f * rnd();

    char *save = NULL;
    int last_threads = 2;
    for (char *tok = strtok_r(threads_s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        ad_context_params cp = ad_context_default_params();
        cp.n_threads = atoi(tok);
        last_threads = cp.n_threads;
        ad_context *ctx = ad_context_new(m, cp);
        ad_features f = {0};
        if (!ctx || ad_extract(ctx, &in, &f) != AD_OK) { /* warm-up: scratch, pos-embed cache */
            fprintf(stderr, "bench_backbone: %s\n", ad_errmsg());
            return 1;
        }
        ad_features_free(&f);
        double best = INFINITY, sum = 0;
        for (int r = 0; r < runs; r++) {
            t0 = now();
            ad_extract(ctx, &in, &f);
            double dt = now() - t0;
            ad_features_free(&f);
            sum += dt;
            if (dt < best) best = dt;
        }
        printf("threads %d: %.3f s/image best, %.3f mean of %d; %.1f GFLOP/s effective\n",
               ad_context_threads(ctx), best, sum / runs, runs, flops / best / 1e9);
        ad_context_free(ctx);
    }
    printf("peak RSS %ld MB (%ld MB before loading the weights)\n", peak_rss_mb(), rss_before);
    if (predict && bench_predict(m, size, runs, last_threads)) return 1;
    free(in.data);
    ad_model_free(m);
    return 0;
}
