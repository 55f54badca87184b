/* Presets reproduce the original's per-category tables (docs/design.md "Presets";
 * AD src/utils.py get_dataset_info): which MVTec AD / VisA categories are masked and rotated per preset; unknown
 * categories and datasets get the dataset-independent answer; unknown presets are refused with
 * the list of valid ones. The expectations are written out from A8's prose, independently of the
 * library's tables. */
#include "anomalydino.h"
#include "testutil.h"

#include <string.h>

static const char *const mvtec[] = {"bottle", "cable",  "capsule",    "carpet",     "grid",
                                    "hazelnut", "leather", "metal_nut", "pill",     "screw",
                                    "tile",   "toothbrush", "transistor", "wood", "zipper"};
static const char *const visa[] = {"candle", "capsules",  "cashew",    "chewinggum",
                                   "fryum",  "macaroni1", "macaroni2", "pcb1",
                                   "pcb2",   "pcb3",      "pcb4",      "pipe_fryum"};

static int is_one_of(const char *c, const char *list)
{
    /* list: space-separated names */
    size_t n = strlen(c);
    for (const char *p = list; (p = strstr(p, c)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

static void expect(const char *preset, const char *ds, const char *cat, int want_mask, int want_rot)
{
    int m = -1, r = -1;
    ad_status st = ad_preset_lookup(preset, ds, cat, &m, &r);
    CHECK(st == AD_OK, "%s/%s/%s: %s", preset, ds, cat, ad_errmsg());
    CHECK(m == want_mask && r == want_rot, "%s/%s/%s: mask %d rotate %d, expected %d %d", preset, ds,
          cat, m, r, want_mask, want_rot);
}

int main(void)
{
    const char *mvtec_masked = "capsule hazelnut pill screw toothbrush";
    const char *mvtec_informed_rot = "hazelnut screw";
    int cases = 0;
    for (size_t i = 0; i < sizeof mvtec / sizeof mvtec[0]; i++) {
        const char *c = mvtec[i];
        int tm = is_one_of(c, mvtec_masked), ir = is_one_of(c, mvtec_informed_rot);
        expect("agnostic", "mvtec", c, tm, 1);
        expect("informed", "mvtec", c, tm, ir);
        expect("masking_only", "mvtec", c, tm, 0);
        expect("informed_no_mask", "mvtec", c, 0, ir);
        expect("agnostic_no_mask", "mvtec", c, 0, 1);
        expect("force_no_mask_no_rotation", "mvtec", c, 0, 0);
        expect("force_mask_no_rotation", "mvtec", c, 1, 0);
        expect("force_no_mask_rotation", "mvtec", c, 0, 1);
        expect("force_mask_rotation", "mvtec", c, 1, 1);
        cases += 9;
    }
    for (size_t i = 0; i < sizeof visa / sizeof visa[0]; i++) {
        const char *c = visa[i];
        expect("agnostic", "visa", c, 1, 1);
        expect("informed", "visa", c, 1, 0);
        expect("masking_only", "visa", c, 1, 0);
        expect("informed_no_mask", "visa", c, 0, 0);
        expect("agnostic_no_mask", "visa", c, 0, 1);
        expect("force_no_mask_no_rotation", "visa", c, 0, 0);
        expect("force_mask_no_rotation", "visa", c, 1, 0);
        expect("force_no_mask_rotation", "visa", c, 0, 1);
        expect("force_mask_rotation", "visa", c, 1, 1);
        cases += 9;
    }
    /* The dataset names are case-insensitive (the original spells them MVTec / VisA). */
    expect("agnostic", "MVTec", "screw", 1, 1);
    expect("informed", "VisA", "pcb1", 1, 0);
    /* A category of one dataset looked up in the other is unknown there. */
    expect("informed", "visa", "screw", 0, 0);
    expect("agnostic", "mvtec", "pcb1", 0, 1);
    /* Unknown category / a user's own folder: not masked; rotation only where the preset rotates
     * everything; force_* as always. */
    const char *dsets[] = {"mvtec", "visa", "folder", NULL};
    for (int i = 0; i < 4; i++) {
        expect("agnostic", dsets[i], "my_part", 0, 1);
        expect("informed", dsets[i], "my_part", 0, 0);
        expect("masking_only", dsets[i], "my_part", 0, 0);
        expect("agnostic_no_mask", dsets[i], NULL, 0, 1);
        expect("force_mask_rotation", dsets[i], "my_part", 1, 1);
        expect("force_mask_no_rotation", dsets[i], "", 1, 0);
        cases += 6;
    }
    printf("%d preset/dataset/category cases checked\n", cases + 4);

    /* Unknown preset: AD_E_ARG, outputs untouched, the message lists the valid presets. */
    int m = 7, r = 7;
    ad_status st = ad_preset_lookup("agnostik", "mvtec", "screw", &m, &r);
    CHECK(st == AD_E_ARG, "unknown preset -> %s", ad_status_name(st));
    CHECK(m == 7 && r == 7, "outputs written on failure (%d %d)", m, r);
    CHECK(strstr(ad_errmsg(), "agnostik") && strstr(ad_errmsg(), "masking_only") &&
              strstr(ad_errmsg(), "force_mask_rotation"),
          "message: %s", ad_errmsg());
    printf("unknown preset message: %s\n", ad_errmsg());
    CHECK(ad_preset_lookup(NULL, "mvtec", "screw", &m, &r) == AD_E_ARG, "NULL preset accepted");
    CHECK(ad_preset_lookup("Agnostic", "mvtec", "screw", &m, &r) == AD_E_ARG,
          "preset names are exact, as the original's argparse values");
    /* Either output may be omitted. */
    CHECK_OK(ad_preset_lookup("informed", "mvtec", "screw", NULL, &r));
    CHECK(r == 1, "rotate only: %d", r);
    return t_done("test_presets");
}
