/* The synthetic multi-hospital emergency-department cohort.
 *
 * Each patient has latents: age, sex, a presenting condition (6 kinds), two severities —
 * physiological (z_phys: visible in labs and vitals only) and reported (z_rep: visible in the
 * note's wording and pain score and in the pain drawing's intensity) — and six comorbidities
 * (visible only as diagnosis codes in the EHR). The condition shows in the drawing's marked
 * region and in the note's complaint, and only weakly in which labs were ordered. Labels are
 * Bernoulli draws from a logistic model of all latents, so no single modality can reach the
 * oracle: docs/data.md gives the measured AUROCs. Everything is a function of the seed: one
 * Philox stream per (hospital, patient). */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { COND_CARDIAC, COND_RESP, COND_ABD, COND_NEURO, COND_TRAUMA, COND_RENAL, NCOND };
enum { CM_HTN, CM_DM, CM_CKD, CM_HF, CM_COPD, CM_CANCER, NCM };

static const char *const cond_names[NCOND] = {"cardiac", "respiratory", "abdominal",
                                              "neurological", "trauma", "renal"};

/* Logistic label model: logit = base + cond + w_phys z_phys + w_rep z_rep + w_cm * burden
 * + w_age (age-60)/15 + interaction + site offset. */
typedef struct {
    double base, cond[NCOND], phys, rep, cm, age;
} task_model;

static const task_model tasks[FF_DATA_TASKS] = {
    {-0.9, {1.2, 0.8, 0.3, 0.6, -0.7, -0.4}, 0.8, 1.0, 0.8, 0.5},  /* admission */
    {-3.3, {1.3, 1.1, -0.2, 0.8, -0.9, -0.8}, 0.9, 1.1, 0.8, 0.4}, /* ICU */
    {-3.9, {1.5, 1.0, 0.0, 0.9, -0.6, -0.9}, 1.0, 1.0, 0.7, 0.3},  /* critical intervention */
};

static const double cm_weight[NCM] = {0.2, 0.4, 0.8, 1.0, 0.6, 1.0};
static const char *const cm_codes[NCM][2] = {{"I10", "I10"},       {"E11.9", "E11.65"},
                                             {"N18.3", "N18.4"},   {"I50.9", "I50.22"},
                                             {"J44.9", "J44.1"},   {"C34.90", "C18.9"}};
static const char *const noise_codes[] = {"Z00.00", "J06.9", "M54.5", "K21.9", "F41.1",
                                          "R51", "S93.401A", "H10.9", "L03.90", "N39.0"};

/* Per-hospital profile; hospitals past the fourth cycle through these with a shift. */
typedef struct {
    double size;        /* relative size */
    double age_mean;
    double mix[NCOND];  /* case mix */
    double offset;      /* prevalence shift on every task's logit */
    double miss_img, miss_note, miss_ehr;
    double contrast, brightness, noise; /* scanner */
    int bit_depth, rgb, scale;          /* PNG format and a resolution factor */
    double cm_rate;                     /* comorbidity multiplier */
} site_profile;

static const site_profile profiles[4] = {
    {1.25, 54, {0.22, 0.18, 0.20, 0.14, 0.14, 0.12}, 0.0, 0.10, 0.06, 0.08,
     1.00, 0.00, 0.03, 8, 0, 1, 1.0},
    {1.00, 66, {0.26, 0.24, 0.16, 0.16, 0.08, 0.10}, 0.25, 0.15, 0.10, 0.04,
     0.80, 0.08, 0.06, 16, 0, 2, 1.4},
    {0.80, 44, {0.12, 0.14, 0.24, 0.12, 0.28, 0.10}, -0.35, 0.10, 0.05, 0.15,
     1.10, -0.05, 0.04, 8, 0, 1, 0.7},
    {0.95, 58, {0.20, 0.16, 0.18, 0.18, 0.16, 0.12}, 0.10, 0.20, 0.18, 0.22,
     1.20, -0.10, 0.08, 8, 1, 1, 1.0},
};

ff_synth_opts ff_synth_opts_default(void)
{
    return (ff_synth_opts){.sites = 4, .patients = 2000, .seed = 1, .image_size = 64,
                           .no_image_site = 3, .quiet = 0};
}

typedef struct {
    int age, sex, cond, cm[NCM], split, insurance, language;
    double z_phys, z_rep, burden, risk[FF_DATA_TASKS];
    int label[FF_DATA_TASKS];
    int has_img, has_note, has_ehr;
    int side; /* trauma: 0 left 1 right leg, 2 left 3 right arm */
} patient;

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static double uni(ff_rng *r)
{
    return ff_rng_uniform_d(r);
}

static int pick(ff_rng *r, const double *w, int n)
{
    double t = 0;
    for (int i = 0; i < n; i++)
        t += w[i];
    double u = uni(r) * t;
    for (int i = 0; i < n; i++) {
        if (u < w[i])
            return i;
        u -= w[i];
    }
    return n - 1;
}

static void draw_latents(const site_profile *sp, int site_no_img, ff_rng *r, patient *p)
{
    memset(p, 0, sizeof *p);
    double a = sp->age_mean + 18 * ff_rng_normal(r);
    p->age = (int)fmin(98, fmax(18, a));
    p->sex = (int)(ff_rng_u32(r) & 1); /* 0 F, 1 M */
    p->cond = pick(r, sp->mix, NCOND);
    p->side = (int)ff_rng_below(r, 4);
    p->z_phys = ff_rng_normal(r);
    p->z_rep = 0.3 * p->z_phys + sqrt(1 - 0.09) * ff_rng_normal(r);
    double ag = (p->age - 60) / 15.0;
    static const double cm_base[NCM] = {-0.6, -1.5, -2.3, -2.6, -2.4, -2.8};
    static const double cm_age[NCM] = {0.9, 0.5, 0.8, 1.0, 0.7, 0.6};
    for (int k = 0; k < NCM; k++) {
        double pr = sigmoid(cm_base[k] + cm_age[k] * ag) * sp->cm_rate;
        p->cm[k] = uni(r) < fmin(pr, 0.95);
        p->burden += cm_weight[k] * p->cm[k];
    }
    /* Interactions the fused model can use: a failing heart with chest pain, COPD with
     * breathlessness. */
    double inter = (p->cm[CM_HF] && p->cond == COND_CARDIAC ? 0.8 : 0) +
                   (p->cm[CM_COPD] && p->cond == COND_RESP ? 0.8 : 0);
    for (int t = 0; t < FF_DATA_TASKS; t++) {
        const task_model *m = &tasks[t];
        double logit = m->base + m->cond[p->cond] + m->phys * p->z_phys + m->rep * p->z_rep +
                       m->cm * (p->burden - 0.7) + m->age * ag + inter + sp->offset;
        p->risk[t] = sigmoid(logit);
        p->label[t] = uni(r) < p->risk[t];
    }
    double u = uni(r);
    p->split = u < 0.70 ? 0 : u < 0.85 ? 1 : 2;
    p->insurance = ag > 0.4 ? (uni(r) < 0.8 ? 0 : 1) : (uni(r) < 0.45 ? 0 : uni(r) < 0.8 ? 1 : 2);
    p->language = uni(r) < 0.15;
    p->has_img = !site_no_img && uni(r) >= sp->miss_img;
    p->has_note = uni(r) >= sp->miss_note;
    p->has_ehr = uni(r) >= sp->miss_ehr;
    if (!p->has_img && !p->has_note && !p->has_ehr)
        p->has_note = 1; /* every synthetic patient is usable */
}

/* ---------------------------------------------------------------------------------------- */
/* Images: pain drawings on a body sketch                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Blends value v into an ellipse (centre, radii in [0,1] units) with a soft edge; outline
 * draws only a ring of the given relative thickness. */
static void ellipse(float *img, int P, double cx, double cy, double rx, double ry, float v,
                    double alpha, double ring)
{
    for (int y = 0; y < P; y++)
        for (int x = 0; x < P; x++) {
            double dx = ((x + 0.5) / P - cx) / rx, dy = ((y + 0.5) / P - cy) / ry;
            double d = sqrt(dx * dx + dy * dy);
            double w = ring > 0 ? fmax(0, 1 - fabs(d - 1) / ring) : fmin(1, fmax(0, (1 - d) * 4));
            if (w > 0) {
                float *px = &img[y * P + x];
                *px = (float)(*px * (1 - alpha * w) + v * alpha * w);
            }
        }
}

static void body_sketch(float *img, int P)
{
    for (int i = 0; i < P * P; i++)
        img[i] = 1.0f;
    const double ring = 3.0 / P;
    ellipse(img, P, 0.50, 0.12, 0.08, 0.09, 0.15f, 1, ring * 1.5);  /* head */
    ellipse(img, P, 0.50, 0.40, 0.15, 0.20, 0.15f, 1, ring * 0.8);  /* torso */
    ellipse(img, P, 0.29, 0.42, 0.04, 0.18, 0.15f, 1, ring * 3);    /* arms */
    ellipse(img, P, 0.71, 0.42, 0.04, 0.18, 0.15f, 1, ring * 3);
    ellipse(img, P, 0.43, 0.78, 0.05, 0.19, 0.15f, 1, ring * 2.5);  /* legs */
    ellipse(img, P, 0.57, 0.78, 0.05, 0.19, 0.15f, 1, ring * 2.5);
}

/* Where each condition is drawn (front view: the patient's left is the image's right). */
static void cond_region(const patient *p, double *cx, double *cy, double *rx, double *ry)
{
    static const double reg[NCOND][4] = {
        {0.55, 0.32, 0.06, 0.06}, /* cardiac: left chest */
        {0.50, 0.31, 0.12, 0.07}, /* respiratory: both sides of the chest */
        {0.50, 0.48, 0.08, 0.07}, /* abdominal */
        {0.50, 0.11, 0.07, 0.06}, /* neurological: head */
        {0.43, 0.80, 0.05, 0.08}, /* trauma: a limb, set below */
        {0.58, 0.50, 0.05, 0.06}, /* renal: flank */
    };
    *cx = reg[p->cond][0], *cy = reg[p->cond][1], *rx = reg[p->cond][2], *ry = reg[p->cond][3];
    if (p->cond == COND_TRAUMA) {
        static const double limb[4][2] = {{0.43, 0.82}, {0.57, 0.82}, {0.29, 0.50}, {0.71, 0.50}};
        *cx = limb[p->side][0], *cy = limb[p->side][1];
    }
}

static void draw_image(const patient *p, const site_profile *sp, int P, ff_rng *r, float *img)
{
    body_sketch(img, P);
    double cx, cy, rx, ry;
    cond_region(p, &cx, &cy, &rx, &ry);
    /* Vague drawings: a fifth of patients shade a random place instead. */
    if (uni(r) < 0.2) {
        cx = 0.35 + 0.3 * uni(r);
        cy = 0.15 + 0.7 * uni(r);
    }
    double grow = 1 + 0.25 * fmax(-1.5, fmin(2, p->z_rep));
    cx += 0.02 * ff_rng_normal(r);
    cy += 0.02 * ff_rng_normal(r);
    double alpha = 0.25 + 0.6 * sigmoid(1.4 * p->z_rep + 0.4 * ff_rng_normal(r));
    ellipse(img, P, cx, cy, rx * grow, ry * grow, 0.0f, alpha, 0);
    if (uni(r) < 0.3) /* a second, faint mark anywhere */
        ellipse(img, P, 0.3 + 0.4 * uni(r), 0.15 + 0.7 * uni(r), 0.04, 0.04, 0.0f,
                0.2 + 0.3 * uni(r), 0);
    for (int i = 0; i < P * P; i++) {
        double v = sp->contrast * (img[i] - 0.5) + 0.5 + sp->brightness + sp->noise * ff_rng_normal(r);
        img[i] = (float)fmin(1, fmax(0, v));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Notes                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static const char *const complaints[NCOND][5] = {
    {"chest pain", "CP", "chest tightness", "pressure in chest", "substernal chest pain"},
    {"shortness of breath", "SOB", "dyspnea", "difficulty breathing", "cough and fever"},
    {"abdominal pain", "abd pain", "epigastric pain", "RLQ pain", "nausea and vomiting"},
    {"headache", "HA", "weakness of left arm", "confusion", "dizziness and slurred speech"},
    {"fall with leg injury", "injury", "fx arm", "MVC", "ankle pain after fall"},
    {"flank pain", "back pain", "dysuria", "hematuria", "kidney stone pain"},
};
static const char *const vague[] = {"feeling unwell", "pain", "generalized weakness",
                                    "not feeling right"};

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap)
        n = b->cap - b->len - 1;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

/* Appends text with occasional typos (an adjacent swap) so tokens are not perfectly clean. */
static void sb_typo(sbuf *b, const char *s, ff_rng *r)
{
    size_t start = b->len;
    sb_add(b, s);
    for (size_t i = start; i + 1 < b->len; i++)
        if (b->buf[i] >= 'a' && b->buf[i] <= 'z' && b->buf[i + 1] >= 'a' &&
            b->buf[i + 1] <= 'z' && uni(r) < 0.012) {
            char t = b->buf[i];
            b->buf[i] = b->buf[i + 1];
            b->buf[i + 1] = t;
            i++;
        }
}

static void write_note(const patient *p, ff_rng *r, sbuf *b)
{
    char tmp[160];
    b->len = 0;
    b->buf[0] = '\0';
    snprintf(tmp, sizeof tmp, "%dyo %s ", p->age, p->sex ? (uni(r) < 0.5 ? "M" : "male")
                                                        : (uni(r) < 0.5 ? "F" : "female"));
    sb_add(b, tmp);
    sb_add(b, uni(r) < 0.5 ? "presents with " : "c/o ");
    int clear = uni(r) >= (p->language ? 0.45 : 0.2);
    sb_typo(b, clear ? complaints[p->cond][ff_rng_below(r, 5)] : vague[ff_rng_below(r, 4)], r);
    int hours = 1 + (int)ff_rng_below(r, 48);
    snprintf(tmp, sizeof tmp, " x%d%s. ", hours > 24 ? hours / 24 : hours,
             hours > 24 ? " days" : "h");
    sb_add(b, tmp);
    /* Reported severity: wording and a pain score, both noisy. */
    double zs = p->z_rep + 0.5 * ff_rng_normal(r);
    int score = (int)lround(fmin(10, fmax(0, 5 + 2.2 * zs)));
    if (uni(r) < 0.8) {
        snprintf(tmp, sizeof tmp, "pain %d/10. ", score);
        sb_add(b, tmp);
    }
    if (zs > 1.0)
        sb_typo(b, (const char *const[]){"appears in severe distress. ", "diaphoretic, anxious. ",
                                         "states \"worst ever\". "}[ff_rng_below(r, 3)], r);
    else if (zs > 0.3)
        sb_typo(b, (const char *const[]){"moderate distress. ", "uncomfortable. ",
                                         "pt \"can't get comfortable\". "}[ff_rng_below(r, 3)], r);
    else if (zs < -0.6)
        sb_typo(b, (const char *const[]){"NAD, well appearing. ", "mild symptoms. ",
                                         "resting comfortably. "}[ff_rng_below(r, 3)], r);
    /* Negations of other conditions' complaints: the words appear but mean absence. */
    int nneg = (int)ff_rng_below(r, 3);
    for (int i = 0; i < nneg; i++) {
        int c = (int)ff_rng_below(r, NCOND);
        if (c == p->cond)
            continue;
        sb_add(b, uni(r) < 0.5 ? "denies " : "no ");
        sb_typo(b, complaints[c][ff_rng_below(r, 2)], r);
        sb_add(b, ". ");
    }
    if (p->language)
        sb_add(b, "\ninterpreter used, limited hx.");
    else if (uni(r) < 0.3)
        sb_add(b, "\nhistory per family, see chart.");
}

/* ---------------------------------------------------------------------------------------- */
/* EHR                                                                                       */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    const char *id;
    int err;
} ev_out;

static void emit(ev_out *o, double hours, const char *code, double value, int has_value)
{
    char line[160];
    int n;
    if (has_value)
        n = snprintf(line, sizeof line, "%s,%.2f,%s,%.4g\n", o->id, hours, code, value);
    else
        n = snprintf(line, sizeof line, "%s,%.2f,%s,\n", o->id, hours, code);
    if (fwrite(line, 1, (size_t)n, o->f) != (size_t)n)
        o->err = 1;
}

static double log_uniform(ff_rng *r, double lo, double hi)
{
    return exp(log(lo) + uni(r) * (log(hi) - log(lo)));
}

/* Labs: (code, centre, spread, log-normal?, how condition and severity move it). */
typedef struct {
    const char *code;
    double mean, sd;
    int lognormal;
    double phys;        /* shift per unit z_phys (in sd, or log units) */
    double cond[NCOND]; /* shift by condition */
    double ordered[NCOND];
} lab_def;

static const lab_def lab_table[] = {
    {"LAB:TROPONIN", -3.912023005428146 /* ln 0.02 */, 0.6, 1, 0.45, {0.9, 0.2, 0, 0, 0, 0},
     {0.95, 0.6, 0.35, 0.4, 0.2, 0.25}},
    {"LAB:LACTATE", 0.26236426446749106 /* ln 1.3 */, 0.3, 1, 0.35, {0, 0.1, 0.15, 0, 0.05, 0},
     {0.5, 0.6, 0.6, 0.3, 0.3, 0.4}},
    {"LAB:WBC", 8.5, 2.5, 0, 1.0, {0, 0.6, 0.6, 0, 0.2, 0.4}, {0.8, 0.9, 0.9, 0.7, 0.6, 0.85}},
    {"LAB:CREAT", -0.051293294387550578 /* ln 0.95 */, 0.22, 1, 0.25, {0, 0, 0.1, 0, 0, 0.5},
     {0.8, 0.8, 0.9, 0.7, 0.5, 0.95}},
    {"LAB:LIPASE", 3.5553480614894135 /* ln 35 */, 0.4, 1, 0.2, {0, 0, 0.8, 0, 0, 0}, {0.15, 0.1, 0.8, 0.05, 0.05, 0.3}},
    {"LAB:HGB", 13.5, 1.4, 0, -0.8, {0, 0, -0.2, 0, -0.3, 0}, {0.8, 0.8, 0.9, 0.7, 0.7, 0.8}},
    {"LAB:NA", 139, 3, 0, -0.7, {0, 0, 0, -0.2, 0, 0}, {0.8, 0.8, 0.9, 0.8, 0.5, 0.85}},
    {"LAB:K", 4.1, 0.4, 0, 0.4, {0, 0, 0, 0, 0, 0.3}, {0.8, 0.8, 0.9, 0.8, 0.5, 0.85}},
};

typedef struct {
    const char *code;
    double mean, sd, phys, resp, lo, hi;
} vital_def;

static const vital_def vitals[] = {
    {"VITAL:HR", 84, 12, 11, 6, 35, 190},   {"VITAL:SBP", 132, 18, -12, 0, 60, 230},
    {"VITAL:RR", 17, 2.5, 2.5, 3, 8, 45},   {"VITAL:SPO2", 97, 1.5, -1.6, -2.5, 70, 100},
    {"VITAL:TEMP", 36.9, 0.4, 0.25, 0.5, 34, 41.5},
};

static void write_events(const patient *p, ff_rng *r, ev_out *o)
{
    /* Comorbidities: coded at earlier visits, sometimes several times. */
    for (int k = 0; k < NCM; k++) {
        if (!p->cm[k])
            continue;
        int times = 1 + (int)ff_rng_below(r, 4);
        for (int i = 0; i < times; i++)
            emit(o, log_uniform(r, 200, 60000), cm_codes[k][ff_rng_below(r, 2)], 0, 0);
    }
    int nnoise = (int)ff_rng_below(r, 6);
    for (int i = 0; i < nnoise; i++)
        emit(o, log_uniform(r, 100, 80000),
             noise_codes[ff_rng_below(r, FF_ARRAY_LEN(noise_codes))], 0, 0);
    /* Old baseline labs; CKD, diabetes and heart failure show there too. */
    int nold = (int)ff_rng_below(r, 4);
    for (int i = 0; i < nold; i++) {
        double h = log_uniform(r, 300, 50000);
        emit(o, h, "LAB:CREAT", exp(log(0.95) + 0.2 * ff_rng_normal(r) + (p->cm[CM_CKD] ? 0.7 : 0)), 1);
        if (p->cm[CM_DM] || uni(r) < 0.3)
            emit(o, h, "LAB:HBA1C", 5.4 + 0.4 * ff_rng_normal(r) + (p->cm[CM_DM] ? 2.2 : 0), 1);
        if (p->cm[CM_HF] || uni(r) < 0.15)
            emit(o, h, "LAB:BNP", exp(log(60) + 0.6 * ff_rng_normal(r) + (p->cm[CM_HF] ? 1.8 : 0)), 1);
    }
    /* This visit: vitals (one or two sets) and the labs that were ordered. */
    int sets = 1 + (int)(uni(r) < 0.6);
    for (int s = 0; s < sets; s++) {
        double h = s == 0 ? 0.05 + 0.3 * uni(r) : 1 + 2 * uni(r);
        for (size_t k = 0; k < FF_ARRAY_LEN(vitals); k++) {
            const vital_def *v = &vitals[k];
            double x = v->mean + v->sd * ff_rng_normal(r) + v->phys * p->z_phys +
                       (p->cond == COND_RESP ? v->resp : 0);
            emit(o, h, v->code, fmin(v->hi, fmax(v->lo, x)), 1);
        }
    }
    for (size_t k = 0; k < FF_ARRAY_LEN(lab_table); k++) {
        const lab_def *l = &lab_table[k];
        if (uni(r) >= l->ordered[p->cond])
            continue;
        double z = ff_rng_normal(r) + l->phys * p->z_phys / (l->lognormal ? l->sd : 1) +
                   l->cond[p->cond] / (l->lognormal ? l->sd : 1) +
                   (k == 3 && p->cm[CM_CKD] ? 0.7 / l->sd : 0);
        double x = l->lognormal ? exp(l->mean + l->sd * z) : l->mean + l->sd * z;
        emit(o, 0.1 + 2.5 * uni(r), l->code, x, 1);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Writing a hospital                                                                        */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    FILE *patients, *notes, *events, *oracle;
} site_files;

static int open_site(const char *dir, site_files *f)
{
    char path[4096];
    memset(f, 0, sizeof *f);
    const char *names[4] = {"patients.csv", "notes.csv", "events.csv", "oracle.csv"};
    FILE **slots[4] = {&f->patients, &f->notes, &f->events, &f->oracle};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        *slots[i] = fopen(path, "w");
        if (!*slots[i])
            return ff_error(FF_EIO, "%s: cannot create (%s)", path, strerror(errno));
    }
    fputs("patient_id,age,sex,split,label_admission,label_icu,label_critical,insurance,"
          "language\n", f->patients);
    fputs("patient_id,text\n", f->notes);
    fputs("patient_id,hours_before,code,value\n", f->events);
    fputs("patient_id,risk_admission,risk_icu,risk_critical,condition,z_phys,z_rep,"
          "comorbidity_burden,has_image,has_note,has_ehr\n", f->oracle);
    return FF_OK;
}

static int close_site(site_files *f, const char *dir)
{
    int bad = 0;
    FILE *all[4] = {f->patients, f->notes, f->events, f->oracle};
    for (int i = 0; i < 4; i++)
        if (all[i] && fclose(all[i]) != 0)
            bad = 1;
    memset(f, 0, sizeof *f);
    return bad ? ff_error(FF_EIO, "%s: write failed (%s)", dir, strerror(errno)) : FF_OK;
}

static int write_patient(const patient *p, const char *id, const char *dir,
                         const site_profile *sp, int P, ff_rng *r, site_files *f, float *img,
                         sbuf *note)
{
    static const char *const ins[] = {"public", "private", "uninsured"};
    static const char *const splits[] = {"train", "val", "test"};
    fprintf(f->patients, "%s,%d,%s,%s,%d,%d,%d,%s,%s\n", id, p->age, p->sex ? "M" : "F",
            splits[p->split], p->label[0], p->label[1], p->label[2], ins[p->insurance],
            p->language ? "other" : "en");
    fprintf(f->oracle, "%s,%.6f,%.6f,%.6f,%s,%.4f,%.4f,%.2f,%d,%d,%d\n", id, p->risk[0],
            p->risk[1], p->risk[2], cond_names[p->cond], p->z_phys, p->z_rep, p->burden,
            p->has_img, p->has_note, p->has_ehr);
    if (p->has_note) {
        write_note(p, r, note);
        if (ff_csv_put(f->notes, id, ',') != FF_OK || ff_csv_put(f->notes, note->buf, '\n') != FF_OK)
            return ff_error(FF_EIO, "%s/notes.csv: write failed", dir);
    }
    if (p->has_ehr) {
        ev_out o = {f->events, id, 0};
        write_events(p, r, &o);
        if (o.err)
            return ff_error(FF_EIO, "%s/events.csv: write failed", dir);
    }
    if (p->has_img) {
        int S = P * sp->scale;
        draw_image(p, sp, S, r, img);
        char path[4096];
        snprintf(path, sizeof path, "%s/images/%s.png", dir, id);
        return ff_png_write_gray(path, img, S, S, sp->bit_depth, sp->rgb);
    }
    return FF_OK;
}

static site_profile profile_for(int k)
{
    site_profile sp = profiles[k % 4];
    if (k >= 4) { /* more hospitals: same kinds, shifted scanners and prevalence */
        sp.offset += 0.1 * ((k / 4) % 3 - 1);
        sp.brightness += 0.03 * ((k / 4) % 2 ? 1 : -1);
        sp.age_mean += 3 * ((k / 4) % 3 - 1);
    }
    return sp;
}

int ff_synth_generate(const ff_synth_opts *o, const char *out_dir)
{
    if (o->sites < 1 || o->sites > 64 || o->patients < 1 || o->image_size < 8 ||
        o->image_size > 1024)
        return ff_error(FF_EINVAL, "synth: sites=%d patients=%ld image_size=%d out of range",
                        o->sites, o->patients, o->image_size);
    int rc = ff_mkdir_p(out_dir, 0755);
    if (rc != FF_OK)
        return rc;
    char dir[4096], probe[4200];
    snprintf(probe, sizeof probe, "%s/site-1", out_dir);
    if (ff_path_exists(probe))
        return ff_error(FF_ESTATE, "%s: already holds a cohort (site-1); choose a new --out",
                        out_dir);
    double total_size = 0;
    for (int k = 0; k < o->sites; k++)
        total_size += profile_for(k).size;
    long grand = 0;
    long counts[64];
    for (int k = 0; k < o->sites; k++) {
        counts[k] = lround((double)o->patients * o->sites * profile_for(k).size / total_size);
        if (counts[k] < 1)
            counts[k] = 1;
        grand += counts[k];
    }
    /* Sizes sum exactly to sites x patients: the rounding remainder goes to the first. */
    long want = o->patients * (long)o->sites;
    if (counts[0] + (want - grand) >= 1) {
        counts[0] += want - grand;
        grand = want;
    }
    int S = o->image_size * 2;
    float *img = malloc((size_t)S * S * sizeof *img);
    char *nbuf = malloc(2048);
    sbuf note = {nbuf, 0, 2048};
    site_files f = {0};
    ff_progress prog;
    if (!o->quiet)
        ff_progress_start(&prog, stderr, "synth", (uint64_t)grand);
    long done = 0;
    if (!img || !nbuf) {
        rc = ff_error(FF_ENOMEM, "synth: out of memory");
        goto out;
    }
    for (int k = 0; k < o->sites; k++) {
        site_profile sp = profile_for(k);
        int no_img = o->no_image_site == k + 1;
        snprintf(dir, sizeof dir, "%s/site-%d", out_dir, k + 1);
        snprintf(probe, sizeof probe, "%s/images", dir);
        if ((rc = ff_mkdir_p(no_img ? dir : probe, 0755)) != FF_OK)
            goto out;
        if ((rc = open_site(dir, &f)) != FF_OK)
            goto out;
        for (long i = 0; i < counts[k]; i++) {
            ff_rng r;
            ff_rng_init(&r, o->seed, ((uint64_t)(k + 1) << 40) | (uint64_t)i);
            patient p;
            draw_latents(&sp, no_img, &r, &p);
            char id[32];
            snprintf(id, sizeof id, "H%d-%06ld", k + 1, i + 1);
            if ((rc = write_patient(&p, id, dir, &sp, o->image_size, &r, &f, img, &note)) != FF_OK)
                goto out;
            if (!o->quiet && (++done % 256 == 0))
                ff_progress_update(&prog, (uint64_t)done, NULL);
        }
        if ((rc = close_site(&f, dir)) != FF_OK)
            goto out;
        FF_LOG_INFO("synth: wrote %s (%ld patients)", dir, counts[k]);
    }
out:
    if (!o->quiet)
        ff_progress_finish(&prog);
    if (f.patients || f.notes || f.events || f.oracle)
        (void)close_site(&f, dir);
    free(img);
    free(nbuf);
    return rc;
}
