/* ad_model: the weights plus the configuration the forward pass needs, and its public summary. */
#include "backbone/backbone.h"

#include <stdio.h>
#include <string.h>

/* Hub names of the four official sizes (dinov2 hubconf.py / vision_transformer.py vit_small,
 * vit_base, vit_large, vit_giant2): width and depth identify them. */
static const struct {
    int dim, depth;
    const char *name;
} known[] = {
    {384, 12, "vits14"},
    {768, 12, "vitb14"},
    {1024, 24, "vitl14"},
    {1536, 40, "vitg14"},
};

void bb_model_name(int dim, int depth, int n_registers, int patch, int pos_grid, char *out,
                   size_t n)
{
    snprintf(out, n, "custom");
    /* official checkpoints: 14x14 patches, 518/14 = 37 positions, 0 or 4 registers */
    if (patch != 14 || pos_grid != 37 || (n_registers != 0 && n_registers != 4)) return;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (dim == known[i].dim && depth == known[i].depth) {
            snprintf(out, n, "%s%s", known[i].name, n_registers ? "_reg4" : "");
            return;
        }
}

ad_model *ad_model_load(const char *path)
{
    if (!path) return adi_fail_null(AD_E_ARG, "ad_model_load: path is NULL");
    ad_model *m = adi_calloc(1, sizeof *m);
    if (!m) return NULL;
    if (adi_weights_load(path, &m->w) != AD_OK) {
        adi_free(m);
        return NULL;
    }
    const adi_weights *w = &m->w;
    /* The loader checks shapes; these are the assumptions of the forward pass itself. */
    if (w->dim < 1 || w->heads < 1 || w->dim % w->heads || w->depth < 1 || w->patch < 1 ||
        w->pos_grid < 1 || w->ffn_hidden < 1 || w->n_registers < 0 || !w->blocks) {
        adi_weights_free(&m->w);
        adi_free(m);
        return adi_fail_null(AD_E_FORMAT,
                            "%s: unsupported configuration (dim %d, heads %d, depth %d)", path,
                            w->dim, w->heads, w->depth);
    }
    bb_model_name(w->dim, w->depth, w->n_registers, w->patch, w->pos_grid, m->name, sizeof m->name);
    ad_model_info *in = &m->info;
    in->dim = w->dim;
    in->depth = w->depth;
    in->heads = w->heads;
    in->head_dim = w->dim / w->heads;
    in->ffn_hidden = w->ffn_hidden;
    in->swiglu = w->swiglu;
    in->n_registers = w->n_registers;
    in->patch_size = w->patch;
    in->pos_grid = w->pos_grid;
    /* dinov2 hub: _reg models are built with interpolate_antialias=True, offset 0; the others
     * with antialias False, offset 0.1 (docs/design.md, "Backbone") */
    in->pos_interp = w->n_registers ? AD_POS_ANTIALIAS : AD_POS_SCALE_FACTOR;
    in->format = m->w.format;
    in->dtype = m->w.dtype;
    in->name = m->name;
    in->n_params = w->n_params;
    in->fingerprint = w->fingerprint;
    return m;
}

void ad_model_free(ad_model *m)
{
    if (!m) return;
    adi_weights_free(&m->w);
    adi_free(m);
}

ad_model_info ad_model_get_info(const ad_model *m)
{
    ad_model_info z;
    memset(&z, 0, sizeof z);
    if (!m) return z;
    return m->info;
}
