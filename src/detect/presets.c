/* Per-category masking / rotation presets of the original (docs/design.md,
 * "Presets"; AD src/utils.py get_dataset_info). */
#include "core/core.h"

#include <string.h>
#include <strings.h>

/* MVTec AD categories that pass the paper's "masking test" (Fig. 2). */
static const char *const mvtec_masked[] = {"capsule", "hazelnut", "pill", "screw", "toothbrush"};
/* Rotation of `informed` on MVTec AD: the categories whose parts appear in any orientation. */
static const char *const mvtec_informed_rot[] = {"hazelnut", "screw"};
/* VisA: every category is masked (all but the *_no_mask presets). */
static const char *const visa_categories[] = {"candle",    "capsules",  "cashew", "chewinggum",
                                              "fryum",     "macaroni1", "macaroni2", "pcb1",
                                              "pcb2",      "pcb3",      "pcb4",   "pipe_fryum"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static int in_list(const char *cat, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(cat, list[i]) == 0) return 1;
    return 0;
}

/* Masking as the paper's table: on for the listed categories, off elsewhere. */
static int table_mask(int ds, const char *cat)
{
    if (ds == 1) return in_list(cat, mvtec_masked, N_OF(mvtec_masked));
    if (ds == 2) return in_list(cat, visa_categories, N_OF(visa_categories));
    return 0;
}

typedef enum { ROT_ALL, ROT_INFORMED, ROT_NONE } rot_rule;
typedef enum { MASK_TABLE, MASK_NONE, MASK_ALL } mask_rule;

static const struct {
    const char *name;
    mask_rule mask;
    rot_rule rot;
} presets[] = {
    {"agnostic", MASK_TABLE, ROT_ALL},
    {"informed", MASK_TABLE, ROT_INFORMED},
    {"masking_only", MASK_TABLE, ROT_NONE},
    {"informed_no_mask", MASK_NONE, ROT_INFORMED},
    {"agnostic_no_mask", MASK_NONE, ROT_ALL},
    {"force_no_mask_no_rotation", MASK_NONE, ROT_NONE},
    {"force_mask_no_rotation", MASK_ALL, ROT_NONE},
    {"force_no_mask_rotation", MASK_NONE, ROT_ALL},
    {"force_mask_rotation", MASK_ALL, ROT_ALL},
};

ad_status ad_preset_lookup(const char *preset, const char *dataset, const char *category,
                           int *mask, int *rotate)
{
    if (!preset) return adi_fail(AD_E_ARG, "preset: NULL name");
    size_t p = 0;
    while (p < N_OF(presets) && strcmp(presets[p].name, preset) != 0) p++;
    if (p == N_OF(presets))
        return adi_fail(AD_E_ARG,
                       "unknown preset '%s' (valid: agnostic, informed, masking_only, "
                       "informed_no_mask, agnostic_no_mask, force_no_mask_no_rotation, "
                       "force_mask_no_rotation, force_no_mask_rotation, force_mask_rotation)",
                       preset);
    /* Other dataset names (a user's own folder) get the dataset-independent answer. */
    int ds = !dataset ? 0 : strcasecmp(dataset, "mvtec") == 0 ? 1 : strcasecmp(dataset, "visa") == 0 ? 2 : 0;
    if (!category) category = "";
    int m = presets[p].mask == MASK_ALL ? 1 : presets[p].mask == MASK_NONE ? 0 : table_mask(ds, category);
    int r = presets[p].rot == ROT_ALL    ? 1
            : presets[p].rot == ROT_NONE ? 0
            : ds == 1 ? in_list(category, mvtec_informed_rot, N_OF(mvtec_informed_rot))
                      : 0;
    if (mask) *mask = m;
    if (rotate) *rotate = r;
    return AD_OK;
}
