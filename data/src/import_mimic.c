/* MIMIC-IV-ED (+ MIMIC-IV hosp/icu) to the site format: one patient row per ED stay.
 *
 * Index time = ED intime (arrival). The inputs are what is known at triage: the triage note
 * (chief complaint, acuity, vitals as words) and events strictly before intime (labs whose
 * specimen was drawn and result stored before it, diagnoses of admissions discharged before
 * it, vitals of earlier ED stays). Labels look forward from the stay (disposition, ICU within
 * 24 h of leaving the ED, in-hospital death). Order of work: the small tables build the
 * cohort in memory (stays, subjects, admissions); then the event tables are streamed once
 * each and every qualifying row goes straight to the events.csv of the subject's site.
 * Messages and logs carry counts, file names and record numbers, never record contents. */
#include "import_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ICU_WINDOW_S (24 * 3600)

static const char *const table_names[FF_MIMIC_TABLES] = {
    "edstays", "triage", "vitalsign", "patients", "admissions", "diagnoses_icd",
    "labevents", "d_labitems", "icustays"};

const char *ff_mimic_table_name(ff_mimic_table t)
{
    return t < FF_MIMIC_TABLES ? table_names[t] : "?";
}

ff_mimic_opts ff_mimic_opts_default(void)
{
    return (ff_mimic_opts){.ed_dir = NULL, .hosp_dir = NULL, .icu_dir = NULL, .sites = 0,
                           .seed = 1, .strict = 0, .lookback_days = 0};
}

/* Coarse race groups for fairness reports (MIMIC's 33 labels would mostly be singletons). */
enum { RACE_WHITE, RACE_BLACK, RACE_HISPANIC, RACE_ASIAN, RACE_OTHER, RACE_UNKNOWN };
static const char *const race_names[] = {"white", "black", "hispanic", "asian", "other",
                                         "unknown"};

typedef struct {
    int64_t stay_id, subject_id, hadm_id; /* hadm_id -1 = none */
    int64_t intime, outtime;              /* seconds (shifted calendar) */
    int year;                             /* of intime, for the age */
    int subj;                             /* subject index */
    int next_subj, next_hadm;             /* chains: -1 ends */
    unsigned char admitted, icu, death, race;
    char transport[24];
    char *note; /* owned; NULL = no triage row */
} mstay;

typedef struct {
    int64_t subject_id;
    int first_stay, nstays;
    int has_patient, anchor_age, anchor_year;
    char sex;
    int site, split; /* site 0-based */
} msubj;

typedef struct mimic mimic;
/* Handles one data record; sets *why (and returns FF_OK) for a malformed one. */
typedef int (*row_fn)(mimic *m, char **f, const char **why);

struct mimic {
    const ff_mimic_opts *o;
    ff_mimic_report *rep;
    mstay *stays;
    size_t nstays, cap_stays;
    msubj *subj;
    size_t nsubj, cap_subj;
    int64_t *adm_disch; /* per admission of a cohort subject */
    size_t nadm, cap_adm;
    ff_i64map subj_map, stay_map, hadm_map, adm_map, lab_items;
    int nsites;                        /* site directories (1 when o->sites == 0) */
    FILE *events[FF_MIMIC_MAX_SITES]; /* open while the event tables stream */
    /* the table being read */
    ff_mimic_table table;
    const char *shown;
    const char *const *cols;
    int ncols, col[16], header_fields;
    long record;
    row_fn fn;
};

/* ---------------------------------------------------------------------------------------- */
/* Table reading                                                                             */
/* ---------------------------------------------------------------------------------------- */

static int on_record(const ff_csv_row *r, void *ctx)
{
    mimic *m = ctx;
    m->record = r->line;
    if (r->line == 1) {
        m->header_fields = r->nfields;
        return ff_gzcsv_columns(r, m->shown, m->cols, m->ncols, m->col);
    }
    m->rep->rows[m->table]++;
    const char *why = NULL;
    char *f[16];
    if (r->nfields != m->header_fields) {
        why = "wrong number of fields";
    } else {
        for (int k = 0; k < m->ncols; k++)
            f[k] = r->fields[m->col[k]];
        int rc = m->fn(m, f, &why);
        if (rc != FF_OK)
            return rc;
    }
    if (!why)
        return FF_OK;
    if (m->o->strict)
        return ff_error(FF_EFORMAT, "%s:%ld: %s", m->shown, r->line, why);
    m->rep->bad_rows[m->table]++;
    return FF_OK;
}

/* Streams DIR/NAME.csv.gz (or DIR/NAME.csv) through fn with the columns cols (at most 16),
 * in that order, as f[0..n). */
static int read_table(mimic *m, const char *dir, ff_mimic_table t, const char *const *cols,
                      int n, row_fn fn)
{
    char path[4096];
    struct stat sb;
    int w = snprintf(path, sizeof path, "%s/%s.csv.gz", dir, table_names[t]);
    if (w < 0 || (size_t)w >= sizeof path - 1)
        return ff_error(FF_EINVAL, "%s: path too long", dir);
    if (stat(path, &sb) != 0) {
        path[w - 3] = '\0'; /* the uncompressed table */
        if (stat(path, &sb) != 0)
            return ff_error(FF_ENOTFOUND, "%s/%s.csv.gz: table not found (%s)", dir,
                            table_names[t], strerror(errno));
    }
    m->table = t;
    m->shown = path;
    m->cols = cols;
    m->ncols = n;
    m->fn = fn;
    m->header_fields = -1;
    m->record = 0;
    int rc = ff_gzcsv_read(path, path, m->o->strict, on_record, m);
    if (rc == FF_OK && m->header_fields < 0)
        rc = ff_error(FF_EFORMAT, "%s: empty file (no header)", path);
    FF_LOG_INFO("import: %s: %ld records, %ld malformed", table_names[t], m->rep->rows[t],
                m->rep->bad_rows[t]);
    m->shown = NULL;
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Cohort tables                                                                             */
/* ---------------------------------------------------------------------------------------- */

static int race_group(const char *s)
{
    if (!strncmp(s, "WHITE", 5) || !strncmp(s, "PORTUGUESE", 10))
        return RACE_WHITE;
    if (!strncmp(s, "BLACK", 5))
        return RACE_BLACK;
    if (!strncmp(s, "HISPANIC", 8) || !strncmp(s, "SOUTH AMERICAN", 14))
        return RACE_HISPANIC;
    if (!strncmp(s, "ASIAN", 5))
        return RACE_ASIAN;
    if (!*s || !strcmp(s, "UNKNOWN") || !strcmp(s, "UNABLE TO OBTAIN") ||
        !strcmp(s, "PATIENT DECLINED TO ANSWER"))
        return RACE_UNKNOWN;
    return RACE_OTHER;
}

/* Attribute value: lower case, letters/digits/space only, at most 23 bytes. */
static void attr_copy(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 1 < cap; s++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ' ')
            dst[n++] = c;
    }
    dst[n] = '\0';
    if (!n)
        snprintf(dst, cap, "unknown");
}

enum { ES_SUBJECT, ES_HADM, ES_STAY, ES_IN, ES_OUT, ES_RACE, ES_ARRIVAL, ES_DISP };
static const char *const edstays_cols[] = {"subject_id", "hadm_id", "stay_id", "intime",
                                           "outtime", "race", "arrival_transport",
                                           "disposition"};

static int row_edstays(mimic *m, char **f, const char **why)
{
    mstay s = {0};
    s.hadm_id = -1;
    if (ff_parse_id(f[ES_SUBJECT], &s.subject_id) || ff_parse_id(f[ES_STAY], &s.stay_id) ||
        (*f[ES_HADM] && ff_parse_id(f[ES_HADM], &s.hadm_id))) {
        *why = "subject_id, stay_id or hadm_id is not an id";
        return FF_OK;
    }
    if (ff_parse_datetime(f[ES_IN], &s.intime) || ff_parse_datetime(f[ES_OUT], &s.outtime)) {
        *why = "intime or outtime is not a date-time";
        return FF_OK;
    }
    if (ff_i64map_get(&m->stay_map, s.stay_id) >= 0) {
        *why = "stay_id appears on an earlier record";
        return FF_OK;
    }
    s.year = atoi(f[ES_IN]);
    s.admitted = strcmp(f[ES_DISP], "ADMITTED") == 0;
    s.race = (unsigned char)race_group(f[ES_RACE]);
    attr_copy(s.transport, sizeof s.transport, f[ES_ARRIVAL]);
    s.next_hadm = -1;
    int si = ff_i64map_get(&m->subj_map, s.subject_id);
    if (si < 0) {
        if (ff_grow(&m->subj, &m->cap_subj, m->nsubj + 1, sizeof *m->subj) != FF_OK)
            return FF_ENOMEM;
        si = (int)m->nsubj++;
        m->subj[si] = (msubj){.subject_id = s.subject_id, .first_stay = -1, .sex = 'U'};
        if (ff_i64map_put(&m->subj_map, s.subject_id, si) != FF_OK)
            return FF_ENOMEM;
    }
    if (ff_grow(&m->stays, &m->cap_stays, m->nstays + 1, sizeof *m->stays) != FF_OK)
        return FF_ENOMEM;
    int idx = (int)m->nstays;
    s.subj = si;
    s.next_subj = m->subj[si].first_stay;
    m->subj[si].first_stay = idx;
    m->subj[si].nstays++;
    if (s.hadm_id >= 0) {
        s.next_hadm = ff_i64map_get(&m->hadm_map, s.hadm_id);
        if (ff_i64map_put(&m->hadm_map, s.hadm_id, idx) != FF_OK)
            return FF_ENOMEM;
    }
    m->stays[m->nstays++] = s;
    return ff_i64map_put(&m->stay_map, s.stay_id, idx);
}

enum { PA_SUBJECT, PA_GENDER, PA_AGE, PA_YEAR };
static const char *const patients_cols[] = {"subject_id", "gender", "anchor_age",
                                            "anchor_year"};

static int row_patients(mimic *m, char **f, const char **why)
{
    int64_t id, age, year;
    if (ff_parse_id(f[PA_SUBJECT], &id) || ff_parse_id(f[PA_AGE], &age) ||
        ff_parse_id(f[PA_YEAR], &year) || age > 130 || year > 9999) {
        *why = "subject_id, anchor_age or anchor_year is not a valid number";
        return FF_OK;
    }
    int si = ff_i64map_get(&m->subj_map, id);
    if (si < 0)
        return FF_OK; /* not an ED patient */
    msubj *s = &m->subj[si];
    s->has_patient = 1;
    s->anchor_age = (int)age;
    s->anchor_year = (int)year;
    s->sex = (f[PA_GENDER][0] == 'F' || f[PA_GENDER][0] == 'M') && !f[PA_GENDER][1]
                 ? f[PA_GENDER][0]
                 : 'U';
    return FF_OK;
}

enum { AD_SUBJECT, AD_HADM, AD_DISCH, AD_EXPIRE };
static const char *const admissions_cols[] = {"subject_id", "hadm_id", "dischtime",
                                              "hospital_expire_flag"};

static int row_admissions(mimic *m, char **f, const char **why)
{
    int64_t subject, hadm, disch;
    if (ff_parse_id(f[AD_SUBJECT], &subject) || ff_parse_id(f[AD_HADM], &hadm) ||
        ff_parse_datetime(f[AD_DISCH], &disch)) {
        *why = "subject_id, hadm_id or dischtime is malformed";
        return FF_OK;
    }
    if (ff_i64map_get(&m->subj_map, subject) < 0)
        return FF_OK;
    if (strcmp(f[AD_EXPIRE], "1") == 0)
        for (int i = ff_i64map_get(&m->hadm_map, hadm); i >= 0; i = m->stays[i].next_hadm)
            m->stays[i].death = 1;
    if (ff_grow(&m->adm_disch, &m->cap_adm, m->nadm + 1, sizeof *m->adm_disch) != FF_OK)
        return FF_ENOMEM;
    m->adm_disch[m->nadm] = disch;
    return ff_i64map_put(&m->adm_map, hadm, (int)m->nadm++);
}

enum { IC_HADM, IC_IN };
static const char *const icustays_cols[] = {"hadm_id", "intime"};

/* ICU label: an ICU stay of the same hospital admission starting at most 24 h after the ED
 * outtime (one starting during the ED stay counts too). */
static int row_icustays(mimic *m, char **f, const char **why)
{
    int64_t hadm, in;
    if (ff_parse_id(f[IC_HADM], &hadm) || ff_parse_datetime(f[IC_IN], &in)) {
        *why = "hadm_id or intime is malformed";
        return FF_OK;
    }
    for (int i = ff_i64map_get(&m->hadm_map, hadm); i >= 0; i = m->stays[i].next_hadm)
        if (in <= m->stays[i].outtime + ICU_WINDOW_S)
            m->stays[i].icu = 1;
    return FF_OK;
}

enum { TR_STAY, TR_TEMP, TR_HR, TR_RR, TR_O2, TR_SBP, TR_DBP, TR_PAIN, TR_ACUITY, TR_CC };
static const char *const triage_cols[] = {"stay_id", "temperature", "heartrate", "resprate",
                                          "o2sat", "sbp", "dbp", "pain", "acuity",
                                          "chiefcomplaint"};

/* Appends "name level. " for a vital sign with thresholds (lo, hi): the words a triage nurse
 * would use, so that the hashed-token text encoder sees the signal. */
static void vital_words(char *buf, size_t cap, const char *name, const char *field, double lo,
                        double hi, const char *low, const char *high)
{
    double v;
    if (ff_parse_num(field, &v))
        return;
    const char *lvl = v < lo ? low : v > hi ? high : "normal";
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, " %s %s.", name, lvl);
}

static int row_triage(mimic *m, char **f, const char **why)
{
    int64_t stay;
    if (ff_parse_id(f[TR_STAY], &stay)) {
        *why = "stay_id is not an id";
        return FF_OK;
    }
    int i = ff_i64map_get(&m->stay_map, stay);
    if (i < 0)
        return FF_OK;
    char words[512] = "";
    double a;
    if (!ff_parse_num(f[TR_ACUITY], &a) && a >= 1 && a <= 5)
        snprintf(words, sizeof words, " acuity %d.", (int)a);
    /* Fahrenheit; adult thresholds (fever 100.4 F, tachycardia 100, tachypnoea 20,
     * hypoxia 92 %, hypotension SBP 90, severe hypertension SBP 180). */
    vital_words(words, sizeof words, "temperature", f[TR_TEMP], 96.8, 100.4, "low", "fever");
    vital_words(words, sizeof words, "heart rate", f[TR_HR], 60, 100, "low", "high");
    vital_words(words, sizeof words, "resp rate", f[TR_RR], 12, 20, "low", "high");
    vital_words(words, sizeof words, "oxygen saturation", f[TR_O2], 92, 100, "low", "high");
    vital_words(words, sizeof words, "blood pressure", f[TR_SBP], 90, 180, "low", "high");
    double pain;
    if (!ff_parse_num(f[TR_PAIN], &pain) && pain >= 0 && pain <= 10) {
        size_t n0 = strlen(words);
        snprintf(words + n0, sizeof words - n0, " pain %s.",
                 pain < 1 ? "none" : pain < 4 ? "mild" : pain < 7 ? "moderate" : "severe");
    }
    size_t n = strlen(f[TR_CC]) + strlen(words) + 1;
    if (n == 1)
        return FF_OK;
    char *note = malloc(n);
    if (!note)
        return ff_error(FF_ENOMEM, "out of memory for a note");
    snprintf(note, n, "%s%s", f[TR_CC], f[TR_CC][0] ? words : words + 1);
    free(m->stays[i].note);
    m->stays[i].note = note;
    return FF_OK;
}

static int row_d_labitems(mimic *m, char **f, const char **why)
{
    int64_t item;
    if (ff_parse_id(f[0], &item)) {
        *why = "itemid is not an id";
        return FF_OK;
    }
    return ff_i64map_put(&m->lab_items, item, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Splits and sites                                                                          */
/* ---------------------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull; /* splitmix64 finaliser */
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Seeded key of a subject for a purpose (1 = site order, 2 = split order). */
static uint64_t subj_key(uint64_t seed, int64_t subject_id, uint64_t purpose)
{
    return mix64(mix64(seed ^ (purpose << 56)) ^ (uint64_t)subject_id);
}

typedef struct {
    uint64_t key;
    int64_t id;
    int idx;
} keyed;

static int keyed_cmp(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Sites: subjects in seeded order, cut into contiguous chunks balanced by stay count (a
 * subject goes to site floor(N * stays_before / total_stays)). Splits: within each site,
 * subjects in a second seeded order, the first round(0.6 n) train, up to round(0.8 n) val,
 * the rest test. Every stay of a subject shares its site and split. */
static int assign_sites(mimic *m, long total_stays)
{
    int rc = FF_OK;
    keyed *k = malloc((m->nsubj ? m->nsubj : 1) * sizeof *k);
    if (!k)
        return ff_error(FF_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < m->nsubj; i++)
        if (m->subj[i].has_patient)
            k[n++] = (keyed){subj_key(m->o->seed, m->subj[i].subject_id, 1),
                             m->subj[i].subject_id, (int)i};
    qsort(k, n, sizeof *k, keyed_cmp);
    long before = 0;
    for (size_t i = 0; i < n; i++) {
        msubj *s = &m->subj[k[i].idx];
        s->site = (int)((long long)m->nsites * before / (total_stays ? total_stays : 1));
        before += s->nstays;
    }
    for (int site = 0; site < m->nsites && rc == FF_OK; site++) {
        size_t c = 0;
        for (size_t i = 0; i < m->nsubj; i++)
            if (m->subj[i].has_patient && m->subj[i].site == site)
                k[c++] = (keyed){subj_key(m->o->seed, m->subj[i].subject_id, 2),
                                 m->subj[i].subject_id, (int)i};
        if (c == 0) {
            rc = ff_error(FF_EINVAL, "--sites %d leaves site-%d without patients (%zu patients"
                          " in all): use fewer sites", m->nsites, site + 1, n);
            break;
        }
        qsort(k, c, sizeof *k, keyed_cmp);
        size_t ntrain = (size_t)llround(0.6 * (double)c), nval = (size_t)llround(0.8 * (double)c);
        for (size_t r = 0; r < c; r++)
            m->subj[k[r].idx].split = r < ntrain ? FF_SPLIT_TRAIN
                                      : r < nval ? FF_SPLIT_VAL
                                                 : FF_SPLIT_TEST;
    }
    free(k);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static int site_dir(const mimic *m, const char *out, int site, char *buf, size_t cap)
{
    int w = m->o->sites == 0 ? snprintf(buf, cap, "%s", out)
                             : snprintf(buf, cap, "%s/site-%d", out, site + 1);
    if (w < 0 || (size_t)w + 32 >= cap)
        return ff_error(FF_EINVAL, "%s: path too long", out);
    return FF_OK;
}

static FILE *open_out(const char *dir, const char *name, int *rc)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        *rc = ff_error(FF_EIO, "%s: cannot create (%s)", path, strerror(errno));
    return f;
}

static int close_out(FILE *f, const char *dir, const char *name)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return ff_error(FF_EIO, "%s/%s: write failed", dir, name);
    return FF_OK;
}

static const char attribution_text[] =
    "# Attribution\n\n"
    "The data in this folder is derived from:\n\n"
    "- **MIMIC-IV-ED Demo** (v2.2): Johnson, A., Bulgarelli, L., Pollard, T., Celi, L. A.,\n"
    "  Mark, R., Horng, S. PhysioNet. https://physionet.org/content/mimic-iv-ed-demo/2.2/\n"
    "- **MIMIC-IV Clinical Database Demo** (v2.2): Johnson, A., Bulgarelli, L., Pollard, T.,\n"
    "  Horng, S., Celi, L. A., Mark, R. PhysioNet.\n"
    "  https://physionet.org/content/mimic-iv-demo/2.2/\n"
    "- PhysioNet: Goldberger, A., et al. PhysioBank, PhysioToolkit, and PhysioNet: Components\n"
    "  of a new research resource for complex physiologic signals. Circulation 101(23),\n"
    "  e215-e220 (2000).\n\n"
    "Both are made available under the Open Data Commons Open Database License v1.0 (ODbL),\n"
    "https://opendatacommons.org/licenses/odbl/1-0/ . This folder is a **derived database**\n"
    "produced by `fedfuse import mimic-iv-ed` (one row per ED stay; triage text; labs, prior\n"
    "diagnoses and vitals before ED arrival; outcome labels). If you make it public it must\n"
    "also be licensed under the ODbL v1.0, with this attribution kept.\n\n"
    "When the importer is pointed at the full (credentialed) MIMIC-IV-ED / MIMIC-IV releases\n"
    "instead of the demos, their PhysioNet Credentialed Health Data License applies and the\n"
    "output must not be shared.\n";

static const char license_text[] =
    "# Licence of this derived database\n\n"
    "Open Data Commons Open Database License (ODbL) v1.0\n"
    "https://opendatacommons.org/licenses/odbl/1-0/\n\n"
    "Derived from MIMIC-IV-ED Demo 2.2 and MIMIC-IV Clinical Database Demo 2.2 (PhysioNet),\n"
    "both ODbL v1.0; the full licence text is LICENSE.txt in each PhysioNet release folder.\n"
    "See ATTRIBUTION.md for the citation.\n";

static int write_text(const char *dir, const char *name, const char *text)
{
    int rc = FF_OK;
    FILE *f = open_out(dir, name, &rc);
    if (!f)
        return rc;
    fputs(text, f);
    return close_out(f, dir, name);
}

static int write_attribution(const char *dir)
{
    int rc = write_text(dir, "ATTRIBUTION.md", attribution_text);
    return rc == FF_OK ? write_text(dir, "LICENSE.md", license_text) : rc;
}

static int write_patients_notes(mimic *m, const char *dir, int site)
{
    int rc = FF_OK;
    FILE *p = open_out(dir, "patients.csv", &rc), *n = p ? open_out(dir, "notes.csv", &rc) : NULL;
    if (!p || !n)
        goto out;
    fputs("patient_id,age,sex,split,label_admission,label_icu,label_critical,race,"
          "arrival_transport\n",
          p);
    fputs("patient_id,text\n", n);
    ff_mimic_report *rep = m->rep;
    for (size_t i = 0; i < m->nstays; i++) {
        const mstay *s = &m->stays[i];
        const msubj *u = &m->subj[s->subj];
        if (!u->has_patient || u->site != site)
            continue;
        int age = u->anchor_age + (s->year - u->anchor_year);
        age = age < 0 ? 0 : age > 130 ? 130 : age;
        int critical = s->icu || s->death;
        fprintf(p, "%lld,%d,%c,%s,%d,%d,%d,%s,%s\n", (long long)s->stay_id, age, u->sex,
                ff_split_name((ff_split)u->split), s->admitted, s->icu, critical,
                race_names[s->race], s->transport);
        rep->stays++;
        rep->admitted += s->admitted;
        rep->icu24 += s->icu;
        rep->deaths += s->death;
        rep->critical += critical;
        rep->split_stays[u->split]++;
        rep->site_stays[site]++;
        if (s->note) {
            char id[32];
            snprintf(id, sizeof id, "%lld", (long long)s->stay_id);
            if ((rc = ff_csv_put(n, id, ',')) != FF_OK || (rc = ff_csv_put(n, s->note, '\n')))
                goto out;
            rep->with_note++;
        }
    }
    for (size_t i = 0; i < m->nsubj; i++)
        if (m->subj[i].has_patient && m->subj[i].site == site)
            rep->site_subjects[site]++, rep->subjects++;
out:
    if (p && close_out(p, dir, "patients.csv") != FF_OK && rc == FF_OK)
        rc = FF_EIO;
    if (n && close_out(n, dir, "notes.csv") != FF_OK && rc == FF_OK)
        rc = FF_EIO;
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Event tables (streamed)                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Writes the event (taken at time t, known from time avail >= t; code; value or NULL) for
 * every stay of the subject whose index time is strictly after avail (and within the
 * lookback of t). hours_before is measured from t. Returns the count written. */
static long emit(mimic *m, int si, int64_t t, int64_t avail, const char *code,
                 const double *value)
{
    const msubj *u = &m->subj[si];
    if (!u->has_patient)
        return 0;
    FILE *f = m->events[u->site];
    double lookback_s = m->o->lookback_days * 86400.0;
    long n = 0;
    for (int i = u->first_stay; i >= 0; i = m->stays[i].next_subj) {
        int64_t d = m->stays[i].intime - t;
        if (m->stays[i].intime <= avail || (lookback_s > 0 && (double)d > lookback_s))
            continue; /* the leakage rule: nothing known at or after the index time */
        fprintf(f, "%lld,%.6f,%s,", (long long)m->stays[i].stay_id, (double)d / 3600.0, code);
        if (value)
            fprintf(f, "%.10g", *value);
        fputc('\n', f);
        n++;
    }
    return n;
}

enum { DX_SUBJECT, DX_HADM, DX_CODE, DX_VERSION };
static const char *const diagnoses_cols[] = {"subject_id", "hadm_id", "icd_code",
                                             "icd_version"};

/* A diagnosis is known once its admission is discharged: its time is the dischtime. */
static int row_diagnoses(mimic *m, char **f, const char **why)
{
    int64_t subject, hadm, ver;
    if (ff_parse_id(f[DX_SUBJECT], &subject) || ff_parse_id(f[DX_HADM], &hadm) ||
        ff_parse_id(f[DX_VERSION], &ver) || ver > 99) {
        *why = "subject_id, hadm_id or icd_version is not an id";
        return FF_OK;
    }
    const char *c = f[DX_CODE];
    size_t len = strlen(c);
    if (len == 0 || len > 16 || strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.") != len) {
        *why = "icd_code is empty or not alphanumeric";
        return FF_OK;
    }
    int si = ff_i64map_get(&m->subj_map, subject);
    if (si < 0)
        return FF_OK;
    int a = ff_i64map_get(&m->adm_map, hadm);
    if (a < 0) {
        m->rep->dx_unknown_admission++;
        return FF_OK;
    }
    char code[32];
    snprintf(code, sizeof code, "ICD%d:%s", (int)ver, c);
    m->rep->ev_dx += emit(m, si, m->adm_disch[a], m->adm_disch[a], code, NULL);
    return FF_OK;
}

enum { LB_SUBJECT, LB_ITEM, LB_CHART, LB_STORE, LB_VALUENUM };
static const char *const labevents_cols[] = {"subject_id", "itemid", "charttime", "storetime",
                                             "valuenum"};

/* A lab counts when its specimen was taken (charttime) and its result stored (storetime, when
 * recorded) before the index time; hours_before is measured from charttime. */
static int row_labevents(mimic *m, char **f, const char **why)
{
    int64_t subject, item, chart, store = INT64_MIN;
    if (ff_parse_id(f[LB_SUBJECT], &subject) || ff_parse_id(f[LB_ITEM], &item) ||
        ff_parse_datetime(f[LB_CHART], &chart) ||
        (*f[LB_STORE] && ff_parse_datetime(f[LB_STORE], &store))) {
        *why = "subject_id, itemid, charttime or storetime is malformed";
        return FF_OK;
    }
    int si = ff_i64map_get(&m->subj_map, subject);
    if (si < 0)
        return FF_OK;
    if (ff_i64map_get(&m->lab_items, item) < 0) {
        m->rep->lab_unknown_item++;
        return FF_OK;
    }
    double v;
    int has_v = ff_parse_num(f[LB_VALUENUM], &v) == 0;
    char code[32];
    snprintf(code, sizeof code, "LAB:%lld", (long long)item);
    int64_t avail = store > chart ? store : chart; /* availability decides eligibility */
    m->rep->ev_lab += emit(m, si, chart, avail, code, has_v ? &v : NULL);
    return FF_OK;
}

enum { VS_SUBJECT, VS_CHART, VS_FIRST };
static const char *const vitalsign_cols[] = {"subject_id", "charttime", "temperature",
                                             "heartrate", "resprate", "o2sat", "sbp", "dbp",
                                             "pain"};
#define VS_NVITALS 7

static int row_vitalsign(mimic *m, char **f, const char **why)
{
    int64_t subject, chart;
    if (ff_parse_id(f[VS_SUBJECT], &subject) || ff_parse_datetime(f[VS_CHART], &chart)) {
        *why = "subject_id or charttime is malformed";
        return FF_OK;
    }
    int si = ff_i64map_get(&m->subj_map, subject);
    if (si < 0)
        return FF_OK;
    for (int k = 0; k < VS_NVITALS; k++) {
        double v;
        if (ff_parse_num(f[VS_FIRST + k], &v))
            continue; /* empty, or free text such as pain "unable" */
        char code[32];
        snprintf(code, sizeof code, "VITAL:%s", vitalsign_cols[VS_FIRST + k]);
        m->rep->ev_vital += emit(m, si, chart, chart, code, &v);
    }
    return FF_OK;
}

static int stream_events(mimic *m, const char *out)
{
    int rc = FF_OK;
    char dir[4096];
    for (int s = 0; s < m->nsites && rc == FF_OK; s++) {
        if ((rc = site_dir(m, out, s, dir, sizeof dir)) != FF_OK)
            break;
        if ((m->events[s] = open_out(dir, "events.csv", &rc)))
            fputs("patient_id,hours_before,code,value\n", m->events[s]);
    }
    if (rc == FF_OK)
        rc = read_table(m, m->o->hosp_dir, FF_MIMIC_DIAGNOSES, diagnoses_cols, 4, row_diagnoses);
    if (rc == FF_OK)
        rc = read_table(m, m->o->hosp_dir, FF_MIMIC_LABEVENTS, labevents_cols, 5, row_labevents);
    if (rc == FF_OK)
        rc = read_table(m, m->o->ed_dir, FF_MIMIC_VITALSIGN, vitalsign_cols, 9, row_vitalsign);
    for (int s = 0; s < m->nsites; s++) {
        if (!m->events[s])
            continue;
        int r = site_dir(m, out, s, dir, sizeof dir);
        if (r == FF_OK)
            r = close_out(m->events[s], dir, "events.csv");
        m->events[s] = NULL;
        if (rc == FF_OK)
            rc = r;
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */

static int prepare_out(const mimic *m, const char *out)
{
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/%s", out, m->o->sites ? "site-1" : "patients.csv");
    if (ff_path_exists(probe))
        return ff_error(FF_ESTATE, "%s: already exists; import into a new folder", probe);
    int rc = ff_mkdir_p(out, 0755);
    char dir[4096];
    for (int s = 0; m->o->sites && s < m->nsites && rc == FF_OK; s++)
        if ((rc = site_dir(m, out, s, dir, sizeof dir)) == FF_OK)
            rc = ff_mkdir_p(dir, 0755);
    return rc;
}

static int check_opts(const ff_mimic_opts *o)
{
    if (!o->ed_dir || !o->hosp_dir || !o->icu_dir)
        return ff_error(FF_EINVAL, "import: the ed, hosp and icu folders are all required");
    if (o->sites < 0 || o->sites > FF_MIMIC_MAX_SITES)
        return ff_error(FF_ERANGE, "import: sites must be in 0..%d", FF_MIMIC_MAX_SITES);
    if (!(o->lookback_days >= 0) || !isfinite(o->lookback_days))
        return ff_error(FF_ERANGE, "import: lookback_days must be >= 0");
    return FF_OK;
}

static int build_cohort(mimic *m)
{
    const ff_mimic_opts *o = m->o;
    int rc = read_table(m, o->ed_dir, FF_MIMIC_EDSTAYS, edstays_cols, 8, row_edstays);
    if (rc == FF_OK)
        rc = read_table(m, o->hosp_dir, FF_MIMIC_PATIENTS, patients_cols, 4, row_patients);
    if (rc == FF_OK)
        rc = read_table(m, o->hosp_dir, FF_MIMIC_ADMISSIONS, admissions_cols, 4, row_admissions);
    if (rc == FF_OK)
        rc = read_table(m, o->icu_dir, FF_MIMIC_ICUSTAYS, icustays_cols, 2, row_icustays);
    if (rc == FF_OK)
        rc = read_table(m, o->ed_dir, FF_MIMIC_TRIAGE, triage_cols, 10, row_triage);
    static const char *const d_lab_cols[] = {"itemid"};
    if (rc == FF_OK)
        rc = read_table(m, o->hosp_dir, FF_MIMIC_D_LABITEMS, d_lab_cols, 1, row_d_labitems);
    if (rc != FF_OK)
        return rc;
    for (size_t i = 0; i < m->nsubj; i++)
        if (!m->subj[i].has_patient) {
            if (o->strict)
                return ff_error(FF_EFORMAT, "%s/patients.csv.gz: an ED subject has no row "
                                "(age and sex unknown)", o->hosp_dir);
            m->rep->stays_no_patient += m->subj[i].nstays;
        }
    if (m->nstays == 0 || m->rep->stays_no_patient == (long)m->nstays)
        return ff_error(FF_EFORMAT, "%s/edstays.csv.gz: no usable ED stay", o->ed_dir);
    return FF_OK;
}

int ff_mimic_import(const ff_mimic_opts *o, const char *out_dir, ff_mimic_report *rep)
{
    ff_mimic_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    int rc = check_opts(o);
    if (rc != FF_OK)
        return rc;
    mimic *m = calloc(1, sizeof *m);
    if (!m)
        return ff_error(FF_ENOMEM, "out of memory");
    m->o = o;
    m->rep = rep;
    m->nsites = o->sites ? o->sites : 1;
    rep->sites = m->nsites;
    if ((rc = ff_i64map_init(&m->subj_map, 1024)) != FF_OK ||
        (rc = ff_i64map_init(&m->stay_map, 1024)) != FF_OK ||
        (rc = ff_i64map_init(&m->hadm_map, 1024)) != FF_OK ||
        (rc = ff_i64map_init(&m->adm_map, 1024)) != FF_OK ||
        (rc = ff_i64map_init(&m->lab_items, 1024)) != FF_OK)
        goto out;
    if ((rc = build_cohort(m)) != FF_OK)
        goto out;
    if ((rc = assign_sites(m, (long)m->nstays - rep->stays_no_patient)) != FF_OK)
        goto out;
    if ((rc = prepare_out(m, out_dir)) != FF_OK || (rc = write_attribution(out_dir)) != FF_OK)
        goto out;
    char dir[4096];
    for (int s = 0; s < m->nsites && rc == FF_OK; s++) {
        if ((rc = site_dir(m, out_dir, s, dir, sizeof dir)) != FF_OK)
            break;
        rc = write_patients_notes(m, dir, s);
        if (rc == FF_OK && o->sites)
            rc = write_attribution(dir);
    }
    if (rc == FF_OK)
        rc = stream_events(m, out_dir);
    if (rc == FF_OK)
        FF_LOG_INFO("import: %ld stays of %ld patients into %d site(s); events: %ld lab, "
                    "%ld diagnosis, %ld vital", rep->stays, rep->subjects, m->nsites,
                    rep->ev_lab, rep->ev_dx, rep->ev_vital);
out:
    for (size_t i = 0; i < m->nstays; i++)
        free(m->stays[i].note);
    free(m->stays);
    free(m->subj);
    free(m->adm_disch);
    ff_i64map_free(&m->subj_map);
    ff_i64map_free(&m->stay_map);
    ff_i64map_free(&m->hadm_map);
    ff_i64map_free(&m->adm_map);
    ff_i64map_free(&m->lab_items);
    for (int s = 0; s < FF_MIMIC_MAX_SITES; s++)
        if (m->events[s])
            fclose(m->events[s]);
    free(m);
    return rc;
}

void ff_mimic_report_print(const ff_mimic_report *r, FILE *out)
{
    fprintf(out, "stays: %ld of %ld patients (train %ld, val %ld, test %ld stays)\n", r->stays,
            r->subjects, r->split_stays[0], r->split_stays[1], r->split_stays[2]);
    fprintf(out, "labels: admission %ld, icu within 24 h %ld, in-hospital death %ld, "
            "critical %ld\n", r->admitted, r->icu24, r->deaths, r->critical);
    fprintf(out, "notes: %ld stays with a triage note\n", r->with_note);
    fprintf(out, "events before ED arrival: lab %ld, diagnosis %ld, vital %ld\n", r->ev_lab,
            r->ev_dx, r->ev_vital);
    for (int s = 0; r->sites > 1 && s < r->sites; s++)
        fprintf(out, "site-%d: %ld stays of %ld patients\n", s + 1, r->site_stays[s],
                r->site_subjects[s]);
    long bad = 0;
    for (int t = 0; t < FF_MIMIC_TABLES; t++)
        bad += r->bad_rows[t];
    fprintf(out, "skipped: %ld malformed records, %ld stays without a patients row, %ld labs "
            "of unknown items, %ld diagnoses of unknown admissions\n", bad,
            r->stays_no_patient, r->lab_unknown_item, r->dx_unknown_admission);
    for (int t = 0; t < FF_MIMIC_TABLES; t++)
        if (r->bad_rows[t])
            fprintf(out, "  malformed %-16s %ld\n", table_names[t], r->bad_rows[t]);
}
