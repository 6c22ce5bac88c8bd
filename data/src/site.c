/* Loading a site directory: patients.csv, notes.csv, events.csv and images/ into an ff_site.
 * Messages name the file and line, never the contents (which are patient data). */
#include "site_internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const sex_values[] = {"F", "M", "X", "U"};
static const char *const age_bands[] = {"<40", "40-64", "65+", "unknown"};

const char *ff_split_name(ff_split s)
{
    static const char *const names[] = {"train", "val", "test"};
    return s < FF_SPLIT_COUNT ? names[s] : "?";
}

const char *ff_skip_reason_name(ff_skip_reason r)
{
    static const char *const names[] = {
        "malformed patients.csv row", "duplicate patient id", "malformed notes.csv row",
        "note of unknown patient", "malformed events.csv row", "event of unknown patient",
        "unreadable image (treated as missing)", "patient with no modality (excluded)",
        "row not valid UTF-8 text", "image file of an unsupported format",
        "malformed tabular.csv row", "tabular.csv cell/column (as missing)"};
    return r < FF_SKIP_COUNT ? names[r] : "?";
}

ff_site_opts ff_site_opts_default(void)
{
    return (ff_site_opts){.strict = 0, .edges = NULL};
}

/* ---------------------------------------------------------------------------------------- */
/* The id index                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Places index i (ids[i]) without checking for equal ids. */
static void index_place(id_index *ix, char **ids, size_t i)
{
    size_t h = ff_fnv1a32(ids[i], strlen(ids[i])) & ix->mask;
    while (ix->slots[h])
        h = (h + 1) & ix->mask;
    ix->slots[h] = (uint32_t)i + 1;
}


/* Adds ids[i] (i = number of ids already indexed) and returns 0, or 1 when an equal id is
 * already there (nothing added), or FF_ENOMEM. Keeps the table at most half full. */
static int index_insert(id_index *ix, char **ids, size_t i)
{
    if (2 * (i + 1) > ix->mask) {
        size_t cap = ix->mask ? (ix->mask + 1) * 2 : 4096;
        id_index bigger = {calloc(cap, sizeof(uint32_t)), cap - 1};
        if (!bigger.slots)
            return ff_error(FF_ENOMEM, "out of memory for the id index");
        for (size_t k = 0; k < i; k++)
            index_place(&bigger, ids, k);
        free(ix->slots);
        *ix = bigger;
    }
    if (ff_site_index_find(ix, ids, ids[i], strlen(ids[i])) >= 0)
        return 1;
    index_place(ix, ids, i);
    return 0;
}

long ff_site_index_find(const id_index *ix, char **ids, const char *id, size_t len)
{
    size_t h = ff_fnv1a32(id, len) & ix->mask;
    while (ix->slots[h]) {
        const char *c = ids[ix->slots[h] - 1];
        if (strlen(c) == len && memcmp(c, id, len) == 0)
            return (long)ix->slots[h] - 1;
        h = (h + 1) & ix->mask;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* patients.csv                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* A row the lenient mode skips (counted, and told to opts.on_skip): an error in strict mode. */
int ff_site_skip_row(const ff_site_opts *o, ff_load_report *rep, ff_skip_reason why,
                    const char *shown, long line, const char *reason)
{
    if (o->strict)
        return line > 0 ? ff_error(FF_EFORMAT, "%s:%ld: %s", shown, line, reason)
                        : ff_error(FF_EFORMAT, "%s: %s", shown, reason);
    rep->skipped[why]++;
    if (o->on_skip)
        o->on_skip(o->skip_ud, shown, line, reason);
    return FF_OK;
}

/* A row that is not valid UTF-8 (a Latin-1 or Windows-1252 export): skipped, or the error. */
static int bad_utf8_row(const ff_site_opts *o, ff_load_report *rep, const char *shown,
                        const ff_csv_row *r)
{
    char why[160];
    snprintf(why, sizeof why, "not valid UTF-8 text (byte %ld of the line); save the file as "
             "UTF-8", r->bad_utf8_byte);
    return ff_site_skip_row(o, rep, FF_SKIP_BAD_UTF8, shown, r->bad_utf8_line, why);
}

/* The header: valid UTF-8 and not more than 256 columns. */
int ff_site_header_check(const ff_csv_row *r, const char *shown)
{
    if (r->bad_utf8_line)
        return ff_error(FF_EFORMAT, "%s:1: header is not valid UTF-8 text (byte %ld); save the "
                        "file as UTF-8", shown, r->bad_utf8_byte);
    if (r->nfields < 0)
        return ff_error(FF_EFORMAT, "%s:1: more than 256 columns", shown);
    return FF_OK;
}

enum { COL_ID, COL_AGE, COL_SEX, COL_SPLIT, COL_REQUIRED };

/* site.yaml (optional): the format version and the declared fairness attributes. */
typedef struct {
    int64_t format;
    ff_cfg_strlist attributes;
} site_meta;

static const ff_cfg_field site_meta_schema[] = {
    {.key = "format", .type = FF_CFG_INT, .offset = offsetof(site_meta, format), .min = 1,
     .max = 2, .def = "2", .help = "site format version (1: the first layout, 2: this one)"},
    {.key = "attributes", .type = FF_CFG_STRLIST, .offset = offsetof(site_meta, attributes),
     .help = "patients.csv columns that are fairness attributes (others are ignored)"},
    {0},
};

typedef struct {
    ff_site *s;
    const ff_site_opts *opts;
    ff_load_report *rep;
    const char *shown;
    const site_meta *meta; /* NULL without site.yaml: every other column is an attribute */
    int col[COL_REQUIRED];
    int lcol[FF_TASKS_MAX][2]; /* csv columns of each task's label (survival: time, event) */
    int attr_col[SITE_MAX_ATTRS]; /* csv column of declared attribute a (a >= 2) */
    int ncols;
    size_t cap;
    id_index ix; /* grows with the rows; duplicates found here; then used by notes/events */
} patients_ctx;

/* 1 when header field `name` (column i) is a declared task's label, time or event column;
 * FF_EFORMAT when it appears twice. */
static int label_column(patients_ctx *c, const ff_task_set *ts, const char *name, int i)
{
    int known = 0;
    for (int k = 0; k < ts->n; k++) {
        const ff_task *t = &ts->t[k];
        const char *cols[2] = {t->kind == FF_TASK_SURVIVAL ? t->time : t->label,
                               t->kind == FF_TASK_SURVIVAL ? t->event : ""};
        for (int j = 0; j < 2; j++) {
            if (!cols[j][0] || strcmp(cols[j], name) != 0)
                continue;
            if (c->lcol[k][j] >= 0 && c->lcol[k][j] != i)
                return ff_error(FF_EFORMAT, "%s:1: column '%s' appears twice", c->shown, name);
            c->lcol[k][j] = i, known = 1;
        }
    }
    return known;
}

static int header_patients(patients_ctx *c, const ff_csv_row *r)
{
    static const char *const req[COL_REQUIRED] = {"patient_id", "age", "sex", "split"};
    const ff_task_set *ts = &c->s->shape.tasks;
    int rc = ff_site_header_check(r, c->shown);
    if (rc != FF_OK)
        return rc;
    c->rep->delim[0] = r->delim;
    c->ncols = r->nfields;
    for (int k = 0; k < COL_REQUIRED; k++)
        c->col[k] = -1;
    for (int k = 0; k < FF_TASKS_MAX; k++)
        c->lcol[k][0] = c->lcol[k][1] = -1;
    for (int i = 0; i < r->nfields; i++) {
        int known = label_column(c, ts, r->fields[i], i);
        if (known < 0)
            return known;
        for (int k = 0; k < COL_REQUIRED; k++)
            if (strcmp(r->fields[i], req[k]) == 0) {
                if (c->col[k] >= 0)
                    return ff_error(FF_EFORMAT, "%s:1: column '%s' appears twice", c->shown,
                                    req[k]);
                c->col[k] = i, known = 1;
            }
        /* a label column of a task this model does not predict is not an attribute */
        if (known || strncmp(r->fields[i], "label_", 6) == 0)
            continue;
        if (c->meta && c->meta->attributes.count > 0) { /* only the declared ones */
            size_t a = 0;
            while (a < c->meta->attributes.count &&
                   strcmp(c->meta->attributes.items[a], r->fields[i]) != 0)
                a++;
            if (a == c->meta->attributes.count)
                continue;
        }
        if (c->s->nattr >= SITE_MAX_ATTRS)
            return ff_error(FF_EFORMAT, "%s:1: more than %d attribute columns", c->shown,
                            SITE_MAX_ATTRS - SITE_ATTR_BUILTIN);
        if (r->lens[i] == 0 || r->lens[i] >= sizeof c->s->attrs[0].name)
            return ff_error(FF_EFORMAT, "%s:1: column %d has an empty or too long name",
                            c->shown, i + 1);
        site_attr *a = &c->s->attrs[c->s->nattr];
        memcpy(a->name, r->fields[i], r->lens[i] + 1);
        c->attr_col[c->s->nattr++] = i;
    }
    /* Format 2: only patient_id is required; age, sex, split and the label columns are
     * optional (absent = unknown for every patient; split then derived from the id). */
    if (c->col[COL_ID] < 0)
        return ff_error(FF_EFORMAT, "%s:1: missing required column 'patient_id'", c->shown);
    for (int k = 0; k < ts->n; k++)
        c->rep->label_missing[k] =
            c->lcol[k][0] < 0 || (ts->t[k].kind == FF_TASK_SURVIVAL && c->lcol[k][1] < 0);
    c->rep->split_derived = c->col[COL_SPLIT] < 0;
    for (size_t a = 0; c->meta && a < c->meta->attributes.count; a++) {
        int found = 0;
        for (int k = SITE_ATTR_BUILTIN; k < c->s->nattr; k++)
            found |= strcmp(c->s->attrs[k].name, c->meta->attributes.items[a]) == 0;
        if (!found)
            return ff_error(FF_EFORMAT, "%s:1: attribute column '%s' (declared in site.yaml) "
                            "is missing", c->shown, c->meta->attributes.items[a]);
    }
    return FF_OK;
}

static int valid_id(const char *id, size_t len)
{
    if (len == 0 || len > 64 || id[0] == '.')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (id[i] == '/' || id[i] == '\\' || (unsigned char)id[i] < 0x20)
            return 0;
    return 1;
}

static int parse_sex(const char *v)
{
    if (v[0] == '\0' || strcasecmp(v, "unknown") == 0)
        return 3; /* U */
    for (int i = 0; i < 4; i++)
        if (strcasecmp(v, sex_values[i]) == 0)
            return i;
    return -1;
}

static int parse_split(const char *v)
{
    for (int i = 0; i < FF_SPLIT_COUNT; i++)
        if (strcmp(v, ff_split_name((ff_split)i)) == 0)
            return i;
    return -1;
}

static int attr_value(site_attr *a, const char *v)
{
    for (int i = 0; i < a->nvalues; i++)
        if (strcmp(a->values[i], v) == 0)
            return i;
    if (a->nvalues >= SITE_MAX_ATTR_VALUES - 1) { /* the last slot is "other" */
        if (a->nvalues == SITE_MAX_ATTR_VALUES - 1) {
            a->values[a->nvalues] = strdup("other");
            if (!a->values[a->nvalues])
                return -1;
            a->nvalues++;
        }
        return SITE_MAX_ATTR_VALUES - 1;
    }
    a->values[a->nvalues] = strdup(v);
    return a->values[a->nvalues] ? a->nvalues++ : -1;
}

static int ensure_patient_cap(patients_ctx *c, size_t need)
{
    ff_site *s = c->s;
    if (need <= c->cap)
        return FF_OK;
    /* One capacity for the parallel per-patient arrays: at least double the old one, so each
     * ff_grow grows its array to exactly nc (and checks nc * row bytes for overflow). */
    size_t nc = c->cap ? (c->cap > SIZE_MAX / 2 ? SIZE_MAX : c->cap * 2) : 1024;
    size_t K = (size_t)s->shape.K, T = (size_t)s->shape.tasks.n;
    size_t c1 = c->cap, c2 = c1, c3 = c1, c4 = c1, c5 = c1, c6 = c1, c7 = c1;
    if (ff_grow(&s->ids, &c1, nc, sizeof *s->ids) != FF_OK ||
        ff_grow(&s->split, &c2, nc, sizeof *s->split) != FF_OK ||
        ff_grow(&s->age, &c3, nc, sizeof *s->age) != FF_OK ||
        ff_grow(&s->labels, &c4, nc, K * sizeof *s->labels) != FF_OK ||
        ff_grow(&s->known, &c5, nc, T * sizeof *s->known) != FF_OK ||
        ff_grow(&s->attr, &c6, nc, SITE_MAX_ATTRS * sizeof *s->attr) != FF_OK ||
        ff_grow(&s->lines, &c7, nc, sizeof *s->lines) != FF_OK)
        return ff_error_prefix(FF_ENOMEM, "%s: at %zu patients: ", c->shown, nc);
    c->cap = nc;
    return FF_OK;
}

/* The field of column col, "" when the column is absent. */
static const char *field_or_empty(const ff_csv_row *r, int col)
{
    return col < 0 ? "" : r->fields[col];
}

/* Task k's label of row r into its columns of lab (the patient's row of K floats); *known = 1
 * when given. Empty = unknown; anything that does not fit the task is FF_EFORMAT. */
static int parse_label(const patients_ctx *c, const ff_csv_row *r, int k, float *lab,
                       uint8_t *known)
{
    const ff_task *t = &c->s->shape.tasks.t[k];
    const char *v = field_or_empty(r, c->lcol[k][0]), *e = field_or_empty(r, c->lcol[k][1]);
    float *y = lab + t->col;
    double x = 0;
    for (int j = 0; j < ff_task_width(t); j++)
        y[j] = 0.0f;
    *known = 0;
    if (t->kind == FF_TASK_SURVIVAL && (v[0] == '\0') != (e[0] == '\0'))
        return ff_error(FF_EFORMAT, "%s:%ld: task %s: %s and %s must both be given or both "
                        "empty", c->shown, r->line, t->name, t->time, t->event);
    if (v[0] == '\0')
        return FF_OK;
    int ok = ff_parse_f64(v, &x) == FF_OK && isfinite(x) && fabs(x) < 1e30;
    switch (t->kind) {
    case FF_TASK_BINARY:
        ok = strcmp(v, "0") == 0 || strcmp(v, "1") == 0;
        y[0] = (float)(v[0] - '0');
        break;
    case FF_TASK_MULTICLASS:
        ok = ok && x >= 0 && x < (double)t->classes && x == floor(x);
        if (ok)
            y[(int)x] = 1.0f;
        break;
    case FF_TASK_REGRESSION:
        y[0] = (float)x;
        break;
    default:
        ok = ok && x >= 0 && (strcmp(e, "0") == 0 || strcmp(e, "1") == 0);
        y[0] = (float)x;
        y[1] = (float)(e[0] - '0');
        break;
    }
    if (!ok) {
        static const char *const want[] = {
            "must be 0, 1 or empty", "must be a class 0 .. classes-1 or empty",
            "must be a finite number or empty", "time must be a number >= 0 and event 0 or 1"};
        return ff_error(FF_EFORMAT, "%s:%ld: %s %s (task %s)", c->shown, r->line,
                        t->kind == FF_TASK_SURVIVAL ? t->time : t->label, want[t->kind], t->name);
    }
    *known = 1;
    return FF_OK;
}

static int row_patients(const ff_csv_row *r, void *vctx)
{
    patients_ctx *c = vctx;
    ff_site *s = c->s;
    if (c->ncols == 0)
        return header_patients(c, r);
    if (r->bad_utf8_line)
        return bad_utf8_row(c->opts, c->rep, c->shown, r);
    const char *why = NULL;
    if (r->nfields != c->ncols)
        why = "wrong number of fields";
    const char *id = why ? NULL : r->fields[c->col[COL_ID]];
    double age = NAN; /* unknown: empty, "unknown", "U", or no age column */
    int sex = 3, split = -1;
    if (!why && !valid_id(id, r->lens[c->col[COL_ID]]))
        why = "patient_id is empty, longer than 64 bytes, or holds '/', '\\' or a leading '.'";
    const char *av = why || c->col[COL_AGE] < 0 ? "" : r->fields[c->col[COL_AGE]];
    if (!why && av[0] && strcasecmp(av, "unknown") != 0 && strcasecmp(av, "U") != 0 &&
        (ff_parse_f64(av, &age) != FF_OK || !(age >= 0) || age > 130))
        why = "age is not a number in 0..130, empty or unknown";
    if (!why && c->col[COL_SEX] >= 0 && (sex = parse_sex(r->fields[c->col[COL_SEX]])) < 0)
        why = "sex is not one of F, M, X, U, empty or unknown";
    if (!why && c->col[COL_SPLIT] < 0) { /* derived from the id: 60 / 20 / 20 */
        uint32_t h = ff_fnv1a32(id, strlen(id)) % 10;
        split = h < 6 ? FF_SPLIT_TRAIN : h < 8 ? FF_SPLIT_VAL : FF_SPLIT_TEST;
    } else if (!why && (split = parse_split(r->fields[c->col[COL_SPLIT]])) < 0)
        why = "split is not one of train, val, test";
    if (why)
        return ff_site_skip_row(c->opts, c->rep, FF_SKIP_PATIENT_ROW, c->shown, r->line, why);
    int rc = ensure_patient_cap(c, s->n + 1);
    if (rc != FF_OK)
        return rc;
    size_t i = s->n;
    /* Labels are checked in both modes: a wrong label would silently poison training. */
    for (int k = 0; k < s->shape.tasks.n; k++)
        if ((rc = parse_label(c, r, k, s->labels + i * (size_t)s->shape.K,
                              s->known + i * (size_t)s->shape.tasks.n + k)) != FF_OK)
            return rc;
    s->ids[i] = strdup(id);
    if (!s->ids[i])
        return ff_error(FF_ENOMEM, "%s: out of memory", c->shown);
    int dup = index_insert(&c->ix, s->ids, i);
    if (dup < 0) {
        free(s->ids[i]);
        return dup;
    }
    if (dup) {
        free(s->ids[i]);
        return ff_site_skip_row(c->opts, c->rep, FF_SKIP_DUPLICATE_ID, c->shown, r->line,
                        "patient_id appears on an earlier line");
    }
    s->split[i] = (uint8_t)split;
    s->lines[i] = r->line;
    s->age[i] = (float)age;
    uint8_t *at = s->attr + i * SITE_MAX_ATTRS;
    at[SITE_ATTR_SEX] = (uint8_t)sex;
    at[SITE_ATTR_AGE_BAND] = (uint8_t)(isnan(age) ? 3 : age < 40 ? 0 : age < 65 ? 1 : 2);
    s->age_unknown |= isnan(age);
    for (int a = SITE_ATTR_BUILTIN; a < s->nattr; a++) {
        int v = attr_value(&s->attrs[a], r->fields[c->attr_col[a]]);
        if (v < 0)
            return ff_error(FF_ENOMEM, "%s: out of memory", c->shown);
        at[a] = (uint8_t)v;
    }
    s->n++;
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* notes.csv                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* What the notes and events readers share. */
typedef struct {
    reader r;
    int col_id, col_text, ncols;
    uint8_t *cut; /* [n]: the patient's notes were cut at Lt ids (counted once) */
} notes_ctx;

static int header_simple(const ff_csv_row *r, const char *shown, const char *const *names,
                         int *cols, int ncols_needed, int *ncols)
{
    int rc = ff_site_header_check(r, shown);
    if (rc != FF_OK)
        return rc;
    *ncols = r->nfields;
    for (int k = 0; k < ncols_needed; k++) {
        cols[k] = -1;
        for (int i = 0; i < r->nfields; i++)
            if (strcmp(r->fields[i], names[k]) == 0)
                cols[k] = i;
        if (cols[k] < 0)
            return ff_error(FF_EFORMAT, "%s:1: missing required column '%s'", shown, names[k]);
    }
    return FF_OK;
}

static int row_notes(const ff_csv_row *r, void *vctx)
{
    notes_ctx *n = vctx;
    reader *c = &n->r;
    if (n->ncols == 0) {
        static const char *const names[] = {"patient_id", "text"};
        int cols[2];
        int rc = header_simple(r, c->shown, names, cols, 2, &n->ncols);
        n->col_id = cols[0], n->col_text = cols[1];
        c->rep->delim[1] = r->delim;
        return rc;
    }
    c->rep->note_rows++;
    if (r->bad_utf8_line)
        return bad_utf8_row(c->opts, c->rep, c->shown, r);
    if (r->nfields != n->ncols)
        return ff_site_skip_row(c->opts, c->rep, FF_SKIP_NOTE_ROW, c->shown, r->line,
                        "wrong number of fields");
    long p = ff_site_index_find(c->ix, c->s->ids, r->fields[n->col_id], r->lens[n->col_id]);
    if (p < 0)
        return ff_site_skip_row(c->opts, c->rep, FF_SKIP_NOTE_UNKNOWN, c->shown, r->line,
                        "patient_id not in patients.csv");
    ff_site *s = c->s;
    size_t Lt = (size_t)s->shape.Lt, have = s->text_len[p], nwords = 0;
    /* Several notes of one patient are concatenated in file order. */
    size_t got = ff_tok_text(r->fields[n->col_text], r->lens[n->col_text], s->shape.Vt,
                             s->shape.bigrams, s->text + (size_t)p * Lt + have, Lt - have,
                             &nwords);
    /* ids the note makes: a word each, plus a bigram after each word from the second on */
    size_t want = s->shape.bigrams && nwords > 0 ? 2 * nwords - 1 : nwords;
    if (want > got && n->cut && !n->cut[p]) {
        n->cut[p] = 1;
        c->rep->notes_cut++;
    }
    s->text_len[p] = (uint16_t)(have + got);
    s->words[p] += (uint32_t)FF_MIN(nwords, (size_t)UINT32_MAX - s->words[p]);
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* events.csv                                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    uint32_t patient;
    int32_t code;
    float hours;
    float value; /* NaN = none */
} raw_event;

typedef struct {
    reader r;
    int col[4], ncols;
    raw_event *ev;
    size_t nev, cap;
} events_ctx;

/* Why the loader skips an event row (NULL: it keeps it, with *hours and *value, NaN = none):
 * the one rule, for the loader and for ff_site_patient_events. */
static const char *event_row_why(const ff_csv_row *r, const int col[4], int ncols, double *hours,
                                 double *value)
{
    *hours = 0;
    *value = NAN;
    if (r->nfields != ncols)
        return "wrong number of fields";
    if (ff_parse_f64(r->fields[col[1]], hours) != FF_OK || !(*hours >= 0) || !isfinite(*hours))
        return "hours_before is not a finite number >= 0";
    if (r->lens[col[2]] == 0)
        return "code is empty";
    if (r->lens[col[3]] > 0 && (ff_parse_f64(r->fields[col[3]], value) != FF_OK ||
                                !isfinite(*value)))
        return "value is neither empty nor a finite number";
    return NULL;
}

/* The loader's order of one patient's events: most recent (smallest hours_before, compared
 * as the float it stores) first, equal times by code id. */
static int event_order(float ha, int32_t ca, float hb, int32_t cb)
{
    if (ha != hb)
        return ha < hb ? -1 : 1;
    return ca < cb ? -1 : ca > cb;
}

static int row_events(const ff_csv_row *r, void *vctx)
{
    events_ctx *ec = vctx;
    reader *c = &ec->r;
    if (ec->ncols == 0) {
        static const char *const names[] = {"patient_id", "hours_before", "code", "value"};
        c->rep->delim[2] = r->delim;
        return header_simple(r, c->shown, names, ec->col, 4, &ec->ncols);
    }
    c->rep->event_rows++;
    if (r->bad_utf8_line)
        return bad_utf8_row(c->opts, c->rep, c->shown, r);
    double hours = 0, value = NAN;
    const char *why = event_row_why(r, ec->col, ec->ncols, &hours, &value);
    if (why)
        return ff_site_skip_row(c->opts, c->rep, FF_SKIP_EVENT_ROW, c->shown, r->line, why);
    long p = ff_site_index_find(c->ix, c->s->ids, r->fields[ec->col[0]], r->lens[ec->col[0]]);
    if (p < 0)
        return ff_site_skip_row(c->opts, c->rep, FF_SKIP_EVENT_UNKNOWN, c->shown, r->line,
                        "patient_id not in patients.csv");
    int rc = ff_grow(&ec->ev, &ec->cap, ec->nev + 1, sizeof *ec->ev);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "%s: ", c->shown);
    int32_t code = ff_tok_code(r->fields[ec->col[2]], r->lens[ec->col[2]], c->s->shape.Vc);
    ec->ev[ec->nev++] = (raw_event){(uint32_t)p, code, (float)hours, (float)value};
    if (!isnan(value))
        ff_value_hist_add(&c->s->hist, code, value);
    return FF_OK;
}

static int cmp_event(const void *a, const void *b)
{
    const raw_event *x = a, *y = b;
    if (x->patient != y->patient)
        return x->patient < y->patient ? -1 : 1;
    return event_order(x->hours, x->code, y->hours, y->code);
}

/* Sorts the events, keeps the Le most recent per patient (stored oldest first) and bins
 * their values with the given edges. */
static int events_finish(ff_site *s, events_ctx *c, const ff_value_edges *edges)
{
    if (c->nev)
        qsort(c->ev, c->nev, sizeof *c->ev, cmp_event);
    size_t Le = (size_t)s->shape.Le, kept = 0;
    s->ev_off = calloc(s->n + 1, sizeof *s->ev_off);
    if (!s->ev_off)
        return ff_error(FF_ENOMEM, "events: out of memory");
    for (size_t i = 0; i < c->nev;) {
        size_t j = i;
        while (j < c->nev && c->ev[j].patient == c->ev[i].patient)
            j++;
        size_t take = FF_MIN(j - i, Le);
        c->r.rep->events_dropped += (long)(j - i - take);
        c->r.rep->events_cut += j - i > take;
        s->ev_off[c->ev[i].patient + 1] = take;
        kept += take;
        i = j;
    }
    for (size_t p = 0; p < s->n; p++)
        s->ev_off[p + 1] += s->ev_off[p];
    s->ev_code = malloc(FF_MAX(kept, 1) * sizeof *s->ev_code);
    s->ev_val = malloc(FF_MAX(kept, 1));
    s->ev_hours = malloc(FF_MAX(kept, 1) * sizeof *s->ev_hours);
    if (!s->ev_code || !s->ev_val || !s->ev_hours)
        return ff_error(FF_ENOMEM, "events: out of memory for %zu events", kept);
    for (size_t i = 0; i < c->nev;) {
        uint32_t p = c->ev[i].patient;
        size_t take = s->ev_off[p + 1] - s->ev_off[p];
        for (size_t k = 0; k < take; k++) {
            const raw_event *e = &c->ev[i + k];
            size_t o = s->ev_off[p] + take - 1 - k; /* oldest first */
            s->ev_code[o] = e->code;
            s->ev_val[o] = (int8_t)(isnan(e->value) ? 0 : ff_value_bin(edges, e->code, e->value));
            s->ev_hours[o] = e->hours;
        }
        while (i < c->nev && c->ev[i].patient == p)
            i++;
    }
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* images/                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static int load_images(ff_site *s, const char *dir, const ff_site_opts *o, ff_load_report *rep)
{
    size_t hw = (size_t)s->shape.H * (size_t)s->shape.W;
    char *path = malloc(strlen(dir) + 96);
    float *tmp = malloc(hw * sizeof *tmp);
    int rc = FF_OK;
    size_t cap = 0;
    if (!path || !tmp) {
        rc = ff_error(FF_ENOMEM, "images: out of memory");
        goto out;
    }
    for (size_t p = 0; p < s->n; p++) {
        s->img_slot[p] = -1;
        sprintf(path, "%s/images/%s.png", dir, s->ids[p]);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        rc = ff_png_load_gray(path, s->shape.H, s->shape.W, tmp);
        if (rc != FF_OK) {
            if (o->strict || rc == FF_ENOMEM) {
                /* The message names the file, i.e. the patient id: kept out of logs by the
                 * caller, shown to the operator who owns the data. */
                goto out;
            }
            rep->skipped[FF_SKIP_IMAGE_BAD]++;
            if (o->on_skip) { /* the message starts with the path: not twice */
                const char *m = ff_error_message();
                size_t pl = strlen(path);
                o->on_skip(o->skip_ud, path, 0,
                           strncmp(m, path, pl) == 0 && m[pl] == ':' ? m + pl + 2 : m);
            }
            rc = FF_OK;
            ff_error_clear();
            continue;
        }
        if ((rc = ff_grow(&s->img, &cap, (s->nimg + 1) * hw, sizeof(uint16_t))) != FF_OK)
            goto out;
        uint16_t *dst = s->img + s->nimg * hw;
        for (size_t k = 0; k < hw; k++) {
            float v = tmp[k] < 0 ? 0 : tmp[k] > 1 ? 1 : tmp[k];
            dst[k] = (uint16_t)lrintf(v * 65535.0f);
        }
        s->img_slot[p] = (int32_t)s->nimg++;
    }
out:
    free(path);
    free(tmp);
    return rc;
}

/* Files in images/ that are not PNG but look like images: never read, so said (a hospital's
 * export of .dcm or .jpg files would otherwise just look like patients without images). */
static int scan_unsupported(const char *dir, const ff_site_opts *o, ff_load_report *rep)
{
    static const struct {
        const char *ext, *why;
    } kinds[] = {
        {".dcm", "DICOM images are not read directly: convert them with `fedfuse import dicom` "
                 "(docs/data.md)"},
        {".dicom", "DICOM images are not read directly: convert them with `fedfuse import "
                   "dicom` (docs/data.md)"},
        {".jpg", "JPEG images are not read: convert them to PNG (docs/data.md)"},
        {".jpeg", "JPEG images are not read: convert them to PNG (docs/data.md)"},
        {".tif", "TIFF images are not read: convert them to PNG (docs/data.md)"},
        {".tiff", "TIFF images are not read: convert them to PNG (docs/data.md)"},
        {".bmp", "BMP images are not read: convert them to PNG (docs/data.md)"},
        {".gif", "GIF images are not read: convert them to PNG (docs/data.md)"},
        {".nii", "NIfTI volumes are not read: export 2D PNG images (docs/data.md)"},
        {".gz", "compressed files are not read: images must be PNG (docs/data.md)"},
    };
    char *path = malloc(strlen(dir) + 16);
    if (!path)
        return ff_error(FF_ENOMEM, "images: out of memory");
    sprintf(path, "%s/images", dir);
    DIR *d = opendir(path);
    int rc = FF_OK;
    struct dirent *e;
    while (d && rc == FF_OK && (e = readdir(d))) {
        const char *dot = strrchr(e->d_name, '.');
        for (size_t k = 0; dot && k < sizeof kinds / sizeof kinds[0]; k++)
            if (strcasecmp(dot, kinds[k].ext) == 0) {
                size_t pl = strlen(path) + strlen(e->d_name) + 2;
                char *f = malloc(pl);
                if (!f) {
                    rc = ff_error(FF_ENOMEM, "images: out of memory");
                    break;
                }
                snprintf(f, pl, "%s/%s", path, e->d_name);
                rc = ff_site_skip_row(o, rep, FF_SKIP_IMAGE_UNSUPPORTED, f, 0, kinds[k].why);
                free(f);
                break;
            }
    }
    if (d)
        closedir(d);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

static void percentiles(long *v, size_t n, long *p50, long *p90, long *mx)
{
    if (!n) {
        *p50 = *p90 = *mx = 0;
        return;
    }
    qsort(v, n, sizeof *v, cmp_long);
    *p50 = v[(n - 1) / 2];
    *p90 = v[(size_t)((double)(n - 1) * 0.9)];
    *mx = v[n - 1];
}

/* Excludes patients with no modality, fills the split lists and the summary. */
static int finish_members(ff_site *s, const ff_site_opts *o, ff_load_report *rep,
                          const char *shown)
{
    long *words = malloc((s->n + 1) * sizeof *words), *evs = malloc((s->n + 1) * sizeof *evs);
    size_t nw = 0, ne = 0;
    int rc = FF_OK;
    for (int sp = 0; sp < FF_SPLIT_COUNT; sp++) {
        s->members[sp] = malloc((s->n + 1) * sizeof(uint32_t));
        if (!s->members[sp])
            rc = ff_error(FF_ENOMEM, "out of memory");
    }
    if (!words || !evs || rc != FF_OK) {
        rc = ff_error(FF_ENOMEM, "out of memory");
        goto out;
    }
    const char *none = s->tab_has ? "patient has no image, note, event or tabular.csv row"
                                  : "patient has no image, note or event";
    for (size_t p = 0; p < s->n; p++) {
        int img = s->img_slot[p] >= 0, txt = s->text_len[p] > 0;
        int tab = s->tab_has && s->tab_has[p];
        size_t nev = s->ev_off[p + 1] - s->ev_off[p];
        if (!img && !txt && !nev && !tab) {
            if (o->strict) {
                rc = ff_error(FF_EFORMAT, "%s:%ld: %s", shown, s->lines[p], none);
                goto out;
            }
            rep->skipped[FF_SKIP_NO_MODALITY]++;
            if (o->on_skip)
                o->on_skip(o->skip_ud, shown, s->lines[p], none);
            continue;
        }
        int sp = s->split[p];
        s->members[sp][s->count[sp]++] = (uint32_t)p;
        rep->patients[sp]++;
        for (int k = 0; k < s->shape.tasks.n; k++) {
            const ff_task *t = &s->shape.tasks.t[k];
            int known = s->known[p * (size_t)s->shape.tasks.n + (size_t)k];
            float y = s->labels[p * (size_t)s->shape.K + (size_t)t->col +
                                (t->kind == FF_TASK_SURVIVAL ? 1u : 0u)];
            rep->labelled[sp][k] += known;
            rep->positives[sp][k] += known && y == 1.0f &&
                                     (t->kind == FF_TASK_BINARY || t->kind == FF_TASK_SURVIVAL);
        }
        rep->with_image += img;
        rep->with_text += txt;
        rep->with_ehr += nev > 0;
        rep->with_all += img && txt && nev > 0;
        rep->with_tab += tab;
        for (int f = 0; tab && f < s->shape.tab.n; f++)
            rep->tab_missing[f] += isnan(s->tabv[p * (size_t)s->shape.tab.n + (size_t)f]);
        if (txt)
            words[nw++] = (long)s->words[p];
        if (nev)
            evs[ne++] = (long)nev;
    }
    percentiles(words, nw, &rep->words_p50, &rep->words_p90, &rep->words_max);
    percentiles(evs, ne, &rep->events_p50, &rep->events_p90, &rep->events_max);
out:
    free(words);
    free(evs);
    return rc;
}

static int load_all(ff_site *s, const char *dir, const ff_site_opts *o, ff_load_report *rep)
{
    int rc;
    size_t dl = strlen(dir);
    char *path = malloc(dl + 64), *shown = malloc(dl + 64);
    id_index ix = {0};
    events_ctx ec = {0};
    ff_value_edges local = {0};
    site_meta meta;
    memset(&meta, 0, sizeof meta);
    int have_meta = 0;
    if (!path || !shown) {
        rc = ff_error(FF_ENOMEM, "out of memory");
        goto out;
    }
    sprintf(path, "%s/site.yaml", dir);
    rep->format = 2;
    if (ff_path_exists(path)) {
        have_meta = 1;
        if ((rc = ff_cfg_load(path, site_meta_schema, &meta)) != FF_OK)
            goto out;
        rep->format = (int)meta.format;
    }
    sprintf(path, "%s/patients.csv", dir);
    sprintf(shown, "%s/patients.csv", dir);
    patients_ctx pc = {.s = s, .opts = o, .rep = rep, .shown = shown,
                       .meta = have_meta ? &meta : NULL};
    rc = ff_csv_read(path, shown, o->strict, row_patients, &pc);
    ix = pc.ix;
    if (rc != FF_OK)
        goto out;
    if (pc.ncols == 0) {
        rc = ff_error(FF_EFORMAT, "%s:1: empty file (no header)", shown);
        goto out;
    }
    size_t n1 = s->n + 1;
    s->text = calloc(n1 * (size_t)s->shape.Lt, sizeof *s->text);
    s->text_len = calloc(n1, sizeof *s->text_len);
    s->words = calloc(n1, sizeof *s->words);
    s->img_slot = calloc(n1, sizeof *s->img_slot);
    if (!s->text || !s->text_len || !s->words || !s->img_slot) {
        rc = ff_error(FF_ENOMEM, "%s: out of memory for %zu patients", shown, s->n);
        goto out;
    }
    if (!ix.slots) { /* header only: an empty index still answers lookups */
        ix.slots = calloc(1, sizeof *ix.slots);
        if (!ix.slots) {
            rc = ff_error(FF_ENOMEM, "out of memory");
            goto out;
        }
    }

    sprintf(path, "%s/notes.csv", dir);
    sprintf(shown, "%s/notes.csv", dir);
    if ((rep->has_notes_file = ff_path_exists(path))) {
        notes_ctx nc = {.r = {s, o, rep, shown, &ix}, .cut = calloc(n1, 1)};
        rc = nc.cut ? ff_csv_read(path, shown, o->strict, row_notes, &nc)
                    : ff_error(FF_ENOMEM, "out of memory");
        free(nc.cut);
        if (rc != FF_OK)
            goto out;
    }

    sprintf(path, "%s/events.csv", dir);
    sprintf(shown, "%s/events.csv", dir);
    ec = (events_ctx){.r = {s, o, rep, shown, &ix}};
    if ((rep->has_events_file = ff_path_exists(path)) &&
        (rc = ff_csv_read(path, shown, o->strict, row_events, &ec)) != FF_OK)
        goto out;
    const ff_value_edges *edges = o->edges;
    if (!edges) {
        if ((rc = ff_value_edges_local(&s->hist, &local)) != FF_OK)
            goto out;
        edges = &local;
    }
    rep->edges_local = edges->local;
    if ((rc = events_finish(s, &ec, edges)) != FF_OK)
        goto out;
    FF_FREE(ec.ev);

    sprintf(path, "%s/images", dir);
    if ((rep->has_images_dir = ff_path_exists(path)) &&
        ((rc = scan_unsupported(dir, o, rep)) != FF_OK || (rc = load_images(s, dir, o, rep)) != FF_OK))
        goto out;
    if (!rep->has_images_dir)
        for (size_t p = 0; p < s->n; p++)
            s->img_slot[p] = -1;
    if (s->shape.tab.n > 0 && (rc = ff_site_tabular_read(s, dir, o, rep, &ix)) != FF_OK)
        goto out;
    sprintf(path, "%s/tabular.csv", dir);
    rep->tabular_unread = s->shape.tab.n == 0 && ff_path_exists(path);
    sprintf(shown, "%s/patients.csv", dir);
    rc = finish_members(s, o, rep, shown);
    if (rc == FF_OK && s->tab_has)
        ff_site_tabular_stats(s);
out:
    if (have_meta)
        ff_cfg_free(site_meta_schema, &meta);
    free(ix.slots);
    free(ec.ev);
    ff_value_edges_free(&local);
    free(path);
    free(shown);
    return rc;
}

int ff_site_load(ff_site **out, const char *dir, const ff_data_shape *shape,
                 const ff_site_opts *opts, ff_load_report *rep)
{
    ff_load_report local_rep;
    ff_site_opts dflt = ff_site_opts_default();
    if (!rep)
        rep = &local_rep;
    if (!opts)
        opts = &dflt;
    memset(rep, 0, sizeof *rep);
    rep->text_limit = shape->Lt;
    rep->event_limit = shape->Le;
    *out = NULL;
    ff_data_shape sh = *shape;
    int rc = ff_data_shape_check(&sh);
    if (rc != FF_OK)
        return rc;
    rep->tasks = sh.tasks;
    if (opts->edges && opts->edges->ncodes != shape->Vc)
        return ff_error(FF_EINVAL, "value edges: %d codes, the shape has Vc=%d",
                        opts->edges->ncodes, shape->Vc);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ff_error(FF_EIO, "%s: not a readable directory", dir);
    ff_site *s = calloc(1, sizeof *s);
    if (!s)
        return ff_error(FF_ENOMEM, "out of memory");
    s->shape = sh;
    s->nattr = SITE_ATTR_BUILTIN;
    snprintf(s->attrs[SITE_ATTR_SEX].name, sizeof s->attrs[0].name, "sex");
    snprintf(s->attrs[SITE_ATTR_AGE_BAND].name, sizeof s->attrs[0].name, "age_band");
    if ((rc = ff_value_hist_init(&s->hist, shape->Vc)) == FF_OK)
        rc = load_all(s, dir, opts, rep);
    if (rc == FF_OK && s->count[0] + s->count[1] + s->count[2] == 0)
        rc = ff_error(FF_EINVAL, "%s: no usable patient (every row skipped or no modality)",
                      dir);
    if (rc != FF_OK) {
        ff_site_free(s);
        return rc;
    }
    *out = s;
    return FF_OK;
}

void ff_site_free(ff_site *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->ids[i]);
    free(s->ids);
    free(s->split);
    free(s->lines);
    free(s->age);
    free(s->attr);
    for (int a = SITE_ATTR_BUILTIN; a < s->nattr; a++)
        for (int v = 0; v < s->attrs[a].nvalues; v++)
            free(s->attrs[a].values[v]);
    free(s->labels);
    free(s->known);
    free(s->text);
    free(s->text_len);
    free(s->words);
    free(s->ev_off);
    free(s->ev_code);
    free(s->ev_val);
    free(s->ev_hours);
    free(s->img_slot);
    free(s->img);
    free(s->tabv);
    free(s->tab_has);
    ff_value_hist_free(&s->hist);
    for (int sp = 0; sp < FF_SPLIT_COUNT; sp++)
        free(s->members[sp]);
    free(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Accessors                                                                                 */
/* ---------------------------------------------------------------------------------------- */

size_t ff_site_count(const ff_site *s, ff_split split)
{
    return split < FF_SPLIT_COUNT ? s->count[split] : 0;
}

const ff_data_shape *ff_site_shape(const ff_site *s)
{
    return &s->shape;
}

const ff_value_hist *ff_site_value_hist(const ff_site *s)
{
    return &s->hist;
}

const char *ff_site_patient_id(const ff_site *s, ff_split split, size_t i)
{
    if (split >= FF_SPLIT_COUNT || i >= s->count[split])
        return NULL;
    return s->ids[s->members[split][i]];
}

int ff_site_attr_count(const ff_site *s)
{
    return s->nattr;
}

const char *ff_site_attr_name(const ff_site *s, int a)
{
    return a >= 0 && a < s->nattr ? s->attrs[a].name : NULL;
}

int ff_site_attr_nvalues(const ff_site *s, int a)
{
    if (a == SITE_ATTR_SEX)
        return 4;
    if (a == SITE_ATTR_AGE_BAND) /* "unknown" only when some patient's age is */
        return s->age_unknown ? 4 : 3;
    return a > 0 && a < s->nattr ? s->attrs[a].nvalues : 0;
}

const char *ff_site_attr_value(const ff_site *s, int a, int v)
{
    if (v < 0 || v >= ff_site_attr_nvalues(s, a))
        return NULL;
    if (a == SITE_ATTR_SEX)
        return sex_values[v];
    if (a == SITE_ATTR_AGE_BAND)
        return age_bands[v];
    return s->attrs[a].values[v];
}

int ff_site_patient_attr(const ff_site *s, ff_split split, size_t i, int a)
{
    if (split >= FF_SPLIT_COUNT || i >= s->count[split] || a < 0 || a >= s->nattr)
        return -1;
    return s->attr[(size_t)s->members[split][i] * SITE_MAX_ATTRS + (size_t)a];
}

/* " admission 0.120 (12/100)" (binary: prevalence), " los labelled 100" (regression),
 * " grade labelled 100" (multiclass), " death events 0.300 (30/100)" (survival). */
static void print_task_counts(FILE *out, const ff_task *t, long pos, long lab)
{
    if (t->kind == FF_TASK_BINARY || t->kind == FF_TASK_SURVIVAL)
        fprintf(out, " %s%s %.3f (%ld/%ld)", t->name,
                t->kind == FF_TASK_SURVIVAL ? " events" : "", lab ? (double)pos / lab : 0.0, pos,
                lab);
    else
        fprintf(out, " %s labelled %ld", t->name, lab);
}

void ff_load_report_print(const ff_load_report *r, FILE *out)
{
    fprintf(out, "patients: train %ld, val %ld, test %ld\n", r->patients[0], r->patients[1],
            r->patients[2]);
    for (int sp = 0; sp < FF_SPLIT_COUNT; sp++) {
        fprintf(out, "prevalence %-5s:", ff_split_name((ff_split)sp));
        for (int k = 0; k < r->tasks.n; k++)
            print_task_counts(out, &r->tasks.t[k], r->positives[sp][k], r->labelled[sp][k]);
        fputc('\n', out);
    }
    long total = r->patients[0] + r->patients[1] + r->patients[2];
    fprintf(out, "modalities: image %ld, note %ld, ehr %ld, all three %ld (of %ld)\n",
            r->with_image, r->with_text, r->with_ehr, r->with_all, total);
    static const char *const files[3] = {"patients.csv", "notes.csv", "events.csv"};
    for (int k = 0; k < r->tasks.n; k++)
        if (r->label_missing[k]) {
            const ff_task *t = &r->tasks.t[k];
            if (t->kind == FF_TASK_SURVIVAL)
                fprintf(out, "patients.csv: no column %s or %s: every %s label unknown\n",
                        t->time, t->event, t->name);
            else
                fprintf(out, "patients.csv: no column %s: every %s label unknown\n", t->label,
                        t->name);
        }
    if (r->split_derived)
        fprintf(out, "patients.csv: no split column: split derived from the patient id "
                "(FNV-1a mod 10: 0-5 train, 6-7 val, 8-9 test)\n");
    for (int f = 0; f < 3; f++)
        if (r->delim[f] && r->delim[f] != ',')
            fprintf(out, "%s: delimiter %s detected (no comma in the header): read with it\n",
                    files[f], r->delim[f] == ';' ? "';' (semicolon)" : "tab");
    fprintf(out, "note words per patient: median %ld, p90 %ld, max %ld\n", r->words_p50,
            r->words_p90, r->words_max);
    fprintf(out, "notes cut at the model's %ld tokens: %ld of %ld patients with notes (%.1f%%)\n",
            r->text_limit, r->notes_cut, r->with_text,
            r->with_text ? 100.0 * (double)r->notes_cut / (double)r->with_text : 0.0);
    fprintf(out, "events per patient (kept): median %ld, p90 %ld, max %ld; rows %ld, older "
            "than the last Le dropped %ld\n", r->events_p50, r->events_p90, r->events_max,
            r->event_rows, r->events_dropped);
    fprintf(out, "event histories cut to the model's %ld most recent: %ld of %ld patients with "
            "events (%.1f%%)\n", r->event_limit, r->events_cut, r->with_ehr,
            r->with_ehr ? 100.0 * (double)r->events_cut / (double)r->with_ehr : 0.0);
    fprintf(out, "value bins: %s edges\n", r->edges_local ? "local (this site only)" : "shared");
    if (r->has_tabular_file)
        fprintf(out, "tabular.csv: %ld of %ld patients have a row\n", r->with_tab, total);
    if (r->tabular_unread)
        fprintf(out, "tabular.csv: present, not read (the model config declares no tabular: "
                "features; docs/model.md \"Tabular modality\")\n");
    long sk = 0;
    for (int i = 0; i < FF_SKIP_COUNT; i++)
        sk += r->skipped[i];
    fprintf(out, "skipped: %ld\n", sk);
    for (int i = 0; i < FF_SKIP_COUNT; i++)
        if (r->skipped[i])
            fprintf(out, "  %-40s %ld\n", ff_skip_reason_name((ff_skip_reason)i), r->skipped[i]);
}

void ff_load_report_log(const ff_load_report *r, const char *site_name)
{
    FF_LOG_INFO("site %s: patients train=%ld val=%ld test=%ld image=%ld note=%ld ehr=%ld "
                "edges=%s", site_name, r->patients[0], r->patients[1], r->patients[2],
                r->with_image, r->with_text, r->with_ehr, r->edges_local ? "local" : "shared");
    for (int i = 0; i < FF_SKIP_COUNT; i++)
        if (r->skipped[i])
            FF_LOG_INFO("site %s: skipped %ld: %s", site_name, r->skipped[i],
                        ff_skip_reason_name((ff_skip_reason)i));
}

/* ---------------------------------------------------------------------------------------- */
/* One patient's raw events (the explainer's view of what the loader kept)                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    const char *want;
    int col[4], ncols, Vc;
    ff_site_event *ev;
    size_t n, cap;
    const char *shown;
} patient_events_ctx;

static int row_patient_event(const ff_csv_row *r, void *vctx)
{
    patient_events_ctx *c = vctx;
    if (c->ncols == 0) {
        static const char *const names[] = {"patient_id", "hours_before", "code", "value"};
        return header_simple(r, c->shown, names, c->col, 4, &c->ncols);
    }
    double hours, value;
    if (r->bad_utf8_line || r->nfields != c->ncols || strcmp(r->fields[c->col[0]], c->want) != 0 ||
        event_row_why(r, c->col, c->ncols, &hours, &value))
        return FF_OK; /* not this patient's, or a row the loader skips */
    if (ff_grow(&c->ev, &c->cap, c->n + 1, sizeof *c->ev) != FF_OK)
        return ff_error_prefix(FF_ENOMEM, "%s: ", c->shown);
    ff_site_event *e = &c->ev[c->n];
    e->code = strdup(r->fields[c->col[2]]);
    e->value = strdup(r->fields[c->col[3]]);
    if (!e->code || !e->value) {
        free(e->code);
        free(e->value);
        return ff_error(FF_ENOMEM, "%s: out of memory", c->shown);
    }
    e->hours = hours;
    e->code_id = ff_tok_code(e->code, strlen(e->code), c->Vc);
    c->n++;
    return FF_OK;
}

static int cmp_site_event(const void *a, const void *b)
{
    const ff_site_event *x = a, *y = b;
    return event_order((float)x->hours, x->code_id, (float)y->hours, y->code_id);
}

void ff_site_events_free(ff_site_event *ev, size_t n)
{
    for (size_t i = 0; ev && i < n; i++) {
        free(ev[i].code);
        free(ev[i].value);
    }
    free(ev);
}

int ff_site_patient_events(const char *dir, const char *patient_id, int Vc, ff_site_event **out,
                           size_t *n)
{
    *out = NULL;
    *n = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/events.csv", dir);
    if (access(path, F_OK) != 0)
        return FF_OK; /* no events: the modality is absent */
    patient_events_ctx c = {.want = patient_id, .Vc = Vc, .shown = path};
    int rc = ff_csv_read(path, path, 0, row_patient_event, &c);
    if (rc != FF_OK) {
        ff_site_events_free(c.ev, c.n);
        return rc;
    }
    if (c.n)
        qsort(c.ev, c.n, sizeof *c.ev, cmp_site_event);
    *out = c.ev;
    *n = c.n;
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* One patient's note text (the explainer's view of what the loader tokenised)              */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    const char *want;
    size_t want_len;
    int col[2], ncols;
    char *text;
    size_t len, cap;
    const char *shown;
} patient_notes_ctx;

static int row_patient_note(const ff_csv_row *r, void *vctx)
{
    patient_notes_ctx *c = vctx;
    if (c->ncols == 0) {
        static const char *const names[] = {"patient_id", "text"};
        return header_simple(r, c->shown, names, c->col, 2, &c->ncols);
    }
    /* row_notes' checks: a row it skips adds nothing */
    if (r->bad_utf8_line || r->nfields != c->ncols || r->lens[c->col[0]] != c->want_len ||
        memcmp(r->fields[c->col[0]], c->want, c->want_len) != 0)
        return FF_OK;
    size_t add = r->lens[c->col[1]], sep = c->len > 0;
    if (add > SIZE_MAX - c->len - sep - 1)
        return ff_error(FF_ENOMEM, "%s:%ld: note too long", c->shown, r->line);
    if (ff_grow(&c->text, &c->cap, c->len + sep + add + 1, 1) != FF_OK)
        return ff_error_prefix(FF_ENOMEM, "%s: ", c->shown);
    if (sep)
        c->text[c->len++] = ' ';
    memcpy(c->text + c->len, r->fields[c->col[1]], add);
    c->len += add;
    c->text[c->len] = '\0';
    return FF_OK;
}

int ff_site_patient_notes(const char *dir, const char *patient_id, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/notes.csv", dir);
    patient_notes_ctx c = {.want = patient_id, .want_len = strlen(patient_id), .shown = path};
    int rc = access(path, F_OK) == 0 ? ff_csv_read(path, path, 0, row_patient_note, &c) : FF_OK;
    if (rc == FF_OK && !c.text && !(c.text = calloc(1, 1))) /* no note: "" */
        rc = ff_error(FF_ENOMEM, "%s: out of memory", path);
    if (rc != FF_OK) {
        free(c.text);
        return rc;
    }
    *out = c.text;
    *len = c.len;
    return FF_OK;
}
