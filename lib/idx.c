/* idx.c - LeCun's IDX format (MNIST): a big-endian header, then raw unsigned bytes.
 *   bytes 0-1  zero
 *   byte  2    type code (0x08 = unsigned byte; the only one accepted)
 *   byte  3    number of dimensions
 *   then one big-endian u32 per dimension, then the data, C order. */
#include "input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *idx_type_name(int t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
    }
}

int fz_idx_parse(const unsigned char *buf, size_t len, int want_ndim, fz_idx *out,
                 fz_err *err)
{
    memset(out, 0, sizeof *out);
    if (len < 4)
        return fz_fail(err, FZ_EDATA, "truncated IDX header (expected at least 4 bytes, got %zu)",
                       len);
    if (buf[0] != 0 || buf[1] != 0)
        return fz_fail(err, FZ_EDATA,
                       "not an IDX file (magic 0x%02x%02x%02x%02x, expected 0x000008NN)", buf[0],
                       buf[1], buf[2], buf[3]);
    if (buf[2] != 0x08)
        return fz_fail(err, FZ_EDATA, "IDX type code 0x%02x (%s) is not supported (expected 0x08, "
                       "unsigned byte)", buf[2], idx_type_name(buf[2]));
    int ndim = buf[3];
    if (ndim < 1 || ndim > 4)
        return fz_fail(err, FZ_EDATA, "IDX has %d dimensions (expected 1 to 4)", ndim);
    if (want_ndim && ndim != want_ndim)
        return fz_fail(err, FZ_EDATA, "IDX has %d dimensions (expected %d: magic 0x%08x)", ndim,
                       want_ndim, 0x800 + want_ndim);
    size_t hdr = 4 + 4 * (size_t)ndim;
    if (len < hdr)
        return fz_fail(err, FZ_EDATA, "truncated IDX header (expected %zu bytes, got %zu)", hdr,
                       len);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        uint32_t v = fz_be32(buf + 4 + 4 * i);
        if (v > FZ_IDX_MAX_DIM)
            return fz_fail(err, FZ_EDATA, "IDX dimension %d is %u (limit %u)", i, v,
                           FZ_IDX_MAX_DIM);
        out->dim[i] = v;
        if (fz_mul_size(count, v, &count) || count > FZ_INPUT_MAX_BYTES)
            return fz_fail(err, FZ_EDATA, "IDX sizes overflow (over %zu bytes of data)",
                           FZ_INPUT_MAX_BYTES);
    }
    size_t have = len - hdr;
    if (have < count)
        return fz_fail(err, FZ_EDATA, "truncated IDX data (expected %zu bytes, got %zu)", count,
                       have);
    if (have > count)
        return fz_fail(err, FZ_EDATA, "IDX has %zu trailing bytes after the %zu data bytes",
                       have - count, count);
    out->ndim = ndim;
    out->count = count;
    out->data = buf + hdr;
    return 0;
}

static int classes_digits(fz_dataset *ds, int32_t maxlab, fz_err *err)
{
    size_t k = (size_t)maxlab + 1;
    ds->classes = fz_calloc(k, sizeof *ds->classes, err);
    if (!ds->classes) return -1;
    ds->nclasses = k;
    for (size_t i = 0; i < k; i++) {
        char tmp[24];
        snprintf(tmp, sizeof tmp, "%zu", i);
        ds->classes[i] = fz_malloc(strlen(tmp) + 1, err);
        if (!ds->classes[i]) return -1;
        strcpy(ds->classes[i], tmp);
    }
    return 0;
}

int fz_load_idx(const char *img_path, const char *img_pat, const char *lab_path,
                const char *lab_pat, fz_dataset *ds, fz_err *err)
{
    memset(ds, 0, sizeof *ds);
    fz_blob bl[2] = {{0}};
    if (!img_pat) img_pat = "*images*";
    if (!lab_pat) lab_pat = "*labels*";
    int same = lab_path && strcmp(img_path, lab_path) == 0;
    const char *pats[2] = {img_pat, lab_pat};
    if (same) {
        if (fz_input_find(img_path, pats, 2, bl, err)) return -1;
    } else {
        if (fz_input_find(img_path, pats, 1, &bl[0], err)) return -1;
        if (lab_path && fz_input_find(lab_path, pats + 1, 1, &bl[1], err)) {
            fz_blob_free(&bl[0]);
            return -1;
        }
    }
    fz_idx im, lb;
    const char *where = img_path;
    if (fz_idx_parse(bl[0].data, bl[0].len, 3, &im, err)) goto fail_img;
    if (im.dim[1] == 0 || im.dim[2] == 0 || im.dim[1] > FZ_IMAGE_MAX_SIDE ||
        im.dim[2] > FZ_IMAGE_MAX_SIDE) {
        fz_fail(err, FZ_EDATA, "IDX image size %ux%u is out of range (1 to %d)", im.dim[1],
                im.dim[2], FZ_IMAGE_MAX_SIDE);
        goto fail_img;
    }
    ds->n = im.dim[0];
    ds->d = (size_t)im.dim[1] * im.dim[2];
    ds->ndim = 3;
    ds->shape[0] = 1;
    ds->shape[1] = im.dim[1];
    ds->shape[2] = im.dim[2];
    ds->pixel_max = 255;
    ds->x8 = (unsigned char *)im.data;
    ds->owned = bl[0].data;
    bl[0].data = NULL;
    ds->label = fz_malloc(ds->n * sizeof *ds->label, err);
    if (!ds->label) goto fail;
    if (bl[1].name) {
        where = lab_path;
        if (fz_idx_parse(bl[1].data, bl[1].len, 1, &lb, err)) goto fail_lab;
        if (lb.dim[0] != im.dim[0]) {
            fz_fail(err, FZ_EDATA, "%u labels for %u images", lb.dim[0], im.dim[0]);
            goto fail_lab;
        }
        int32_t maxlab = 0;
        for (size_t i = 0; i < ds->n; i++) {
            ds->label[i] = lb.data[i];
            if (lb.data[i] > maxlab) maxlab = lb.data[i];
        }
        ds->has_labels = 1;
        if (ds->n && classes_digits(ds, maxlab, err)) goto fail;
    } else {
        for (size_t i = 0; i < ds->n; i++) ds->label[i] = -1;
    }
    {
        size_t sl = strlen(img_path) + strlen(bl[0].name) + 64;
        if (lab_path) sl += strlen(lab_path) + strlen(bl[1].name);
        ds->source = fz_malloc(sl, err);
        if (!ds->source) goto fail;
        if (!lab_path)
            snprintf(ds->source, sl, "idx:%s:%s", fz_in_name(img_path), bl[0].name);
        else if (same)
            snprintf(ds->source, sl, "idx:%s:%s,%s", fz_in_name(img_path), bl[0].name,
                     bl[1].name);
        else
            snprintf(ds->source, sl, "idx:%s:%s+%s:%s", fz_in_name(img_path), bl[0].name,
                     fz_in_name(lab_path), bl[1].name);
    }
    fz_blob_free(&bl[0]);
    fz_blob_free(&bl[1]);
    return 0;
fail_lab:
    fz_err_prefix(err, bl[1].name);
    if (strcmp(bl[1].name, fz_in_name(lab_path)) != 0) fz_err_prefix(err, fz_in_name(where));
    goto fail;
fail_img:
    fz_err_prefix(err, bl[0].name);
    if (strcmp(bl[0].name, fz_in_name(img_path)) != 0) fz_err_prefix(err, fz_in_name(where));
fail:
    fz_blob_free(&bl[0]);
    fz_blob_free(&bl[1]);
    fz_dataset_free(ds);
    return -1;
}
