/* fedfuse import dicom: a PACS export (any folder nesting) to images/<patient_id>.png and
 * image_manifest.csv. DCMTK decodes and renders (dicom_shim.cc); this file walks, filters,
 * maps to the hospital's patient ids, resamples and writes. No header value that identifies a
 * person is written or logged: the DICOM patient id and accession number are only looked up
 * in the mapping file, dates only order a patient's images. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dicom_shim.h"
#include "ingest_internal.h"

#define DICOMDIR_CLASS "1.2.840.10008.1.3.10"
#define MAX_DEPTH 64
#define MAX_PIXELS (64L * 1024 * 1024)

ff_dicom_opts ff_dicom_opts_default(void)
{
    ff_dicom_opts o;
    memset(&o, 0, sizeof o);
    o.window = FF_DICOM_WINDOW_AUTO;
    return o;
}

const char *ff_dicom_skip_name(ff_dicom_skip r)
{
    static const char *const names[FF_DICOM_SKIP_COUNT] = {
        "not DICOM",          "DICOMDIR",         "no pixel data",
        "modality not kept",  "body part not kept", "view position not kept",
        "not in the mapping file", "not grayscale", "multi-frame",
        "pixels not decodable", "later image of the same patient"};
    return (unsigned)r < FF_DICOM_SKIP_COUNT ? names[r] : "?";
}

/* One patient of the mapping file and what was written for it. */
typedef struct {
    char *pid;
    char order_key[160]; /* of the image written; "" = none yet */
    char modality[20], body_part[68], view[20], photometric[20], xfer[68];
    int bits, rows, cols, out_rows, out_cols;
    const char *window;
} patient;

typedef struct {
    const ff_dicom_opts *o;
    const char *out_dir;
    ff_dicom_report *rep;
    ff_strmap keys; /* dicom_patient_id or accession_number -> patient index */
    int by_accession;
    patient *pat;
    size_t npat, cappat;
    int col_pid, col_key;
    const char *map_shown;
    uint8_t *pix;
    size_t pixcap;
    float *fsrc, *fdst;
    size_t fsrccap, fdstcap;
} dicom_ctx;

static int on_map_row(const ff_csv_row *r, void *vctx)
{
    dicom_ctx *c = vctx;
    if (r->line == 1) {
        int pid = -1, dpid = -1, acc = -1;
        for (int i = 0; i < r->nfields; i++) {
            if (strcmp(r->fields[i], "patient_id") == 0)
                pid = i;
            else if (strcmp(r->fields[i], "dicom_patient_id") == 0)
                dpid = i;
            else if (strcmp(r->fields[i], "accession_number") == 0)
                acc = i;
        }
        if (pid < 0)
            return ff_error(FF_EFORMAT, "%s:1: missing required column 'patient_id'",
                            c->map_shown);
        if ((dpid < 0) == (acc < 0))
            return ff_error(FF_EFORMAT,
                            "%s:1: needs exactly one of the columns 'dicom_patient_id' or "
                            "'accession_number'", c->map_shown);
        c->col_pid = pid;
        c->col_key = dpid >= 0 ? dpid : acc;
        c->by_accession = acc >= 0;
        return FF_OK;
    }
    int need = (c->col_pid > c->col_key ? c->col_pid : c->col_key) + 1;
    if (r->nfields < need)
        return ff_error(FF_EFORMAT, "%s:%ld: wrong number of fields", c->map_shown, r->line);
    const char *pid = r->fields[c->col_pid], *key = r->fields[c->col_key];
    if (!ff_ingest_valid_id(pid))
        return ff_error(FF_EFORMAT,
                        "%s:%ld: patient_id must be 1-64 bytes without '/', '\\', control "
                        "bytes or a leading '.'", c->map_shown, r->line);
    if (!key[0])
        return ff_error(FF_EFORMAT, "%s:%ld: empty %s", c->map_shown, r->line,
                        c->by_accession ? "accession_number" : "dicom_patient_id");
    int at = ff_strmap_get(&c->keys, key);
    if (at >= 0)
        return ff_error(FF_EFORMAT, "%s:%ld: %s appears on an earlier line", c->map_shown,
                        r->line, c->by_accession ? "accession_number" : "dicom_patient_id");
    /* Several keys may name one patient (several accession numbers of one visit). */
    size_t idx = c->npat;
    for (size_t i = 0; i < c->npat; i++) /* small files; a patient index would be faster */
        if (strcmp(c->pat[i].pid, pid) == 0) {
            idx = i;
            break;
        }
    if (idx == c->npat) {
        if (ff_grow(&c->pat, &c->cappat, c->npat + 1, sizeof *c->pat) != FF_OK)
            return ff_error_prefix(FF_ENOMEM, "%s: ", c->map_shown);
        memset(&c->pat[idx], 0, sizeof c->pat[idx]);
        if (!(c->pat[idx].pid = strdup(pid)))
            return ff_error(FF_ENOMEM, "%s: out of memory", c->map_shown);
        c->npat++;
    }
    return ff_strmap_put(&c->keys, key, (int)idx);
}

static int in_list(const char *v, const char *const *list, int n)
{
    if (n == 0)
        return 1;
    for (int i = 0; i < n; i++)
        if (strcasecmp(v, list[i]) == 0)
            return 1;
    return 0;
}

static int grow(void **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return FF_OK;
    void *p = realloc(*buf, need);
    if (!p)
        return ff_error(FF_ENOMEM, "out of memory for an image of %zu bytes", need);
    *buf = p;
    *cap = need;
    return FF_OK;
}

/* Letterboxes a rows x cols 8-bit image into size x size: scaled so the longer side is size,
 * area averaging (ff_resize_area), centred, black around. */
static int resample(dicom_ctx *c, int rows, int cols, int size, uint8_t *out, int *dh, int *dw)
{
    double s = (double)size / (rows > cols ? rows : cols);
    int h = (int)(rows * s + 0.5), w = (int)(cols * s + 0.5);
    h = h < 1 ? 1 : h > size ? size : h;
    w = w < 1 ? 1 : w > size ? size : w;
    size_t n = (size_t)rows * cols;
    int rc;
    if ((rc = grow((void **)&c->fsrc, &c->fsrccap, n * sizeof(float))) != FF_OK ||
        (rc = grow((void **)&c->fdst, &c->fdstcap, (size_t)h * w * sizeof(float))) != FF_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        c->fsrc[i] = c->pix[i];
    ff_resize_area(c->fsrc, rows, cols, c->fdst, h, w);
    memset(out, 0, (size_t)size * size);
    int y0 = (size - h) / 2, x0 = (size - w) / 2;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v = c->fdst[(size_t)y * w + x];
            out[(size_t)(y + y0) * size + x + x0] = (uint8_t)(v + 0.5f);
        }
    *dh = h;
    *dw = w;
    return FF_OK;
}

static int write_png(dicom_ctx *c, const char *pid, const uint8_t *px, int h, int w)
{
    char path[4096], tmp[4200];
    int rc;
    size_t n = (size_t)h * w;
    if ((rc = grow((void **)&c->fdst, &c->fdstcap, n * sizeof(float))) != FF_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        c->fdst[i] = px[i] / 255.0f;
    snprintf(path, sizeof path, "%s/images/%s.png", c->out_dir, pid);
    snprintf(tmp, sizeof tmp, "%s/images/.%s.png.tmp", c->out_dir, pid);
    if ((rc = ff_png_write_gray(tmp, c->fdst, h, w, 8, 0)) != FF_OK)
        return rc;
    if (rename(tmp, path) != 0)
        return ff_error(FF_EIO, "%s: cannot rename into place (%s)", path, strerror(errno));
    return FF_OK;
}

static int skip(dicom_ctx *c, ff_dicom_skip why, const char *shown, const char *detail)
{
    c->rep->skipped[why]++;
    if (c->o->strict && why != FF_DICOM_SKIP_MODALITY && why != FF_DICOM_SKIP_BODY_PART &&
        why != FF_DICOM_SKIP_VIEW && why != FF_DICOM_SKIP_LATER && why != FF_DICOM_SKIP_DICOMDIR)
        return ff_error(FF_EFORMAT, "%s: %s%s%s%s", shown, ff_dicom_skip_name(why),
                        detail && detail[0] ? " (" : "", detail ? detail : "",
                        detail && detail[0] ? ")" : "");
    return FF_OK;
}

static int one_file(dicom_ctx *c, const char *path, const char *shown, const char *name)
{
    c->rep->files++;
    if (strcmp(name, "DICOMDIR") == 0)
        return skip(c, FF_DICOM_SKIP_DICOMDIR, shown, NULL);
    ff_dcm *d = NULL;
    ff_dcm_info info;
    char msg[256];
    int st = ff_dcm_open(path, &d, &info, msg, sizeof msg);
    int rc = FF_OK;
    if (st == FF_DCM_NOT_DICOM)
        return skip(c, FF_DICOM_SKIP_NOT_DICOM, shown, msg);
    if (strcmp(info.sop_class, DICOMDIR_CLASS) == 0) {
        rc = skip(c, FF_DICOM_SKIP_DICOMDIR, shown, NULL);
        goto out;
    }
    if (st == FF_DCM_NO_PIXELS) {
        rc = skip(c, FF_DICOM_SKIP_NO_PIXELS, shown, NULL);
        goto out;
    }
    const ff_dicom_opts *o = c->o;
    if (!in_list(info.modality, o->modality, o->nmodality)) {
        rc = skip(c, FF_DICOM_SKIP_MODALITY, shown, NULL);
        goto out;
    }
    if (!in_list(info.body_part, o->body_part, o->nbody_part)) {
        rc = skip(c, FF_DICOM_SKIP_BODY_PART, shown, NULL);
        goto out;
    }
    if (!in_list(info.view_position, o->view, o->nview)) {
        rc = skip(c, FF_DICOM_SKIP_VIEW, shown, NULL);
        goto out;
    }
    int at = ff_strmap_get(&c->keys, c->by_accession ? info.accession : info.patient_id);
    if (at < 0) {
        rc = skip(c, FF_DICOM_SKIP_UNMAPPED, shown, NULL);
        goto out;
    }
    patient *p = &c->pat[at];
    if (info.samples != 1) {
        rc = skip(c, FF_DICOM_SKIP_NOT_GRAY, shown, NULL);
        goto out;
    }
    if (info.frames > 1) {
        rc = skip(c, FF_DICOM_SKIP_MULTIFRAME, shown, NULL);
        goto out;
    }
    if (p->order_key[0] && strcmp(info.order_key, p->order_key) >= 0) {
        rc = skip(c, FF_DICOM_SKIP_LATER, shown, NULL);
        goto out;
    }
    size_t n = (size_t)info.rows * info.cols;
    if ((long)n > MAX_PIXELS) {
        rc = skip(c, FF_DICOM_SKIP_RENDER, shown, "more than 64 megapixels");
        goto out;
    }
    if ((rc = grow((void **)&c->pix, &c->pixcap, n)) != FF_OK)
        goto out;
    int wmode = o->window == FF_DICOM_WINDOW_DECLARED ? 2
              : o->window == FF_DICOM_WINDOW_AUTO && info.windows > 0 ? 1 : 0;
    if (ff_dcm_render(d, wmode, o->center, o->width, c->pix, c->pixcap, msg, sizeof msg) !=
        FF_DCM_OK) {
        rc = skip(c, strcmp(msg, "not a grayscale image") == 0 ? FF_DICOM_SKIP_NOT_GRAY
                                                                 : FF_DICOM_SKIP_RENDER,
                  shown, msg);
        goto out;
    }
    int h = info.rows, w = info.cols;
    const uint8_t *px = c->pix;
    uint8_t *boxed = NULL;
    if (o->size > 0) {
        if (!(boxed = malloc((size_t)o->size * o->size))) {
            rc = ff_error(FF_ENOMEM, "out of memory");
            goto out;
        }
        int dh, dw;
        if ((rc = resample(c, info.rows, info.cols, o->size, boxed, &dh, &dw)) != FF_OK) {
            free(boxed);
            goto out;
        }
        px = boxed;
        h = w = o->size;
    }
    rc = write_png(c, p->pid, px, h, w);
    free(boxed);
    if (rc != FF_OK)
        goto out;
    if (!p->order_key[0])
        c->rep->images++;
    else
        c->rep->skipped[FF_DICOM_SKIP_LATER]++; /* the image it replaces */
    memcpy(p->order_key, info.order_key, sizeof p->order_key);
    memcpy(p->modality, info.modality, sizeof p->modality);
    memcpy(p->body_part, info.body_part, sizeof p->body_part);
    memcpy(p->view, info.view_position, sizeof p->view);
    memcpy(p->photometric, info.photometric, sizeof p->photometric);
    memcpy(p->xfer, info.transfer_syntax, sizeof p->xfer);
    p->bits = info.bits_stored;
    p->rows = info.rows;
    p->cols = info.cols;
    p->out_rows = h;
    p->out_cols = w;
    p->window = wmode == 2 ? "declared" : wmode == 1 ? "stored" : "none";
out:
    ff_dcm_close(d);
    return rc;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walks dir in name order (deterministic), regular files and directories only (symbolic
 * links are not followed: no loops). shown is the path relative to in_dir. */
static int walk(dicom_ctx *c, const char *dir, const char *shown, int depth)
{
    if (depth > MAX_DEPTH)
        return ff_error(FF_EINVAL, "%s: folders nested deeper than %d", dir, MAX_DEPTH);
    DIR *dh = opendir(dir);
    if (!dh)
        return ff_error(FF_EIO, "%s: cannot open folder (%s)", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = FF_OK;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((rc = ff_grow(&names, &cap, n + 1, sizeof *names)) != FF_OK) {
            ff_error_prefix(rc, "%s: ", dir);
            break;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = ff_error(FF_ENOMEM, "%s: out of memory", dir);
            break;
        }
        n++;
    }
    closedir(dh);
    if (rc == FF_OK)
        qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 0; i < n && rc == FF_OK; i++) {
        char path[4096], sub[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(sub, sizeof sub, "%s%s%s", shown, shown[0] ? "/" : "", names[i]);
        if (lstat(path, &st) != 0)
            rc = ff_error(FF_EIO, "%s: cannot stat (%s)", path, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            rc = walk(c, path, sub, depth + 1);
        else if (S_ISREG(st.st_mode))
            rc = one_file(c, path, sub, names[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int write_manifest(dicom_ctx *c)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/image_manifest.csv", c->out_dir);
    snprintf(tmp, sizeof tmp, "%s/.image_manifest.csv.tmp", c->out_dir);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return ff_error(FF_EIO, "%s: cannot create (%s)", tmp, strerror(errno));
    fputs("patient_id,image,modality,body_part,view_position,photometric,bits_stored,"
          "transfer_syntax,rows,cols,window,out_rows,out_cols\n", f);
    int rc = FF_OK;
    for (size_t i = 0; i < c->npat && rc == FF_OK; i++) {
        const patient *p = &c->pat[i];
        if (!p->order_key[0])
            continue;
        char img[200], num[160];
        snprintf(img, sizeof img, "images/%s.png", p->pid);
        snprintf(num, sizeof num, "%d", p->bits);
        if ((rc = ff_csv_put(f, p->pid, ',')) || (rc = ff_csv_put(f, img, ',')) ||
            (rc = ff_csv_put(f, p->modality, ',')) || (rc = ff_csv_put(f, p->body_part, ',')) ||
            (rc = ff_csv_put(f, p->view, ',')) || (rc = ff_csv_put(f, p->photometric, ',')) ||
            (rc = ff_csv_put(f, num, ',')) || (rc = ff_csv_put(f, p->xfer, ',')))
            break;
        fprintf(f, "%d,%d,%s,%d,%d\n", p->rows, p->cols, p->window, p->out_rows, p->out_cols);
    }
    /* the manifest is the import's commit point (images before it are rewritten by a rerun):
     * on disk before its name, and its name durable, as every file fedfuse publishes */
    if (rc == FF_OK && (ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = ff_error(FF_EIO, "%s: write failed (%s)", tmp, strerror(errno));
    if (fclose(f) != 0 && rc == FF_OK)
        rc = ff_error(FF_EIO, "%s: close failed (%s)", tmp, strerror(errno));
    if (rc == FF_OK)
        rc = ff_file_rename_durable(tmp, path);
    return rc;
}

int ff_ingest_dicom(const ff_dicom_opts *o, const char *out_dir, ff_dicom_report *rep)
{
    ff_dicom_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    if (!o || !o->in_dir || !o->map_path || !out_dir)
        return ff_error(FF_EINVAL, "import dicom: --in, --map and --out are required");
    if (o->size < 0 || o->size > 4096)
        return ff_error(FF_EINVAL, "import dicom: size must be in 0..4096");
    if (o->window == FF_DICOM_WINDOW_DECLARED && !(o->width >= 1))
        return ff_error(FF_EINVAL, "import dicom: window width must be >= 1");
    struct stat st;
    if (stat(o->in_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ff_error(FF_EIO, "%s: not a readable directory", o->in_dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/images", out_dir);
    if (stat(path, &st) == 0)
        return ff_error(FF_ESTATE, "%s: already exists (import into a fresh site folder)",
                        path);
    dicom_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.out_dir = out_dir;
    c.rep = rep;
    c.map_shown = o->map_path;
    c.col_pid = c.col_key = -1;
    int rc = ff_strmap_init(&c.keys, 256);
    if (rc == FF_OK)
        rc = ff_csv_read(o->map_path, o->map_path, 1, on_map_row, &c);
    if (rc == FF_OK && c.col_pid < 0)
        rc = ff_error(FF_EFORMAT, "%s: empty mapping file", o->map_path);
    rep->map_rows = (long)c.npat;
    if (rc == FF_OK && (rc = ff_mkdir_p(path, 0750)) == FF_OK) {
        ff_dcm_global_init();
        rc = walk(&c, o->in_dir, "", 0);
    }
    if (rc == FF_OK) {
        for (size_t i = 0; i < c.npat; i++)
            if (c.pat[i].order_key[0]) {
                const char *w = c.pat[i].window;
                long *k = w[0] == 's' ? &rep->window_stored
                        : w[0] == 'd' ? &rep->window_declared : &rep->window_none;
                (*k)++;
            }
        rc = write_manifest(&c);
    }
    for (size_t i = 0; i < c.npat; i++)
        free(c.pat[i].pid);
    free(c.pat);
    free(c.pix);
    free(c.fsrc);
    free(c.fdst);
    ff_strmap_free(&c.keys);
    return rc;
}

void ff_dicom_report_print(const ff_dicom_report *r, FILE *out)
{
    fprintf(out, "dicom: %ld files, %ld images written for %ld mapped patients\n", r->files,
            r->images, r->map_rows);
    fprintf(out, "window: stored %ld, declared %ld, none %ld\n", r->window_stored,
            r->window_declared, r->window_none);
    long total = 0;
    for (int i = 0; i < FF_DICOM_SKIP_COUNT; i++)
        total += r->skipped[i];
    fprintf(out, "skipped: %ld\n", total);
    for (int i = 0; i < FF_DICOM_SKIP_COUNT; i++)
        if (r->skipped[i])
            fprintf(out, "  %-36s %ld\n", ff_dicom_skip_name((ff_dicom_skip)i), r->skipped[i]);
}
