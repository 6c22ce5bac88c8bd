/* fedfuse import fhir: a FHIR R4 Bulk Data export (NDJSON, one resource type per file) into
 * the site format. One patient row per index visit (an Encounter of the index classes,
 * default EMER), patient_id = the Encounter id. Files are read one line at a time with
 * jansson, in the order Patient, Encounter, Condition, MedicationRequest, Procedure,
 * Observation, DocumentReference, DiagnosticReport: memory holds the patients, the index
 * visits and the encounters the label rules look at, never the events, which are written as
 * they are read. Leakage rule: an event or note enters a visit's inputs only when its time is
 * strictly before the visit's start. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "ingest_internal.h"

#define MAX_LINE (64L * 1024 * 1024)
#define NO_TIME INT64_MIN

/* ---------------------------------------------------------------------------------------- */
/* Rules (YAML, ff_cfg) and the default code mapping                                          */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char system[160];
    char code[64];
    char event[64];
} code_map;

typedef struct {
    ff_cfg_strlist encounter_classes, encounter_types, condition_codes;
    double within_hours, death_within_days;
} label_rule;

typedef struct {
    ff_cfg_strlist index_classes, observation_categories;
    int64_t split_seed;
    label_rule labels[FF_DATA_TASKS];
    ff_cfg_list codes; /* code_map */
} fhir_rules;

static const ff_cfg_field code_fields[] = {
    {"system", FF_CFG_STRING, offsetof(code_map, system), 160, 1, 0, 0, NULL, NULL, NULL,
     "code system URI, e.g. http://loinc.org", NULL},
    {"code", FF_CFG_STRING, offsetof(code_map, code), 64, 1, 0, 0, NULL, NULL, NULL,
     "the code", NULL},
    {"event", FF_CFG_STRING, offsetof(code_map, event), 64, 1, 0, 0, NULL, NULL, NULL,
     "the event code written to events.csv", NULL},
    {0}};

#define RULE(key, help)                                                                      \
    {key, FF_CFG_SECTION, 0, 0, 0, 0, 0, NULL, NULL, rule_fields, help, NULL}
static const ff_cfg_field rule_fields[] = {
    {"encounter_classes", FF_CFG_STRLIST, offsetof(label_rule, encounter_classes), 0, 0, 0,
     FF_CFG_STRLIST_MAX, NULL, NULL, NULL, "1 when an Encounter of these classes starts within", NULL},
    {"encounter_types", FF_CFG_STRLIST, offsetof(label_rule, encounter_types), 0, 0, 0,
     FF_CFG_STRLIST_MAX, NULL, NULL, NULL, "... or an Encounter with one of these type codes", NULL},
    {"condition_codes", FF_CFG_STRLIST, offsetof(label_rule, condition_codes), 0, 0, 0,
     FF_CFG_STRLIST_MAX, NULL, NULL, NULL, "... or a Condition with one of these codes", NULL},
    {"within_hours", FF_CFG_DOUBLE, offsetof(label_rule, within_hours), 0, 0, 0, 1e6, "24",
     NULL, NULL, "window after the index start for the three above", NULL},
    {"death_within_days", FF_CFG_DOUBLE, offsetof(label_rule, death_within_days), 0, 0, 0, 1e5,
     "0", NULL, NULL, "... or death within this many days of the index start (0 = unused)", NULL},
    {0}};

static const ff_cfg_field label_fields[] = {
    {"admission", FF_CFG_SECTION, 0 * sizeof(label_rule), 0, 0, 0, 0, NULL, NULL, rule_fields,
     "label_admission", NULL},
    {"icu", FF_CFG_SECTION, 1 * sizeof(label_rule), 0, 0, 0, 0, NULL, NULL, rule_fields,
     "label_icu", NULL},
    {"critical", FF_CFG_SECTION, 2 * sizeof(label_rule), 0, 0, 0, 0, NULL, NULL, rule_fields,
     "label_critical", NULL},
    {0}};

static const ff_cfg_field rules_schema[] = {
    {"index_classes", FF_CFG_STRLIST, offsetof(fhir_rules, index_classes), 0, 1, 1,
     FF_CFG_STRLIST_MAX, NULL, NULL, NULL, "Encounter.class codes of index visits", NULL},
    {"observation_categories", FF_CFG_STRLIST, offsetof(fhir_rules, observation_categories), 0,
     1, 1, FF_CFG_STRLIST_MAX, NULL, NULL, NULL, "Observation categories kept", NULL},
    {"split_seed", FF_CFG_INT, offsetof(fhir_rules, split_seed), 0, 0, 0, 1e15, "1", NULL,
     NULL, "seed of the patient-level train/val/test split", NULL},
    {"labels", FF_CFG_SECTION, offsetof(fhir_rules, labels), 0, 1, 0, 0, NULL, NULL,
     label_fields, "label rules", NULL},
    {"codes", FF_CFG_LIST, offsetof(fhir_rules, codes), sizeof(code_map), 0, 0, 100000, NULL,
     NULL, code_fields, "code mapping entries added to (or replacing) the defaults", NULL},
    {0}};

/* The rules without --rules (docs/data.md and configs/fhir-rules.yaml state the same). */
const char ff_fhir_default_rules[] =
    "index_classes: [EMER]\n"
    "observation_categories: [vital-signs, laboratory]\n"
    "split_seed: 1\n"
    "labels:\n"
    "  admission: {encounter_classes: [IMP], within_hours: 24}\n"
    "  icu: {encounter_types: ['305351004'], within_hours: 24}\n"
    "  critical: {encounter_types: ['305351004'], within_hours: 24, death_within_days: 30}\n";

#define LOINC "http://loinc.org"
/* LOINC vital signs and common labs (as Synthea codes them) to the event vocabulary of the
 * MIMIC importer where one exists (VITAL:heartrate, ...). */
static const code_map default_codes[] = {
    {LOINC, "8867-4", "VITAL:heartrate"},     {LOINC, "9279-1", "VITAL:resprate"},
    {LOINC, "2708-6", "VITAL:o2sat"},         {LOINC, "59408-5", "VITAL:o2sat"},
    {LOINC, "8480-6", "VITAL:sbp"},           {LOINC, "8462-4", "VITAL:dbp"},
    {LOINC, "8310-5", "VITAL:temperature"},   {LOINC, "72514-3", "VITAL:pain"},
    {LOINC, "29463-7", "VITAL:weight"},       {LOINC, "8302-2", "VITAL:height"},
    {LOINC, "39156-5", "VITAL:bmi"},          {LOINC, "2339-0", "LAB:glucose"},
    {LOINC, "2345-7", "LAB:glucose"},         {LOINC, "38483-4", "LAB:creatinine"},
    {LOINC, "2160-0", "LAB:creatinine"},      {LOINC, "6299-2", "LAB:urea_nitrogen"},
    {LOINC, "3094-0", "LAB:urea_nitrogen"},   {LOINC, "2951-2", "LAB:sodium"},
    {LOINC, "2947-0", "LAB:sodium"},          {LOINC, "2823-3", "LAB:potassium"},
    {LOINC, "6298-4", "LAB:potassium"},       {LOINC, "2075-0", "LAB:chloride"},
    {LOINC, "2069-3", "LAB:chloride"},        {LOINC, "2028-9", "LAB:bicarbonate"},
    {LOINC, "20565-8", "LAB:bicarbonate"},    {LOINC, "17861-6", "LAB:calcium"},
    {LOINC, "49765-1", "LAB:calcium"},        {LOINC, "718-7", "LAB:hemoglobin"},
    {LOINC, "4544-3", "LAB:hematocrit"},      {LOINC, "6690-2", "LAB:wbc"},
    {LOINC, "777-3", "LAB:platelets"},        {LOINC, "4548-4", "LAB:hba1c"},
    {LOINC, "2093-3", "LAB:cholesterol"},     {LOINC, "2571-8", "LAB:triglycerides"},
    {LOINC, "2085-9", "LAB:hdl"},             {LOINC, "18262-6", "LAB:ldl"},
    {LOINC, "33762-6", "LAB:ntprobnp"},       {LOINC, "6598-7", "LAB:troponin"},
    {LOINC, "10839-9", "LAB:troponin"},       {LOINC, "2524-7", "LAB:lactate"},
    {LOINC, "1988-5", "LAB:crp"},             {LOINC, "1742-6", "LAB:alt"},
    {LOINC, "1920-8", "LAB:ast"},             {LOINC, "1975-2", "LAB:bilirubin"},
    {LOINC, "2885-2", "LAB:protein"},         {LOINC, "1751-7", "LAB:albumin"},
    {LOINC, "6768-6", "LAB:alkaline_phosphatase"}};

/* Prefix of an unmapped code by its system. */
static const char *system_prefix(const char *sys)
{
    static const char *const tab[][2] = {
        {"http://loinc.org", "LOINC"},
        {"http://snomed.info/sct", "SCT"},
        {"http://www.nlm.nih.gov/research/umls/rxnorm", "RXNORM"},
        {"http://hl7.org/fhir/sid/icd-10-cm", "ICD10"},
        {"http://hl7.org/fhir/sid/icd-10", "ICD10"},
        {"http://www.ama-assn.org/go/cpt", "CPT"}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(sys, tab[i][0]) == 0)
            return tab[i][1];
    return "CODE";
}

/* ---------------------------------------------------------------------------------------- */
/* Options, report                                                                           */
/* ---------------------------------------------------------------------------------------- */

ff_fhir_opts ff_fhir_opts_default(void)
{
    ff_fhir_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

const char *ff_fhir_skip_name(ff_fhir_skip r)
{
    static const char *const names[FF_FHIR_SKIP_COUNT] = {
        "malformed JSON line",
        "resourceType differs from its file",
        "no or unknown subject patient",
        "no usable time",
        "no code",
        "patient without an index visit",
        "at or after every index visit",
        "observation category not kept",
        "status entered-in-error",
        "attachment not plain text",
        "index visit with no earlier event or note"};
    return (unsigned)r < FF_FHIR_SKIP_COUNT ? names[r] : "?";
}

static const char *const rtype_names[FF_FHIR_TYPES] = {
    "Patient", "Encounter", "Condition", "MedicationRequest", "Procedure", "Observation",
    "DocumentReference", "DiagnosticReport"};

const char *ff_fhir_type_name(ff_fhir_type t)
{
    return (unsigned)t < FF_FHIR_TYPES ? rtype_names[t] : "?";
}

/* ---------------------------------------------------------------------------------------- */
/* Time                                                                                      */
/* ---------------------------------------------------------------------------------------- */

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* FHIR date / dateTime / instant to UTC seconds (milliseconds kept as a fraction dropped:
 * second resolution). "YYYY", "YYYY-MM", "YYYY-MM-DD" are the start of that period, UTC;
 * a dateTime without zone is taken as UTC. */
int ff_fhir_parse_time(const char *s, int64_t *out)
{
    int y, mo = 1, d = 1, h = 0, mi = 0, se = 0;
    size_t n = strlen(s);
    if (n < 4 || ff_data_parse_digits(s, 4, &y))
        return -1;
    const char *p = s + 4;
    if (*p == '-') {
        if (ff_data_parse_digits(p + 1, 2, &mo) || mo < 1 || mo > 12)
            return -1;
        p += 3;
        if (*p == '-') {
            if (ff_data_parse_digits(p + 1, 2, &d) || d < 1 || d > 31)
                return -1;
            p += 3;
        }
    }
    int64_t off = 0;
    if (*p == 'T') {
        if (ff_data_parse_digits(p + 1, 2, &h) || p[3] != ':' || ff_data_parse_digits(p + 4, 2, &mi) || h > 23 || mi > 59)
            return -1;
        p += 6;
        if (*p == ':') {
            if (ff_data_parse_digits(p + 1, 2, &se) || se > 60)
                return -1;
            p += 3;
            if (*p == '.') {
                p++;
                while (*p >= '0' && *p <= '9')
                    p++;
            }
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (ff_data_parse_digits(p + 1, 2, &oh) || p[3] != ':' || ff_data_parse_digits(p + 4, 2, &om) || oh > 14 ||
                om > 59)
                return -1;
            off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
            p += 6;
        }
    }
    if (*p)
        return -1;
    *out = ff_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* State                                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char *id;
    int64_t birth, death; /* NO_TIME when unknown / alive */
    char sex;
    int first_visit;      /* index of its first index visit, -1 */
} fpatient;

typedef struct {
    char id[68];
    int pat, next; /* next visit of the same patient, -1 */
    int64_t start;
    int label[FF_DATA_TASKS];
    long events;
    int64_t note_time;
    char *note;
} visit;

typedef struct {
    int pat;
    int64_t start;
    unsigned mask; /* label rules it meets (bit k) */
} cand;

typedef struct {
    const ff_fhir_opts *o;
    ff_fhir_report *rep;
    fhir_rules rules;
    ff_strmap codes; /* "system|code" -> index into codev */
    char (*codev)[64];
    size_t ncodev;
    ff_strmap pid;   /* Patient id -> index */
    fpatient *pat;
    size_t npat, cappat;
    visit *vis;
    size_t nvis, capvis;
    cand *cands;
    size_t ncand, capcand;
    FILE *events;
    const char *shown; /* file being read */
    long line;
} fctx;

static int grow_arr(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return FF_OK;
    size_t nc = *cap ? 2 * *cap : 64;
    void *q = realloc(*p, nc * elem);
    if (!q)
        return ff_error(FF_ENOMEM, "out of memory");
    *p = q;
    *cap = nc;
    return FF_OK;
}

static int in_strlist(const ff_cfg_strlist *l, const char *v)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i], v) == 0)
            return 1;
    return 0;
}

static int skip(fctx *c, ff_fhir_type t, ff_fhir_skip why)
{
    c->rep->skipped[t][why]++;
    int fatal = why == FF_FHIR_SKIP_JSON || why == FF_FHIR_SKIP_TYPE ||
                why == FF_FHIR_SKIP_NO_TIME || why == FF_FHIR_SKIP_NO_CODE;
    if (c->o->strict && fatal)
        return ff_error(FF_EFORMAT, "%s:%ld: %s", c->shown, c->line, ff_fhir_skip_name(why));
    return FF_OK;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "Patient/ID" or "urn:uuid:ID" to the patient index, -1. */
static int subject_of(fctx *c, json_t *r)
{
    json_t *s = json_object_get(r, "subject");
    if (!s)
        s = json_object_get(r, "patient");
    const char *ref = json_is_object(s) ? jstr(s, "reference") : NULL;
    if (!ref)
        return -1;
    if (strncmp(ref, "Patient/", 8) == 0)
        ref += 8;
    else if (strncmp(ref, "urn:uuid:", 9) == 0)
        ref += 9;
    return ff_strmap_get(&c->pid, ref);
}

static int64_t time_of(json_t *r, const char *const *keys)
{
    for (; *keys; keys++) {
        json_t *v = json_object_get(r, *keys);
        const char *s = NULL;
        if (json_is_string(v))
            s = json_string_value(v);
        else if (json_is_object(v))
            s = jstr(v, "start");
        int64_t t;
        if (s && ff_fhir_parse_time(s, &t) == 0)
            return t;
    }
    return NO_TIME;
}

/* The first coding of a CodeableConcept: system and code. */
static int first_coding(json_t *cc, const char **sys, const char **code)
{
    json_t *codings = json_is_object(cc) ? json_object_get(cc, "coding") : NULL;
    size_t i;
    json_t *cd;
    json_array_foreach(codings, i, cd)
    {
        const char *s = jstr(cd, "system"), *k = jstr(cd, "code");
        if (k && k[0]) {
            *sys = s ? s : "";
            *code = k;
            return 0;
        }
    }
    return -1;
}

static int event_code(fctx *c, const char *sys, const char *code, char *out, size_t cap)
{
    char key[256];
    snprintf(key, sizeof key, "%s|%s", sys, code);
    int at = ff_strmap_get(&c->codes, key);
    if (at >= 0) {
        snprintf(out, cap, "%s", c->codev[at]);
        return 1;
    }
    snprintf(out, cap, "%s:%s", system_prefix(sys), code);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Per resource                                                                              */
/* ---------------------------------------------------------------------------------------- */

static int on_patient(fctx *c, json_t *r)
{
    const char *id = jstr(r, "id");
    if (!id || !id[0])
        return skip(c, FF_FHIR_PATIENT, FF_FHIR_SKIP_NO_SUBJECT);
    int64_t birth;
    const char *bd = jstr(r, "birthDate");
    if (!bd || ff_fhir_parse_time(bd, &birth) != 0)
        return skip(c, FF_FHIR_PATIENT, FF_FHIR_SKIP_NO_TIME);
    int rc = grow_arr((void **)&c->pat, &c->cappat, c->npat, sizeof *c->pat);
    if (rc != FF_OK)
        return rc;
    fpatient *p = &c->pat[c->npat];
    if (ff_strmap_get(&c->pid, id) >= 0) /* a repeated id: the later row is ignored */
        return skip(c, FF_FHIR_PATIENT, FF_FHIR_SKIP_NO_SUBJECT);
    if (!(p->id = strdup(id)))
        return ff_error(FF_ENOMEM, "out of memory");
    p->birth = birth;
    p->death = NO_TIME;
    const char *dd = jstr(r, "deceasedDateTime");
    int64_t t;
    if (dd && ff_fhir_parse_time(dd, &t) == 0)
        p->death = t;
    const char *g = jstr(r, "gender");
    p->sex = !g ? 'U' : strcmp(g, "female") == 0 ? 'F' : strcmp(g, "male") == 0 ? 'M'
           : strcmp(g, "other") == 0 ? 'X' : 'U';
    p->first_visit = -1;
    if ((rc = ff_strmap_put(&c->pid, id, (int)c->npat)) != FF_OK)
        return rc;
    c->npat++;
    c->rep->used[FF_FHIR_PATIENT]++;
    return FF_OK;
}

static int on_encounter(fctx *c, json_t *r)
{
    int p = subject_of(c, r);
    if (p < 0)
        return skip(c, FF_FHIR_ENCOUNTER, FF_FHIR_SKIP_NO_SUBJECT);
    static const char *const tkeys[] = {"period", NULL};
    int64_t start = time_of(r, tkeys);
    if (start == NO_TIME)
        return skip(c, FF_FHIR_ENCOUNTER, FF_FHIR_SKIP_NO_TIME);
    json_t *cls = json_object_get(r, "class");
    const char *klass = json_is_object(cls) ? jstr(cls, "code") : NULL;
    if (!klass)
        return skip(c, FF_FHIR_ENCOUNTER, FF_FHIR_SKIP_NO_CODE);
    int rc;
    const char *id = jstr(r, "id");
    if (in_strlist(&c->rules.index_classes, klass) && id && ff_ingest_valid_id(id) &&
        strlen(id) < sizeof c->vis[0].id) {
        if ((rc = grow_arr((void **)&c->vis, &c->capvis, c->nvis, sizeof *c->vis)) != FF_OK)
            return rc;
        visit *v = &c->vis[c->nvis];
        memset(v, 0, sizeof *v);
        snprintf(v->id, sizeof v->id, "%s", id);
        v->pat = p;
        v->start = start;
        v->note_time = NO_TIME;
        /* Keep each patient's visits in file order. */
        v->next = -1;
        int *link = &c->pat[p].first_visit;
        while (*link >= 0)
            link = &c->vis[*link].next;
        *link = (int)c->nvis;
        c->nvis++;
    }
    unsigned mask = 0;
    json_t *types = json_object_get(r, "type");
    for (int k = 0; k < FF_DATA_TASKS; k++) {
        const label_rule *lr = &c->rules.labels[k];
        if (in_strlist(&lr->encounter_classes, klass))
            mask |= 1u << k;
        size_t i;
        json_t *t;
        json_array_foreach(types, i, t)
        {
            const char *sys, *code;
            if (first_coding(t, &sys, &code) == 0 && in_strlist(&lr->encounter_types, code))
                mask |= 1u << k;
        }
    }
    if (mask) {
        if ((rc = grow_arr((void **)&c->cands, &c->capcand, c->ncand, sizeof *c->cands)) != FF_OK)
            return rc;
        c->cands[c->ncand++] = (cand){p, start, mask};
    }
    c->rep->used[FF_FHIR_ENCOUNTER]++;
    return FF_OK;
}

/* Writes one event for every index visit of patient p that starts after t. Returns the number
 * written (>= 0) or an error. */
static long put_events(fctx *c, int p, int64_t t, const char *code, int has_value, double value)
{
    long n = 0;
    for (int v = c->pat[p].first_visit; v >= 0; v = c->vis[v].next) {
        visit *vi = &c->vis[v];
        if (t >= vi->start)
            continue;
        double hours = (double)(vi->start - t) / 3600.0;
        fputs(vi->id, c->events);
        fprintf(c->events, ",%.6f,", hours);
        if (ff_csv_put(c->events, code, ',') != 0)
            return ff_error(FF_EIO, "events.csv: write failed");
        if (has_value) { /* the shortest of %.15g / %.17g that reads back as the same double */
            char num[40];
            snprintf(num, sizeof num, "%.15g", value);
            if (strtod(num, NULL) != value)
                snprintf(num, sizeof num, "%.17g", value);
            fputs(num, c->events);
        }
        fputc('\n', c->events);
        vi->events++;
        n++;
    }
    return n;
}

/* Condition labels: a Condition with one of a rule's codes starting within its window. */
static void condition_labels(fctx *c, int p, int64_t t, const char *code)
{
    for (int k = 0; k < FF_DATA_TASKS; k++) {
        const label_rule *lr = &c->rules.labels[k];
        if (!in_strlist(&lr->condition_codes, code))
            continue;
        for (int v = c->pat[p].first_visit; v >= 0; v = c->vis[v].next)
            if (t >= c->vis[v].start && t <= c->vis[v].start + (int64_t)(lr->within_hours * 3600))
                c->vis[v].label[k] = 1;
    }
}

/* Status and subject of an event or note: p = the patient, or -1 (skipped, rc returned). */
static int usable(fctx *c, ff_fhir_type type, json_t *r, int *p)
{
    const char *st = jstr(r, "status");
    *p = -1;
    if (st && strcmp(st, "entered-in-error") == 0)
        return skip(c, type, FF_FHIR_SKIP_ERROR);
    if ((*p = subject_of(c, r)) < 0)
        return skip(c, type, FF_FHIR_SKIP_NO_SUBJECT);
    return FF_OK;
}

static int on_event(fctx *c, ff_fhir_type type, json_t *r)
{
    static const char *const cond_t[] = {"onsetDateTime", "onsetPeriod", "recordedDate", NULL};
    static const char *const med_t[] = {"authoredOn", NULL};
    static const char *const proc_t[] = {"performedDateTime", "performedPeriod", NULL};
    static const char *const obs_t[] = {"effectiveDateTime", "effectivePeriod",
                                        "effectiveInstant", "issued", NULL};
    int p, rc = usable(c, type, r, &p);
    if (p < 0)
        return rc;
    const char *const *tk = type == FF_FHIR_CONDITION ? cond_t
                          : type == FF_FHIR_MEDICATION ? med_t
                          : type == FF_FHIR_PROCEDURE ? proc_t : obs_t;
    int64_t t = time_of(r, tk);
    if (t == NO_TIME)
        return skip(c, type, FF_FHIR_SKIP_NO_TIME);
    json_t *cc = json_object_get(r, type == FF_FHIR_MEDICATION ? "medicationCodeableConcept"
                                                                 : "code");
    const char *sys, *code;
    if (first_coding(cc, &sys, &code) != 0)
        return skip(c, type, FF_FHIR_SKIP_NO_CODE);
    if (type == FF_FHIR_OBSERVATION) {
        int keep = 0;
        size_t i;
        json_t *cat;
        json_array_foreach(json_object_get(r, "category"), i, cat)
        {
            const char *cs, *ck;
            if (first_coding(cat, &cs, &ck) == 0 && in_strlist(&c->rules.observation_categories, ck))
                keep = 1;
        }
        if (!keep)
            return skip(c, type, FF_FHIR_SKIP_CATEGORY);
    }
    if (type == FF_FHIR_CONDITION)
        condition_labels(c, p, t, code);
    if (c->pat[p].first_visit < 0)
        return skip(c, type, FF_FHIR_SKIP_NO_VISIT);
    long n = 0;
    char ev[200];
    json_t *comps = type == FF_FHIR_OBSERVATION ? json_object_get(r, "component") : NULL;
    if (json_array_size(comps) > 0 && !json_object_get(r, "valueQuantity")) {
        /* A panel (blood pressure): one event per component. */
        size_t i;
        json_t *cp;
        json_array_foreach(comps, i, cp)
        {
            const char *csys, *ccode;
            if (first_coding(json_object_get(cp, "code"), &csys, &ccode) != 0)
                continue;
            json_t *vq = json_object_get(cp, "valueQuantity");
            json_t *val = json_is_object(vq) ? json_object_get(vq, "value") : NULL;
            c->rep->mapped += event_code(c, csys, ccode, ev, sizeof ev);
            long k = put_events(c, p, t, ev, json_is_number(val),
                                json_is_number(val) ? json_number_value(val) : 0);
            if (k < 0)
                return (int)k;
            n += k;
        }
    } else {
        json_t *vq = json_object_get(r, "valueQuantity");
        json_t *val = json_is_object(vq) ? json_object_get(vq, "value") : NULL;
        c->rep->mapped += event_code(c, sys, code, ev, sizeof ev);
        n = put_events(c, p, t, ev, json_is_number(val),
                       json_is_number(val) ? json_number_value(val) : 0);
        if (n < 0)
            return (int)n;
    }
    if (n == 0)
        return skip(c, type, FF_FHIR_SKIP_AFTER);
    c->rep->used[type]++;
    c->rep->events += n;
    return FF_OK;
}

/* Decodes a base64 attachment (OpenSSL's EVP_DecodeBlock) to NUL-terminated text. */
static char *decode_b64(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4 != 0 || n > (size_t)MAX_LINE)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    int m = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (m < 0) {
        free(out);
        return NULL;
    }
    m -= (s[n - 1] == '=') + (s[n - 2] == '=');
    out[m] = 0;
    return (char *)out;
}

static int on_note(fctx *c, ff_fhir_type type, json_t *r)
{
    static const char *const doc_t[] = {"date", NULL};
    static const char *const rep_t[] = {"issued", "effectiveDateTime", "effectivePeriod", NULL};
    int p, rc = usable(c, type, r, &p);
    if (p < 0)
        return rc;
    int64_t t = time_of(r, type == FF_FHIR_DOCUMENT ? doc_t : rep_t);
    if (t == NO_TIME)
        return skip(c, type, FF_FHIR_SKIP_NO_TIME);
    /* The text: DocumentReference.content[].attachment, DiagnosticReport.presentedForm[]. */
    const char *data = NULL;
    size_t i;
    json_t *it;
    json_t *arr = json_object_get(r, type == FF_FHIR_DOCUMENT ? "content" : "presentedForm");
    json_array_foreach(arr, i, it)
    {
        json_t *att = type == FF_FHIR_DOCUMENT ? json_object_get(it, "attachment") : it;
        const char *ct = json_is_object(att) ? jstr(att, "contentType") : NULL;
        const char *d = json_is_object(att) ? jstr(att, "data") : NULL;
        if (ct && d && strncmp(ct, "text/plain", 10) == 0) {
            data = d;
            break;
        }
    }
    if (!data)
        return skip(c, type, FF_FHIR_SKIP_NOT_TEXT);
    if (c->pat[p].first_visit < 0)
        return skip(c, type, FF_FHIR_SKIP_NO_VISIT);
    int used = 0;
    char *text = NULL;
    for (int v = c->pat[p].first_visit; v >= 0; v = c->vis[v].next) {
        visit *vi = &c->vis[v];
        /* The visit's note: the latest one strictly before its start (ties: the first read). */
        if (t >= vi->start || (vi->note && t <= vi->note_time))
            continue;
        if (!text && !(text = decode_b64(data)))
            return skip(c, type, FF_FHIR_SKIP_NOT_TEXT);
        char *copy = strdup(text);
        if (!copy) {
            free(text);
            return ff_error(FF_ENOMEM, "out of memory for a note");
        }
        free(vi->note);
        vi->note = copy;
        vi->note_time = t;
        used = 1;
    }
    free(text);
    if (!used)
        return skip(c, type, FF_FHIR_SKIP_AFTER);
    c->rep->used[type]++;
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static int is_type_file(const char *name, const char *type)
{
    size_t n = strlen(type), len = strlen(name);
    return strncmp(name, type, n) == 0 && name[n] == '.' && len > 7 &&
           strcmp(name + len - 7, ".ndjson") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_file(fctx *c, ff_fhir_type type, const char *path, const char *name)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return ff_error(FF_EIO, "%s: cannot open (%s)", path, strerror(errno));
    c->shown = name;
    c->line = 0;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = FF_OK;
    while (rc == FF_OK && (len = getline(&buf, &cap, f)) != -1) {
        c->line++;
        if (len <= 1 && (len == 0 || buf[0] == '\n'))
            continue;
        c->rep->lines[type]++;
        json_error_t err;
        json_t *r = len > MAX_LINE ? NULL : json_loadb(buf, (size_t)len, 0, &err);
        if (!json_is_object(r)) {
            json_decref(r);
            rc = skip(c, type, FF_FHIR_SKIP_JSON);
            continue;
        }
        const char *rt = jstr(r, "resourceType");
        if (!rt || strcmp(rt, rtype_names[type]) != 0)
            rc = skip(c, type, FF_FHIR_SKIP_TYPE);
        else if (type == FF_FHIR_PATIENT)
            rc = on_patient(c, r);
        else if (type == FF_FHIR_ENCOUNTER)
            rc = on_encounter(c, r);
        else if (type == FF_FHIR_DOCUMENT || type == FF_FHIR_REPORT)
            rc = on_note(c, type, r);
        else
            rc = on_event(c, type, r);
        json_decref(r);
    }
    if (rc == FF_OK && ferror(f))
        rc = ff_error(FF_EIO, "%s: read error", path);
    free(buf);
    fclose(f);
    return rc;
}

/* Reads every TYPE.*.ndjson of the folder for each type in order; counts the other files. */
static int read_all(fctx *c)
{
    DIR *d = opendir(c->o->in_dir);
    if (!d)
        return ff_error(FF_EIO, "%s: not a readable directory", c->o->in_dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = FF_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 8 || strcmp(e->d_name + len - 7, ".ndjson") != 0)
            continue;
        if ((rc = grow_arr((void **)&names, &cap, n, sizeof *names)) != FF_OK)
            break;
        if (!(names[n] = strdup(e->d_name))) {
            rc = ff_error(FF_ENOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == FF_OK)
        qsort(names, n, sizeof *names, cmp_str);
    for (int t = 0; t < FF_FHIR_TYPES && rc == FF_OK; t++) {
        for (size_t i = 0; i < n && rc == FF_OK; i++) {
            if (!is_type_file(names[i], rtype_names[t]))
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", c->o->in_dir, names[i]);
            c->rep->files++;
            rc = read_file(c, (ff_fhir_type)t, path, names[i]);
        }
        if (t == FF_FHIR_ENCOUNTER && rc == FF_OK && c->nvis == 0)
            rc = ff_error(FF_EFORMAT, "%s: no index visit (Encounter of class %s)",
                          c->o->in_dir, c->rules.index_classes.items[0]);
    }
    for (size_t i = 0; i < n; i++) {
        int known = 0;
        for (int t = 0; t < FF_FHIR_TYPES; t++)
            known |= is_type_file(names[i], rtype_names[t]);
        if (!known)
            c->rep->other_files++;
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Labels, patients.csv, notes.csv                                                           */
/* ---------------------------------------------------------------------------------------- */

static void encounter_and_death_labels(fctx *c)
{
    for (size_t v = 0; v < c->nvis; v++) {
        visit *vi = &c->vis[v];
        for (int k = 0; k < FF_DATA_TASKS; k++) {
            const label_rule *lr = &c->rules.labels[k];
            int64_t until = vi->start + (int64_t)(lr->within_hours * 3600);
            for (size_t i = 0; i < c->ncand; i++) {
                const cand *cd = &c->cands[i];
                if (cd->pat == vi->pat && (cd->mask >> k & 1) && cd->start >= vi->start &&
                    cd->start <= until)
                    vi->label[k] = 1;
            }
            int64_t death = c->pat[vi->pat].death;
            if (lr->death_within_days > 0 && death != NO_TIME && death >= vi->start &&
                death <= vi->start + (int64_t)(lr->death_within_days * 86400))
                vi->label[k] = 1;
        }
    }
}

/* Split of a patient: FNV-1a-32 of "<seed>:<patient id>" mod 10: 0-5 train, 6-7 val, 8-9 test. */
static const char *split_of(int64_t seed, const char *pid)
{
    char key[160];
    snprintf(key, sizeof key, "%lld:%s", (long long)seed, pid);
    uint32_t h = 2166136261u;
    for (const char *s = key; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    unsigned b = h % 10;
    return b < 6 ? "train" : b < 8 ? "val" : "test";
}

static int age_at(int64_t birth, int64_t t)
{
    int by, bm, bd, y, m, d;
    civil_from_days(birth >= 0 ? birth / 86400 : -((-birth + 86399) / 86400), &by, &bm, &bd);
    civil_from_days(t >= 0 ? t / 86400 : -((-t + 86399) / 86400), &y, &m, &d);
    int age = y - by - (m < bm || (m == bm && d < bd));
    return age < 0 ? 0 : age > 130 ? 130 : age;
}

static int write_outputs(fctx *c, const char *out_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/patients.csv", out_dir);
    FILE *pf = fopen(path, "w");
    snprintf(path, sizeof path, "%s/notes.csv", out_dir);
    FILE *nf = fopen(path, "w");
    int rc = FF_OK;
    if (!pf || !nf) {
        rc = ff_error(FF_EIO, "%s: cannot create (%s)", path, strerror(errno));
        goto out;
    }
    fputs("patient_id,age,sex,split,label_admission,label_icu,label_critical\n", pf);
    fputs("patient_id,text\n", nf);
    /* The split is drawn per patient, so the visits of one patient share it. */
    for (size_t v = 0; v < c->nvis; v++) {
        visit *vi = &c->vis[v];
        if (vi->events == 0 && !vi->note) {
            c->rep->skipped[FF_FHIR_ENCOUNTER][FF_FHIR_SKIP_EMPTY_VISIT]++;
            continue;
        }
        const char *split = split_of(c->rules.split_seed, c->pat[vi->pat].id);
        fprintf(pf, "%s,%d,%c,%s,%d,%d,%d\n", vi->id, age_at(c->pat[vi->pat].birth, vi->start),
                c->pat[vi->pat].sex, split, vi->label[0], vi->label[1], vi->label[2]);
        c->rep->visits++;
        for (int k = 0; k < FF_DATA_TASKS; k++)
            c->rep->positives[k] += vi->label[k];
        c->rep->split[split[0] == 't' && split[1] == 'r' ? 0 : split[0] == 'v' ? 1 : 2]++;
        if (vi->note) {
            if ((rc = ff_csv_put(nf, vi->id, ',')) != 0 || (rc = ff_csv_put(nf, vi->note, '\n')))
                break;
            c->rep->notes++;
        }
    }
    if (rc == FF_OK && (ferror(pf) || ferror(nf)))
        rc = ff_error(FF_EIO, "%s: write failed", out_dir);
out:
    if (pf && fclose(pf) != 0 && rc == FF_OK)
        rc = ff_error(FF_EIO, "%s/patients.csv: close failed", out_dir);
    if (nf && fclose(nf) != 0 && rc == FF_OK)
        rc = ff_error(FF_EIO, "%s/notes.csv: close failed", out_dir);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */

static int load_rules(fctx *c)
{
    int rc = c->o->rules_path
                 ? ff_cfg_load(c->o->rules_path, rules_schema, &c->rules)
                 : ff_cfg_load_str("default rules", ff_fhir_default_rules,
                                   strlen(ff_fhir_default_rules), rules_schema, &c->rules);
    if (rc != FF_OK)
        return rc;
    size_t nuser = c->rules.codes.count, ndef = sizeof default_codes / sizeof default_codes[0];
    if ((rc = ff_strmap_init(&c->codes, ndef + nuser)) != FF_OK)
        return rc;
    if (!(c->codev = calloc(ndef + nuser, sizeof *c->codev)))
        return ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; i < ndef + nuser && rc == FF_OK; i++) {
        const code_map *m = i < ndef ? &default_codes[i]
                                     : &((const code_map *)c->rules.codes.items)[i - ndef];
        if (!m->event[0] || strchr(m->event, '\n'))
            return ff_error(FF_ECONFIG, "%s: codes[%zu].event must be a non-empty line",
                            c->o->rules_path, i - ndef);
        char key[256];
        snprintf(key, sizeof key, "%s|%s", m->system, m->code);
        snprintf(c->codev[i], sizeof c->codev[i], "%s", m->event);
        rc = ff_strmap_put(&c->codes, key, (int)i); /* later entries replace earlier ones */
    }
    c->rep->code_map_entries = (long)c->codes.count;
    return rc;
}

int ff_ingest_fhir(const ff_fhir_opts *o, const char *out_dir, ff_fhir_report *rep)
{
    ff_fhir_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    if (!o || !o->in_dir || !out_dir)
        return ff_error(FF_EINVAL, "import fhir: --in and --out are required");
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/patients.csv", out_dir);
    if (stat(path, &st) == 0)
        return ff_error(FF_ESTATE, "%s: already exists (import into a fresh site folder)", path);
    if (stat(o->in_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ff_error(FF_EIO, "%s: not a readable directory", o->in_dir);
    fctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.rep = rep;
    int rc = load_rules(&c);
    if (rc == FF_OK)
        rc = ff_strmap_init(&c.pid, 1024);
    if (rc == FF_OK)
        rc = ff_mkdir_p(out_dir, 0750);
    if (rc == FF_OK) {
        snprintf(path, sizeof path, "%s/events.csv", out_dir);
        if (!(c.events = fopen(path, "w")))
            rc = ff_error(FF_EIO, "%s: cannot create (%s)", path, strerror(errno));
        else
            fputs("patient_id,hours_before,code,value\n", c.events);
    }
    if (rc == FF_OK)
        rc = read_all(&c);
    if (c.events) {
        if ((ferror(c.events) | fclose(c.events)) && rc == FF_OK)
            rc = ff_error(FF_EIO, "%s/events.csv: write failed", out_dir);
    }
    if (rc == FF_OK) {
        encounter_and_death_labels(&c);
        rc = write_outputs(&c, out_dir);
    }
    rep->index_visits = (long)c.nvis;
    rep->patients = (long)c.npat;
    for (size_t v = 0; v < c.nvis; v++)
        free(c.vis[v].note);
    free(c.vis);
    for (size_t i = 0; i < c.npat; i++)
        free(c.pat[i].id);
    free(c.pat);
    free(c.cands);
    free(c.codev);
    ff_strmap_free(&c.codes);
    ff_strmap_free(&c.pid);
    ff_cfg_free(rules_schema, &c.rules);
    return rc;
}

void ff_fhir_report_print(const ff_fhir_report *r, FILE *out)
{
    fprintf(out, "fhir: %ld files, %ld patients, %ld index visits, %ld written (train %ld, "
                 "val %ld, test %ld)\n",
            r->files, r->patients, r->index_visits, r->visits, r->split[0], r->split[1],
            r->split[2]);
    fprintf(out, "labels: admission %ld, icu %ld, critical %ld\n", r->positives[0],
            r->positives[1], r->positives[2]);
    fprintf(out, "events: %ld (%ld codes through the mapping of %ld entries), notes: %ld\n",
            r->events, r->mapped, r->code_map_entries, r->notes);
    fprintf(out, "%-20s %8s %8s %8s\n", "resource", "lines", "used", "skipped");
    for (int t = 0; t < FF_FHIR_TYPES; t++) {
        long sk = 0;
        for (int k = 0; k < FF_FHIR_SKIP_COUNT; k++)
            sk += r->skipped[t][k];
        fprintf(out, "%-20s %8ld %8ld %8ld\n", rtype_names[t], r->lines[t], r->used[t], sk);
        for (int k = 0; k < FF_FHIR_SKIP_COUNT; k++)
            if (r->skipped[t][k])
                fprintf(out, "  %-42s %ld\n", ff_fhir_skip_name((ff_fhir_skip)k),
                        r->skipped[t][k]);
    }
    if (r->other_files)
        fprintf(out, "other files (resource types not used): %ld\n", r->other_files);
}
