/*
 * ff/data.h — hospital data: the site dataset format, tokenizers, the loader that turns a
 * site directory into model input batches (ff_batch), the value-bin statistics that hospitals
 * share instead of raw values, and the synthetic multi-hospital cohort generator.
 *
 * Usage:
 *
 *     ff_data_shape shape;
 *     ff_data_shape_tiny(&shape);                    // or ff_client_shape_load(path, &shape)
 *     ff_site_opts opts = ff_site_opts_default();    // lenient; local value-bin edges
 *     ff_load_report rep;
 *     ff_site *site = NULL;
 *     if (ff_site_load(&site, "cohort/site-1", &shape, &opts, &rep) != FF_OK) {
 *         fprintf(stderr, "error: %s\n", ff_error_message());   // names file and line
 *         return 2;
 *     }
 *     ff_load_report_print(&rep, stdout);            // counts only, never record contents
 *     size_t n = ff_site_count(site, FF_SPLIT_TRAIN);
 *     uint32_t *order = malloc(n * sizeof *order);
 *     ff_site_shuffle(site, FF_SPLIT_TRAIN, seed, epoch, order);
 *     ff_batch b;
 *     ff_batch_alloc(&b, 32, shape.K, shape.C, shape.H, shape.W, shape.Lt, shape.Le);
 *     ff_aug aug = ff_aug_default();
 *     ff_rng rng; ff_rng_init(&rng, seed, 7);
 *     for (size_t i = 0; i + 32 <= n; i += 32)
 *         ff_site_batch(site, FF_SPLIT_TRAIN, order + i, 32, &aug, &rng, &b);   // then train
 *     ff_batch_free(&b);
 *     ff_site_free(site);
 *
 * docs/data.md describes the directory format, the tokenizers exactly (with worked ids) and
 * the generator. Nothing here logs record contents: messages name files, lines and fields.
 */
#ifndef FF_DATA_H
#define FF_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ff/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Model input dimensions (filled from the model config; no dependency on ff_models)          */
/* ---------------------------------------------------------------------------------------- */

#define FF_DATA_TASKS 3 /* the synthetic cohort's label_admission, label_icu, label_critical */

typedef struct {
    int C, H, W;  /* image channels (1) and size */
    int Lt, Vt;   /* text tokens and vocabulary (hash buckets, 0 = padding) */
    int Le, Vc;   /* EHR events and code vocabulary */
    int Vv;       /* value bins: 0 = no value, 1..Vv-1 quantiles (11 = deciles) */
    int Vtime;    /* time bins, 0 = padding */
    int K;        /* label columns: tasks.width */
    int bigrams;  /* 1: add word-bigram ids after the unigrams (see docs/data.md) */
    ff_task_set tasks; /* the declared tasks: which patients.csv columns are labels */
    ff_feature_set tab; /* the declared tabular features (tab.n = 0: tabular.csv not read) */
} ff_data_shape;

/* The two reference configurations (configs of the models/ folder). */
void ff_data_shape_base(ff_data_shape *s); /* 64x64x1, Lt 64, Vt 8192, Le 128, Vc 4096 */
void ff_data_shape_tiny(ff_data_shape *s); /* 32x32x1, Lt 32, Vt 2048, Le 48, Vc 1024 */
/* Checks ranges (every dimension positive, Vv == 11, Vt/Vc/Vtime >= 2, K = tasks.width; a
 * shape with no declared task and K in 1..3 gets the first K emergency-department tasks). */
int ff_data_shape_check(ff_data_shape *s) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Tokenizers (pure functions; docs/data.md gives worked examples)                            */
/* ---------------------------------------------------------------------------------------- */

/* Text: lower-case ASCII, split on every byte that is not [a-z0-9], word id =
 * 1 + FNV-1a-32(word) mod (Vt-1). With bigrams, the ids of "w1 w2" (joined by one space)
 * follow the unigrams. Writes at most cap ids (the beginning is kept) and returns the count
 * written; *nwords (may be NULL) receives the number of words in the whole text. */
size_t ff_tok_text(const char *text, size_t len, int Vt, int bigrams, int32_t *ids, size_t cap,
                   size_t *nwords);
/* Words longer than this are hashed on their first FF_TOK_MAX_WORD bytes. */
#define FF_TOK_MAX_WORD 64
/* The splitter ff_tok_text uses, for whoever must see the same words (the explainer): the
 * next word of text from *pos (ASCII folded to lower case, cut at FF_TOK_MAX_WORD bytes) into
 * word (*wl bytes, no NUL); *pos moves past it. Returns 0 when no word is left. */
int ff_tok_next_word(const char *text, size_t len, size_t *pos, char *word, size_t *wl);
/* One word (already lower-case) to its id. */
int32_t ff_tok_word(const char *word, size_t len, int Vt);
/* EHR code (taken byte for byte, no case folding) to 1 + FNV-1a-32(code) mod (Vc-1). */
int32_t ff_tok_code(const char *code, size_t len, int Vc);
/* Hours before the index visit (>= 0) to a bin in 1..Vtime-1:
 * 1 + min(Vtime-2, floor((Vtime-1) * ln(1+h) / ln(1+FF_TIME_HORIZON_H))). */
#define FF_TIME_HORIZON_H 87600.0 /* ten years */
int32_t ff_tok_time_bin(double hours_before, int Vtime);

/* ---------------------------------------------------------------------------------------- */
/* Value bins: per-code histograms on a fixed grid, merged across hospitals, decile edges     */
/* ---------------------------------------------------------------------------------------- */
/*
 * Grid: g(v) = sign(v) * ln(1 + |v|), FF_VGRID_BINS equal bins on [FF_VGRID_LO, FF_VGRID_HI]
 * (values outside are clamped into the end bins). A hospital adds every value of its events
 * to a histogram keyed by code id; the coordinator merges the histograms (sums counts; no raw
 * value leaves a hospital) and computes the edges; every hospital then bins with the same
 * edges. ff_value_edges_local does both steps on one hospital's histogram, flagged local.
 */
#define FF_VGRID_BINS 1024
#define FF_VGRID_LO (-3.0)
#define FF_VGRID_HI 12.0
#define FF_VALUE_BINS 11 /* 0 = no value, 1..10 deciles */

typedef struct {
    int ncodes;        /* Vc: code ids 0..Vc-1 (0 unused) */
    uint32_t *counts;  /* [ncodes, FF_VGRID_BINS], owned */
} ff_value_hist;

typedef struct {
    int ncodes;
    float *edges; /* [ncodes, 9] in g-space, ascending; owned */
    uint8_t *has; /* [ncodes] 1 when the code had any value */
    int local;    /* 1: computed from this hospital alone (no federated step yet) */
} ff_value_edges;

int ff_value_hist_init(ff_value_hist *h, int ncodes) FF_WARN_UNUSED;
void ff_value_hist_free(ff_value_hist *h);
/* The grid bin of a value (clamped). */
int ff_value_grid_bin(double v);
/* Adds one value of code id c (ignored when c is out of range). */
void ff_value_hist_add(ff_value_hist *h, int32_t c, double v);
/* dst += src (coordinator side). FF_EINVAL on different sizes, FF_ERANGE on count overflow;
 * on error dst is unchanged. */
int ff_value_hist_merge(ff_value_hist *dst, const ff_value_hist *src) FF_WARN_UNUSED;
/* Decile edges of a (merged) histogram: edge k (1..9) is where the cumulative count reaches
 * k/10 of the code's total, linearly interpolated inside the grid bin, in g-space. The
 * result is flagged not local; caller frees with ff_value_edges_free. */
int ff_value_edges_from_hist(const ff_value_hist *h, ff_value_edges *out) FF_WARN_UNUSED;
/* The same from one hospital's own histogram, flagged local = 1. */
int ff_value_edges_local(const ff_value_hist *h, ff_value_edges *out) FF_WARN_UNUSED;
void ff_value_edges_free(ff_value_edges *e);
/* 1 + #{k : g(v) >= edge_k} in 1..10; 1 for a code with no statistics. */
int32_t ff_value_bin(const ff_value_edges *e, int32_t c, double v);

/* ---------------------------------------------------------------------------------------- */
/* Site loader                                                                               */
/* ---------------------------------------------------------------------------------------- */

typedef enum { FF_SPLIT_TRAIN = 0, FF_SPLIT_VAL, FF_SPLIT_TEST, FF_SPLIT_COUNT } ff_split;
const char *ff_split_name(ff_split s);

/* Told about every row or file the lenient mode drops: where is the file (as shown in
 * messages), line its line (0 for a file), reason the same words strict mode would stop with.
 * Never patient data (ids appear only in image file names, shown to the data's owner). */
typedef void (*ff_site_skip_fn)(void *ud, const char *where, long line, const char *reason);

typedef struct {
    int strict;                  /* 1: the first bad row/file is an error naming file and line */
    const ff_value_edges *edges; /* shared edges from the federated step; NULL = local */
    ff_site_skip_fn on_skip;     /* may be NULL */
    void *skip_ud;
} ff_site_opts;
ff_site_opts ff_site_opts_default(void); /* lenient, local edges */

/* What was skipped, by reason (counts only). */
typedef enum {
    FF_SKIP_PATIENT_ROW = 0, /* malformed patients.csv row (fields, age, sex, split, id) */
    FF_SKIP_DUPLICATE_ID,    /* patient id seen before in patients.csv */
    FF_SKIP_NOTE_ROW,        /* malformed notes.csv row */
    FF_SKIP_NOTE_UNKNOWN,    /* note of a patient not in patients.csv */
    FF_SKIP_EVENT_ROW,       /* malformed events.csv row (fields, hours, value, code) */
    FF_SKIP_EVENT_UNKNOWN,   /* event of a patient not in patients.csv */
    FF_SKIP_IMAGE_BAD,       /* images/<id>.png unreadable: image treated as missing */
    FF_SKIP_NO_MODALITY,     /* patient with no image, no note and no event: excluded */
    FF_SKIP_BAD_UTF8,        /* a CSV row that is not valid UTF-8 text */
    FF_SKIP_IMAGE_UNSUPPORTED, /* images/ file of a format not read (.dcm, .jpg, ...) */
    FF_SKIP_TABULAR_ROW,     /* tabular.csv row: fields, unknown or repeated patient_id */
    FF_SKIP_TABULAR_CELL,    /* tabular.csv cell: not a number, undeclared category, unknown
                              * column (the cell or column is treated as missing) */
    FF_SKIP_COUNT
} ff_skip_reason;
const char *ff_skip_reason_name(ff_skip_reason r);

typedef struct {
    long skipped[FF_SKIP_COUNT];
    long patients[FF_SPLIT_COUNT];                 /* kept, per split */
    ff_task_set tasks;                            /* what was loaded (names, kinds, columns) */
    long positives[FF_SPLIT_COUNT][FF_TASKS_MAX]; /* binary label 1; survival: events */
    long labelled[FF_SPLIT_COUNT][FF_TASKS_MAX];  /* label known (not empty) */
    long with_image, with_text, with_ehr, with_all;
    long note_rows, event_rows, events_dropped; /* dropped: beyond the Le most recent */
    long words_p50, words_p90, words_max;       /* words per patient with a note */
    long events_p50, events_p90, events_max;    /* events per patient with any */
    int edges_local;                            /* value bins used local edges */
    int has_notes_file, has_events_file, has_images_dir;
    char delim[3];      /* delimiter of patients.csv, notes.csv, events.csv (0 = no file) */
    long notes_cut;     /* patients whose notes had more tokens than the model's Lt */
    long events_cut;    /* patients with more events than the model's Le (oldest dropped) */
    long text_limit, event_limit; /* Lt and Le of the shape loaded with */
    int format;                   /* site format: 2, or what site.yaml says */
    int label_missing[FF_TASKS_MAX]; /* a label column is absent: every label unknown */
    int split_derived;            /* no split column: split derived from the patient id */
    int has_tabular_file;         /* tabular.csv read (only with declared features) */
    int tabular_unread;           /* tabular.csv present, no features declared: not read */
    long with_tab;                /* kept patients with a tabular.csv row */
    long tab_missing[FF_FEATURES_MAX]; /* kept patients with a row whose cell is empty/bad */
} ff_load_report;

/* Prints the summary (per split, prevalence, modalities, lengths, skipped by reason). */
void ff_load_report_print(const ff_load_report *r, FILE *out);
/* Logs the same counts at INFO (no contents). */
void ff_load_report_log(const ff_load_report *r, const char *site_name);

typedef struct ff_site ff_site;

/* Loads SITE_DIR (patients.csv required; notes.csv, events.csv, images/ optional, and
 * tabular.csv when shape->tab declares features: data/src/tabular.c) for the
 * given shape: text and codes tokenized, values binned, the Le most recent events kept, images
 * resized to H x W by area averaging and normalised to [-1, 1]. Lenient mode counts and skips
 * bad rows; strict mode stops at the first with "FILE:LINE: reason". A label other than 0, 1
 * or empty (unknown) is an error in both modes; so is any label that does not fit its declared
 * task (a class outside 0..classes-1, a non-finite value, an event not 0/1, a survival row
 * with only one of time and event). rep (may be NULL) is filled either way.
 * The caller owns *out (ff_site_free); on error *out is NULL. */
int ff_site_load(ff_site **out, const char *dir, const ff_data_shape *shape,
                 const ff_site_opts *opts, ff_load_report *rep) FF_WARN_UNUSED;
void ff_site_free(ff_site *s);

size_t ff_site_count(const ff_site *s, ff_split split);
const ff_data_shape *ff_site_shape(const ff_site *s);
/* The site's own value histogram (for the federated statistics step). */
const ff_value_hist *ff_site_value_hist(const ff_site *s);
/* Patient id of the i-th patient of a split (file order). For local joins (oracle, tests);
 * never log it. */
const char *ff_site_patient_id(const ff_site *s, ff_split split, size_t i);

/* Fills order[0..count) with a permutation of the split, determined by (seed, epoch). */
void ff_site_shuffle(const ff_site *s, ff_split split, uint64_t seed, uint64_t epoch,
                     uint32_t *order);

/* Augmentation that keeps clinical meaning. Zero fields disable a transform. */
typedef struct {
    float rot_deg;     /* image rotation uniform in [-rot_deg, rot_deg] */
    float scale;       /* image zoom uniform in [1-scale, 1+scale] */
    float intensity;   /* gain in [1-i, 1+i] and offset in [-i, i] (normalised units) */
    int allow_flip;    /* left/right flip with p 0.5; only when the image modality allows */
    float token_drop;  /* each text token dropped with this probability */
    float time_jitter; /* hours multiplied by exp(N(0, time_jitter)) before binning */
} ff_aug;
ff_aug ff_aug_default(void); /* 8 deg, 0.08, 0.1, no flip, 0.1, 0.1 */

/* Fills out rows 0..n-1 with the patients idx[0..n) of the split (positions in the split);
 * rows n..B-1 are zeroed with label_mask 0. aug NULL = none (rng may then be NULL). out must
 * be allocated with the site's shape and B >= n. */
int ff_site_batch(const ff_site *s, ff_split split, const uint32_t *idx, size_t n,
                  const ff_aug *aug, ff_rng *rng, ff_batch *out) FF_WARN_UNUSED;
/* A batch of B rows for the shape: ff_batch_alloc, plus the tabular arrays when the shape
 * declares features. */
int ff_site_batch_alloc(ff_batch *b, int B, const ff_data_shape *sh) FF_WARN_UNUSED;

/* Group attributes for fairness metrics: attribute 0 is "sex" (F, M, X, U), 1 is "age_band"
 * (<40, 40-64, 65+), then each extra column of patients.csv in file order. */
int ff_site_attr_count(const ff_site *s);
const char *ff_site_attr_name(const ff_site *s, int a);
int ff_site_attr_nvalues(const ff_site *s, int a);
const char *ff_site_attr_value(const ff_site *s, int a, int v);
/* Value index of attribute a for the i-th patient of a split; -1 for out-of-range input. */
/* One event of a patient as the loader read it, with its raw text. */
typedef struct {
    char *code, *value; /* value "" = none */
    double hours;
    int32_t code_id;
} ff_site_event;
/* The events of patient_id in the site folder dir (events.csv), with the loader's row checks
 * (a row it skips is skipped) and in its order (most recent first, equal times by code id):
 * event k is the one the loader stores at position min(n, Le) - 1 - k. No events.csv: none.
 * Caller frees *out with ff_site_events_free (also on error, where *out is NULL). */
int ff_site_patient_events(const char *dir, const char *patient_id, int Vc, ff_site_event **out,
                           size_t *n) FF_WARN_UNUSED;
void ff_site_events_free(ff_site_event *ev, size_t n);
/* The note text of patient_id in the site folder dir (notes.csv) as the loader reads it: the
 * text field of every row it keeps (its row checks: a row it skips adds nothing), in file
 * order, joined by one space. The loader tokenises each note in turn and appends its ids, so
 * the words of this text, in order, are the words it fed the model (before the cut at Lt; it
 * makes no bigram across two notes). No notes.csv or no note: "". On FF_OK *out is a
 * NUL-terminated string of *len bytes the caller frees; on error *out is NULL. */
int ff_site_patient_notes(const char *dir, const char *patient_id, char **out,
                          size_t *len) FF_WARN_UNUSED;
int ff_site_patient_attr(const ff_site *s, ff_split split, size_t i, int a);

/* ---------------------------------------------------------------------------------------- */
/* Synthetic multi-hospital cohort                                                           */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    int sites;          /* hospitals, 1..64 (default 4) */
    long patients;      /* patients per hospital on average (default 2000); sizes vary */
    uint64_t seed;      /* everything is a function of the seed (Philox streams) */
    int image_size;     /* side of the written PNGs (default 64) */
    int no_image_site;  /* 1-based hospital without an imaging department (default 3, 0 = none) */
    int quiet;          /* no progress display */
} ff_synth_opts;
ff_synth_opts ff_synth_opts_default(void);

/* Writes out_dir/site-1 ... site-N in the site format plus site-k/oracle.csv (true risk per
 * task and the latents). Streams patients to disk: memory does not grow with the count.
 * Refuses an out_dir that already holds a site-1 (FF_ESTATE). */
int ff_synth_generate(const ff_synth_opts *o, const char *out_dir) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* MIMIC-IV-ED import (real data; see docs/data.md "Real data: MIMIC-IV-ED demo")             */
/* ---------------------------------------------------------------------------------------- */
/*
 *     ff_mimic_opts o = ff_mimic_opts_default();
 *     o.ed_dir = ".../ed"; o.hosp_dir = ".../hosp"; o.icu_dir = ".../icu"; o.sites = 3;
 *     ff_mimic_report rep;
 *     if (ff_mimic_import(&o, "mimic-sites", &rep) != FF_OK) ...   // names file and column
 *     ff_mimic_report_print(&rep, stdout);                          // counts only
 *
 * One patient row per ED stay (patient_id = stay_id). Index time = ED intime: every event
 * written is strictly earlier (hours_before > 0). Tables are streamed (.csv.gz through zlib,
 * or .csv), so labevents is never held in memory.
 */
#define FF_MIMIC_MAX_SITES 64

typedef struct {
    const char *ed_dir;   /* edstays, triage, vitalsign */
    const char *hosp_dir; /* patients, admissions, diagnoses_icd, labevents, d_labitems */
    const char *icu_dir;  /* icustays */
    int sites;            /* 0: one site written to out_dir itself; 1..64: out_dir/site-k */
    uint64_t seed;        /* split and site assignment (default 1) */
    int strict;           /* 1: the first malformed row is an error naming file and record */
    double lookback_days; /* > 0: drop events older than this before the index time */
} ff_mimic_opts;
ff_mimic_opts ff_mimic_opts_default(void);

typedef enum {
    FF_MIMIC_EDSTAYS = 0, FF_MIMIC_TRIAGE, FF_MIMIC_VITALSIGN, FF_MIMIC_PATIENTS,
    FF_MIMIC_ADMISSIONS, FF_MIMIC_DIAGNOSES, FF_MIMIC_LABEVENTS, FF_MIMIC_D_LABITEMS,
    FF_MIMIC_ICUSTAYS, FF_MIMIC_TABLES
} ff_mimic_table;
/* "edstays", "triage", ... (file name without .csv.gz). */
const char *ff_mimic_table_name(ff_mimic_table t);

/* Counts only (never record contents). */
typedef struct {
    long stays, subjects;                     /* written */
    long admitted, icu24, deaths, critical;   /* label = 1 */
    long with_note;                           /* stays with a triage note */
    long ev_lab, ev_dx, ev_vital;             /* events written, by source */
    long rows[FF_MIMIC_TABLES];               /* records read (header excluded) */
    long bad_rows[FF_MIMIC_TABLES];           /* malformed, skipped (lenient) */
    long stays_no_patient;                    /* ED stays whose subject has no patients row */
    long lab_unknown_item;                    /* labevents rows with an itemid not in d_labitems */
    long dx_unknown_admission;                /* diagnoses of an admission not in admissions */
    int sites;
    long site_stays[FF_MIMIC_MAX_SITES], site_subjects[FF_MIMIC_MAX_SITES];
    long split_stays[FF_SPLIT_COUNT];
} ff_mimic_report;

/* Imports MIMIC-IV-ED (+ MIMIC-IV hosp/icu) into the site format at out_dir (created; an
 * out_dir already holding patients.csv or site-1 is refused with FF_ESTATE), with
 * ATTRIBUTION.md and LICENSE.md (ODbL) beside the data. Missing tables or columns are
 * FF_EIO/FF_EFORMAT naming the file and column; malformed rows are counted and skipped
 * (lenient) or FF_EFORMAT "FILE:RECORD: reason" (strict). rep (may be NULL) is filled. On
 * error, files already written are left in place. */
int ff_mimic_import(const ff_mimic_opts *o, const char *out_dir,
                    ff_mimic_report *rep) FF_WARN_UNUSED;
void ff_mimic_report_print(const ff_mimic_report *r, FILE *out);

/* ---------------------------------------------------------------------------------------- */
/* CSV, PNG and resizing helpers shared with the importers of ff_ingest                      */
/* ---------------------------------------------------------------------------------------- */

/* One CSV row as libcsv delivered it: NUL-terminated fields and the physical line on which
 * the row starts (1-based; the header is line 1). */
/* The most fields a CSV row may have; a row with more comes with nfields = -1. */
#define FF_CSV_MAX_FIELDS 256

typedef struct {
    char **fields;
    size_t *lens;
    int nfields; /* -1: more than FF_CSV_MAX_FIELDS */
    long line;
    /* plain reader only: the first physical line of the row that is not valid UTF-8 and the
     * 1-based byte of its first bad sequence there (0 = the row is valid UTF-8), and the
     * field delimiter the file is read with (',' or the one detected on line 1) */
    long bad_utf8_line, bad_utf8_byte;
    char delim;
} ff_csv_row;

/* Called per row (header included, as the first). Returns FF_OK to go on, or an error status
 * (with ff_error set) to stop reading. */
typedef int (*ff_csv_row_fn)(const ff_csv_row *row, void *ctx);

/* Streams a CSV file through libcsv (RFC 4180: quoted fields with commas, quotes and
 * newlines). strict: libcsv's strict quoting and an unterminated quote at the end are errors
 * "FILE:LINE: malformed CSV (...)"; lenient: libcsv's tolerant reading. A UTF-8 byte order
 * mark (Excel) at the start is dropped. When line 1 has no comma outside quotes but a ';' or a
 * tab, that is the delimiter (row.delim says which). Each row says whether its text is valid
 * UTF-8 (row.bad_utf8_line); the caller decides what to do with a row that is not. */
int ff_csv_read(const char *path, const char *shown, int strict, ff_csv_row_fn fn,
                void *ctx) FF_WARN_UNUSED;

/* Writes one CSV field (quoted when it must be) through libcsv; sep is ',' or '\n' after. */
int ff_csv_put(FILE *f, const char *s, char sep);

/* Finds each of names[0..n) in a header row; idx[k] = its position. A missing column is
 * FF_EFORMAT "SHOWN:1: missing required column 'NAME'". */
int ff_gzcsv_columns(const ff_csv_row *hdr, const char *shown, const char *const *names, int n,
                     int *idx) FF_WARN_UNUSED;

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar (any year). */
int64_t ff_days_from_civil(int64_t y, int m, int d);
/* The n decimal digits at s as *out; -1 (out untouched) if any of them is not a digit. */
int ff_data_parse_digits(const char *s, int n, int *out);

/* Writes an 8- or 16-bit grayscale PNG from values in [0, 1] (clamped), or RGB when rgb. */
int ff_png_write_gray(const char *path, const float *src, int H, int W, int bit_depth,
                      int rgb) FF_WARN_UNUSED;

/* Area-averaging resize of a float image (sh x sw) to (dh x dw): each target pixel is the
 * mean of the source area it covers, with fractional overlaps weighted. */
void ff_resize_area(const float *src, int sh, int sw, float *dst, int dh, int dw);

/* ---------------------------------------------------------------------------------------- */
/* FLamby benchmarks (data/src/import_flamby.c): Fed-Heart-Disease and Fed-TCGA-BRCA         */
/* ---------------------------------------------------------------------------------------- */
/*
 * ff_flamby_import applies FLamby's preprocessing to the user's copy of the source files and
 * writes DIR/center_K_{train,test}.csv (features then `label`, or `event,time`) and
 * DIR/pooled_{train,test}.csv (a `center` column first). Heart disease (in: the four UCI
 * processed.*.data files, in IN/raw/ or IN/, and FLamby's split.csv): slope, ca, thal
 * dropped, cp and restecg one-hot with the first level dropped (13 features), label num > 0,
 * each centre standardised with its training rows' mean and unbiased std (x − m)/(s + 1e-9),
 * the pooled files with the pooled training rows'. TCGA-BRCA (in: brca.csv and
 * train_test_split.csv): the 39 features as they are, (event, time), centre K from fold2.
 * Errors name FILE:LINE. ff_flamby_load reads such a folder back.
 */
enum { FF_FLAMBY_HEART = 1, FF_FLAMBY_TCGA = 2 };
#define FF_FLAMBY_MAX_CENTERS 8
#define FF_FLAMBY_HEART_CENTERS 4
#define FF_FLAMBY_HEART_FEATURES 13
#define FF_FLAMBY_TCGA_CENTERS 6
#define FF_FLAMBY_TCGA_FEATURES 39

typedef struct {
    int n, cap, d, t; /* rows, capacity, features, target columns */
    float *x;         /* [n, d] */
    float *y;         /* [n, t]: label, or (event, time) */
    int *center;      /* [n] */
} ff_flamby_split;

typedef struct {
    int dataset; /* FF_FLAMBY_HEART or FF_FLAMBY_TCGA */
    int ncenters, nfeatures, ntargets;
    char **feature_names;
    ff_flamby_split train[FF_FLAMBY_MAX_CENTERS], test[FF_FLAMBY_MAX_CENTERS];
    ff_flamby_split pooled_train, pooled_test;
} ff_flamby_data;

/* dataset "heart-disease" or "tcga-brca". On success d holds what was written (free with
 * ff_flamby_data_free); on error d is empty. */
int ff_flamby_import(const char *dataset, const char *in_dir, const char *out_dir,
                     ff_flamby_data *d) FF_WARN_UNUSED;
int ff_flamby_load(const char *dir, ff_flamby_data *d) FF_WARN_UNUSED;
void ff_flamby_data_free(ff_flamby_data *d);
/* FLamby's heart-disease normalisation applied to d: each centre's train and test rows with
 * that centre's training mean and unbiased std, (x − m)/(s + 1e-9); the pooled rows with the
 * pooled training rows'. */
int ff_flamby_standardise(ff_flamby_data *d) FF_WARN_UNUSED;
void ff_flamby_split_free(ff_flamby_split *s);

#ifdef __cplusplus
}
#endif
#endif
