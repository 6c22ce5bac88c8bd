/* The in-memory site: patient table, tokenized notes, kept events, resized images. */
#ifndef FF_DATA_SITE_INTERNAL_H
#define FF_DATA_SITE_INTERNAL_H

#include "internal.h"

#define SITE_MAX_ATTRS 16
#define SITE_MAX_ATTR_VALUES 64

typedef struct {
    char name[64];
    int nvalues;
    char *values[SITE_MAX_ATTR_VALUES]; /* the value past the cap is counted as "other" */
} site_attr;

struct ff_site {
    ff_data_shape shape;
    size_t n;            /* patients in patients.csv rows kept (before modality check) */
    char **ids;          /* [n] */
    uint8_t *split;      /* [n] */
    long *lines;         /* [n]: line in patients.csv, for strict-mode messages */
    float *age;          /* [n]: NaN = unknown */
    int age_unknown;     /* some patient's age is unknown: age_band has a 4th value */
    uint8_t *attr;       /* [n * nattr]: value index per attribute */
    int nattr;           /* built-in sex and age_band included */
    site_attr attrs[SITE_MAX_ATTRS];
    float *labels;       /* [n * K]: each task's columns (ff/common.h "Prediction tasks") */
    uint8_t *known;      /* [n * tasks]: 1 when the task's label is given */
    /* notes: up to Lt ids per patient */
    int32_t *text;       /* [n * Lt] */
    uint16_t *text_len;  /* [n] */
    uint32_t *words;     /* [n] words in all notes (for the summary) */
    /* events: the Le most recent per patient, oldest first */
    size_t *ev_off;      /* [n + 1] */
    int32_t *ev_code;
    int8_t *ev_val;
    float *ev_hours;
    /* images: H*W values in [0, 1] quantised to 16 bits (half the memory of floats, far
     * finer than any 8-bit source); the batch maps them to [-1, 1] */
    int32_t *img_slot;   /* [n]: -1 none */
    uint16_t *img;       /* [nimg * H * W] */
    size_t nimg;
    ff_value_hist hist;
    /* tabular.csv (shape.tab.n > 0): the raw value of each feature, NaN = missing (numeric:
     * the number; categorical: the category's index); tab_has: the patient has a row */
    float *tabv;         /* [n * features] */
    uint8_t *tab_has;    /* [n] */
    float tab_mean[FF_FEATURES_MAX], tab_sd[FF_FEATURES_MAX]; /* numeric: from the train split */
    /* kept patients per split, in file order */
    uint32_t *members[FF_SPLIT_COUNT];
    size_t count[FF_SPLIT_COUNT];
};

typedef struct {
    uint32_t *slots; /* patient index + 1; 0 = empty */
    size_t mask;
} id_index;

/* What every per-file row callback after patients.csv reads with. */
typedef struct {
    ff_site *s;
    const ff_site_opts *opts;
    ff_load_report *rep;
    const char *shown;
    const id_index *ix;
} reader;

/* The patient index of id (len bytes), -1 when not in patients.csv. */
long ff_site_index_find(const id_index *ix, char **ids, const char *id, size_t len);
/* A row the lenient mode skips (counted, and told to opts.on_skip): an error in strict mode. */
int ff_site_skip_row(const ff_site_opts *o, ff_load_report *rep, ff_skip_reason why,
                     const char *shown, long line, const char *reason) FF_WARN_UNUSED;
/* The header: valid UTF-8 and not more than 256 columns. */
int ff_site_header_check(const ff_csv_row *r, const char *shown) FF_WARN_UNUSED;

/* tabular.csv (data/src/tabular.c): read when the shape declares features; then the
 * numeric features' mean and sd from the kept train patients, and the batch rows. */
int ff_site_tabular_read(ff_site *s, const char *dir, const ff_site_opts *o, ff_load_report *rep,
                         const id_index *ix) FF_WARN_UNUSED;
void ff_site_tabular_stats(ff_site *s);
void ff_site_tabular_row(const ff_site *s, size_t p, float *row, float *present);

/* Built-in attributes. */
enum { SITE_ATTR_SEX = 0, SITE_ATTR_AGE_BAND = 1, SITE_ATTR_BUILTIN = 2 };

#endif
