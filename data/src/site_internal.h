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
    /* kept patients per split, in file order */
    uint32_t *members[FF_SPLIT_COUNT];
    size_t count[FF_SPLIT_COUNT];
};

/* Built-in attributes. */
enum { SITE_ATTR_SEX = 0, SITE_ATTR_AGE_BAND = 1, SITE_ATTR_BUILTIN = 2 };

#endif
