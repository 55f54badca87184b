/* Writes the small synthetic mask seeds of fuzz/corpus/mask (BMP and TIFF layouts a mask of a
 * real dataset may have):
 *   cc fuzz/make_mask_seeds.c -ltiff -lm -o /tmp/make_mask_seeds && /tmp/make_mask_seeds fuzz/corpus
 * Deterministic; the generated files are committed, this is how they were made. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

#define W 24
#define H 16
static const char *dir;

/* 0/255 blob, or label values 0/1/2 (instance masks) */
static unsigned char val(int x, int y, int label)
{
    int in = (x - 10) * (x - 10) + (y - 7) * (y - 7) < 30;
    int in2 = x > 18 && y > 10;
    if (label) return (unsigned char)(in ? 1 : in2 ? 2 : 0);
    return (unsigned char)(in || in2 ? 255 : 0);
}

static FILE *open_out(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/mask/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) { perror(p); exit(1); }
    return f;
}

static void put16(FILE *f, unsigned v) { fputc(v & 255, f); fputc(v >> 8 & 255, f); }
static void put32(FILE *f, uint32_t v) { put16(f, v & 0xffff); put16(f, v >> 16); }

/* BMP by hand: bpp 1, 4, 8 (palette), 24, 32 (BI_BITFIELDS), RLE8, top-down. */
static void bmp(const char *name, int bpp, int rle8, int topdown, int label)
{
    FILE *f = open_out(name);
    int ncol = bpp <= 8 ? 1 << bpp : 0;
    unsigned char *rows = calloc(1, 64 * H * 8);
    size_t dlen = 0;
    int stride = ((W * bpp + 31) / 32) * 4;
    if (rle8) {
        for (int r = 0; r < H; r++) {
            int y = topdown ? r : H - 1 - r;
            for (int x = 0; x < W;) {
                int v = val(x, y, 1), n = 1;
                while (x + n < W && n < 255 && val(x + n, y, 1) == v) n++;
                rows[dlen++] = (unsigned char)n;
                rows[dlen++] = (unsigned char)v;
                x += n;
            }
            rows[dlen++] = 0;
            rows[dlen++] = r == H - 1 ? 1 : 0; /* end of line / of bitmap */
        }
    } else {
        for (int r = 0; r < H; r++) {
            int y = topdown ? r : H - 1 - r;
            unsigned char *row = rows + (size_t)r * stride;
            for (int x = 0; x < W; x++) {
                unsigned v = val(x, y, label);
                if (bpp == 1) row[x / 8] |= (unsigned char)((v ? 1 : 0) << (7 - x % 8));
                else if (bpp == 4) row[x / 2] |= (unsigned char)((label ? v : v >> 4) << (x % 2 ? 0 : 4));
                else if (bpp == 8) row[x] = (unsigned char)v;
                else if (bpp == 24) memset(row + 3 * x, (int)v, 3);
                else { memset(row + 4 * x, (int)v, 3); row[4 * x + 3] = 255; }
            }
        }
        dlen = (size_t)stride * H;
    }
    int hdr = 14 + 40 + (bpp == 32 ? 12 : 0) + 4 * ncol;
    fputc('B', f); fputc('M', f);
    put32(f, (uint32_t)(hdr + dlen)); put32(f, 0); put32(f, (uint32_t)hdr);
    put32(f, 40); put32(f, W); put32(f, topdown ? (uint32_t)-H : H);
    put16(f, 1); put16(f, (unsigned)bpp);
    put32(f, rle8 ? 1 : bpp == 32 ? 3 : 0); put32(f, (uint32_t)dlen);
    put32(f, 2835); put32(f, 2835); put32(f, (uint32_t)ncol); put32(f, 0);
    if (bpp == 32) { put32(f, 0xff0000); put32(f, 0xff00); put32(f, 0xff); }
    for (int i = 0; i < ncol; i++) {
        /* label palettes map index i to grey i; others spread over 0..255 */
        int g = (label || rle8) ? i : ncol == 2 ? i * 255 : i * 255 / (ncol - 1);
        fputc(g, f); fputc(g, f); fputc(g, f); fputc(0, f);
    }
    fwrite(rows, 1, dlen, f);
    free(rows);
    fclose(f);
}

static void stb_write(void *ctx, void *data, int size) { fwrite(data, 1, (size_t)size, ctx); }

static void tiff(const char *name, int bps, int spp, int photometric, int compression,
                 int rows_per_strip, int tiled, int big_endian, int label, int fmt_float)
{
    char p[512];
    snprintf(p, sizeof p, "%s/mask/%s", dir, name);
    TIFF *t = TIFFOpen(p, big_endian ? "wb" : "wl");
    if (!t) exit(1);
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, W);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, H);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, spp);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, bps);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, photometric);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_COMPRESSION, compression);
    if (fmt_float) TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_IEEEFP);
    if (photometric == PHOTOMETRIC_PALETTE) {
        uint16_t r[256], g[256], b[256];
        for (int i = 0; i < 256; i++) r[i] = g[i] = b[i] = (uint16_t)(i * 257);
        TIFFSetField(t, TIFFTAG_COLORMAP, r, g, b);
    }
    int bytes_px = bps * spp / 8;
    size_t stride = bps == 1 ? (W + 7) / 8 : (size_t)W * bytes_px;
    unsigned char *img = calloc(H, stride);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            unsigned v = val(x, y, label);
            unsigned char *q = img + y * stride;
            if (bps == 1) { if (v) q[x / 8] |= (unsigned char)(0x80 >> (x % 8)); }
            else if (fmt_float) { float fv = v / 255.0f; memcpy(q + 4 * x, &fv, 4); }
            else if (bps == 16) { uint16_t s = (uint16_t)(v * 257); memcpy(q + 2 * x, &s, 2); }
            else memset(q + x * bytes_px, (int)v, (size_t)bytes_px);
        }
    if (tiled) {
        TIFFSetField(t, TIFFTAG_TILEWIDTH, 16);
        TIFFSetField(t, TIFFTAG_TILELENGTH, 16);
        size_t ts = TIFFTileSize(t);
        unsigned char *tile = calloc(1, ts);
        for (int ty = 0; ty < H; ty += 16)
            for (int tx = 0; tx < W; tx += 16) {
                memset(tile, 0, ts);
                for (int y = 0; y < 16 && ty + y < H; y++)
                    for (int x = 0; x < 16 && tx + x < W; x++)
                        memcpy(tile + (y * 16 + x) * bytes_px,
                               img + (ty + y) * stride + (tx + x) * bytes_px, (size_t)bytes_px);
                TIFFWriteTile(t, tile, (uint32_t)tx, (uint32_t)ty, 0, 0);
            }
        free(tile);
    } else {
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, rows_per_strip);
        for (int y = 0; y < H; y++) TIFFWriteScanline(t, img + y * stride, (uint32_t)y, 0);
    }
    free(img);
    TIFFClose(t);
}

int main(int argc, char **argv)
{
    dir = argc > 1 ? argv[1] : "fuzz/corpus";
    bmp("bmp1_palette.bmp", 1, 0, 0, 0);
    bmp("bmp4_palette.bmp", 4, 0, 0, 0);
    bmp("bmp8_label_values.bmp", 8, 0, 0, 1);
    bmp("bmp8_topdown.bmp", 8, 0, 1, 0);
    bmp("bmp8_rle8.bmp", 8, 1, 0, 1);
    bmp("bmp24.bmp", 24, 0, 0, 0);
    bmp("bmp32_bitfields.bmp", 32, 0, 0, 0);
    /* as the tests write them (stb_image_write, grey 8-bit -> 24-bit BMP) */
    unsigned char m[W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) m[y * W + x] = val(x, y, 1);
    FILE *f = open_out("stb_label.bmp");
    stbi_write_bmp_to_func(stb_write, f, W, H, 1, m);
    fclose(f);
    tiff("tiff8_none.tif", 8, 1, PHOTOMETRIC_MINISBLACK, COMPRESSION_NONE, 4, 0, 0, 0, 0);
    tiff("tiff8_deflate.tif", 8, 1, PHOTOMETRIC_MINISBLACK, COMPRESSION_ADOBE_DEFLATE, 8, 0, 0, 0, 0);
    tiff("tiff8_lzw_label.tif", 8, 1, PHOTOMETRIC_MINISBLACK, COMPRESSION_LZW, 16, 0, 0, 1, 0);
    tiff("tiff8_packbits_be.tif", 8, 1, PHOTOMETRIC_MINISBLACK, COMPRESSION_PACKBITS, 5, 0, 1, 0, 0);
    tiff("tiff8_tiled.tif", 8, 1, PHOTOMETRIC_MINISBLACK, COMPRESSION_NONE, 0, 1, 0, 0, 0);
    tiff("tiff1_g4.tif", 1, 1, PHOTOMETRIC_MINISWHITE, COMPRESSION_CCITTFAX4, H, 0, 0, 0, 0);
    tiff("tiff1_g3.tif", 1, 1, PHOTOMETRIC_MINISBLACK, COMPRESSION_CCITTFAX3, H, 0, 0, 0, 0);
    tiff("tiff1_none.tif", 1, 1, PHOTOMETRIC_MINISBLACK, COMPRESSION_NONE, H, 0, 0, 0, 0);
    tiff("tiff16.tif", 16, 1, PHOTOMETRIC_MINISBLACK, COMPRESSION_NONE, H, 0, 0, 0, 0);
    tiff("tiff_rgb.tif", 8, 3, PHOTOMETRIC_RGB, COMPRESSION_LZW, H, 0, 0, 0, 0);
    tiff("tiff_palette.tif", 8, 1, PHOTOMETRIC_PALETTE, COMPRESSION_NONE, H, 0, 0, 0, 0);
    tiff("tiff_f32_map.tif", 32, 1, PHOTOMETRIC_MINISBLACK, COMPRESSION_NONE, H, 0, 0, 0, 1);
    return 0;
}
