/* Writes the small synthetic image seeds of fuzz/corpus/{png,jpeg} (every layout the decoder
 * handles): cc fuzz/make_seeds.c -lpng -ljpeg -o /tmp/make_seeds && /tmp/make_seeds fuzz/corpus
 * Deterministic; the generated files are committed, this is how they were made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <png.h>

static int uniform; /* 1: every pixel the same (the most compressible arithmetic-coded rows) */
static unsigned char px(int x, int y, int c)
{
    return uniform ? 128 : (unsigned char)(x * 37 + y * 11 + c * 80);
}

static void png_one(const char *dir, const char *name, int w, int h, int ctype, int depth,
                    int interlace, int with_text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/png/%s.png", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop i = png_create_info_struct(p);
    if (setjmp(png_jmpbuf(p))) exit(1);
    png_init_io(p, f);
    png_set_IHDR(p, i, w, h, depth, ctype, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[16];
        for (int k = 0; k < 16; k++) pal[k] = (png_color){(png_byte)(k * 16), (png_byte)(255 - k * 16), (png_byte)(k * 7)};
        png_set_PLTE(p, i, pal, 16);
        png_byte tr[2] = {0, 128};
        png_set_tRNS(p, i, tr, 2, NULL);
    }
    if (with_text) {
        png_text t[2];
        memset(t, 0, sizeof t);
        t[0].compression = PNG_TEXT_COMPRESSION_NONE;
        t[0].key = "Comment";
        t[0].text = "fuzz seed";
        t[1].compression = PNG_TEXT_COMPRESSION_zTXt;
        t[1].key = "Description";
        t[1].text = "a compressed text chunk";
        png_set_text(p, i, t, 2);
        png_set_gAMA(p, i, 0.45455);
    }
    png_write_info(p, i);
    int ch = ctype == PNG_COLOR_TYPE_RGB ? 3 : ctype == PNG_COLOR_TYPE_RGBA ? 4
           : ctype == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t rb = ((size_t)w * ch * depth + 7) / 8;
    unsigned char *row = calloc(rb, 1);
    int passes = png_set_interlace_handling(p);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++) {
            for (size_t b = 0; b < rb; b++) row[b] = px((int)b, y, 0);
            if (ctype == PNG_COLOR_TYPE_PALETTE && depth == 8)
                for (size_t b = 0; b < rb; b++) row[b] &= 15;
            png_write_row(p, row);
        }
    png_write_end(p, i);
    png_destroy_write_struct(&p, &i);
    free(row);
    fclose(f);
}

static void jpeg_one(const char *dir, const char *name, int w, int h, int comps, int progressive,
                     int arith, int sub420, int restart, int exif_orient)
{
    char path[512];
    snprintf(path, sizeof path, "%s/jpeg/%s.jpg", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 75, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    if (arith) c.arith_code = TRUE;
    if (comps == 3 && !sub420) {
        c.comp_info[0].h_samp_factor = c.comp_info[0].v_samp_factor = 1;
    }
    if (restart) c.restart_interval = (unsigned)restart;
    jpeg_start_compress(&c, TRUE);
    if (exif_orient) {
        unsigned char x[] = {'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
                             0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (unsigned char)exif_orient, 0, 0,
                             0, 0, 0, 0};
        jpeg_write_marker(&c, JPEG_APP0 + 1, x, sizeof x);
    }
    unsigned char *row = malloc((size_t)w * comps);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w; x++)
            for (int k = 0; k < comps; k++) row[x * comps + k] = px(x, (int)c.next_scanline, k);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *d = argc > 1 ? argv[1] : "fuzz/corpus";
    png_one(d, "rgb8", 7, 5, PNG_COLOR_TYPE_RGB, 8, 0, 0);
    png_one(d, "rgba8", 6, 4, PNG_COLOR_TYPE_RGBA, 8, 0, 1);
    png_one(d, "rgb16", 5, 3, PNG_COLOR_TYPE_RGB, 16, 0, 0);
    png_one(d, "rgba16_interlaced", 9, 9, PNG_COLOR_TYPE_RGBA, 16, 1, 0);
    png_one(d, "grey8", 8, 6, PNG_COLOR_TYPE_GRAY, 8, 0, 0);
    png_one(d, "grey1", 17, 3, PNG_COLOR_TYPE_GRAY, 1, 0, 0);
    png_one(d, "grey2", 9, 2, PNG_COLOR_TYPE_GRAY, 2, 0, 0);
    png_one(d, "grey4_interlaced", 11, 7, PNG_COLOR_TYPE_GRAY, 4, 1, 1);
    png_one(d, "grey16", 4, 4, PNG_COLOR_TYPE_GRAY, 16, 0, 0);
    png_one(d, "greyalpha8", 5, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 0);
    png_one(d, "palette8_trns", 6, 6, PNG_COLOR_TYPE_PALETTE, 8, 0, 0);
    png_one(d, "palette4", 10, 3, PNG_COLOR_TYPE_PALETTE, 4, 0, 1);
    jpeg_one(d, "rgb444", 16, 8, 3, 0, 0, 0, 0, 0);
    jpeg_one(d, "rgb420", 17, 9, 3, 0, 0, 1, 0, 0);
    jpeg_one(d, "grey", 9, 7, 1, 0, 0, 0, 0, 0);
    jpeg_one(d, "progressive", 24, 16, 3, 1, 0, 1, 0, 0);
    jpeg_one(d, "arith", 16, 16, 3, 0, 1, 1, 0, 0);
    jpeg_one(d, "arith_progressive", 16, 8, 1, 1, 1, 0, 0, 0);
    jpeg_one(d, "restart", 32, 16, 3, 0, 0, 1, 1, 0);
    jpeg_one(d, "cmyk", 8, 8, 4, 0, 0, 0, 0, 0);
    jpeg_one(d, "exif_orient6", 12, 5, 3, 0, 0, 0, 0, 6);
    jpeg_one(d, "exif_orient3", 5, 12, 1, 0, 0, 0, 0, 3);
    jpeg_one(d, "arith_tall_restart", 16, 96, 3, 0, 1, 1, 2, 0);
    jpeg_one(d, "arith_progressive_tall", 8, 80, 3, 1, 1, 1, 0, 0);
    uniform = 1;
    jpeg_one(d, "arith_uniform", 64, 256, 1, 0, 1, 0, 0, 0);
    jpeg_one(d, "arith_uniform_progressive", 32, 256, 3, 1, 1, 1, 0, 0);
    uniform = 0;
    return 0;
}
