/*
 * ff/common.h — the base of fedfuse: status codes and error messages, logging, YAML config,
 * aligned memory and arenas, tensor views, safetensors I/O, a counter-based RNG, durable file
 * writes and a progress display. Every other library depends on this one and on nothing else
 * of ours.
 *
 * Usage:
 *
 *     ff_safetensors *st = NULL;
 *     if (ff_safetensors_open(&st, "model.safetensors") != FF_OK) {
 *         fprintf(stderr, "error: %s\n", ff_error_message());   // names file and field
 *         return 2;
 *     }
 *     const ff_st_entry *w = ff_safetensors_find(st, "head.weight");
 *     ...
 *     ff_safetensors_close(st);
 *
 * Conventions: fallible functions return int (FF_OK = 0, negative FF_E... on failure) and
 * set a thread-local message naming the file, line, field or value at fault. Functions that
 * cannot fail return void. Library code never exits or aborts on data.
 */
#ifndef FF_COMMON_H
#define FF_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FF_WARN_UNUSED __attribute__((warn_unused_result))
#define FF_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---------------------------------------------------------------------------------------- */
/* Status codes and errors                                                                   */
/* ---------------------------------------------------------------------------------------- */

enum {
    FF_OK = 0,
    FF_EINVAL = -1,    /* bad argument or bad input data (names the field) */
    FF_ENOMEM = -2,    /* allocation failed or a size cap was exceeded */
    FF_EIO = -3,       /* operating-system I/O error (names the file) */
    FF_EFORMAT = -4,   /* a file or message is malformed (names the place) */
    FF_ECONFIG = -5,   /* a config file is invalid (names file:line:col and key path) */
    FF_ERANGE = -6,    /* a value is out of its allowed range */
    FF_ENOTFOUND = -7, /* a named thing does not exist */
    FF_ECRYPTO = -8,   /* a cryptographic check failed */
    FF_ESTATE = -9,    /* an operation is not allowed in the current state */
    FF_ENUMERIC = -10, /* NaN or Inf where finite numbers are required */
    FF_EPOLICY = -11,  /* refused by a site or consortium policy */
    FF_ENET = -12,     /* network or peer failure */
    FF_ETIMEOUT = -13, /* a deadline passed */
    FF_EINTERNAL = -14 /* a bug: an invariant of our own code broke */
};

/* Short stable name of a status code ("EINVAL"); "?" for unknown codes. */
const char *ff_status_name(int status);

/* Sets the thread-local error message and returns status, so callers can write
 * `return ff_error(FF_EINVAL, "%s: field '%s' ...", path, key);`. */
int ff_error(int status, const char *fmt, ...) FF_PRINTF(2, 3);

/* Prefixes the current message with context ("loading site A: " + old message) and returns
 * status unchanged. */
int ff_error_prefix(int status, const char *fmt, ...) FF_PRINTF(2, 3);

/* The last message set on this thread ("" if none). Valid until the next ff_error call. */
const char *ff_error_message(void);

void ff_error_clear(void);

/* Programmer errors only, never data: prints and aborts. */
#define FF_ASSERT(cond)                                                                       \
    do {                                                                                      \
        if (!(cond))                                                                          \
            ff_assert_fail(#cond, __FILE__, __LINE__);                                        \
    } while (0)
void ff_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));

/* Frees *p and sets it to NULL. */
#define FF_FREE(p)                                                                            \
    do {                                                                                      \
        free(p);                                                                              \
        (p) = NULL;                                                                           \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* Logging                                                                                   */
/* ---------------------------------------------------------------------------------------- */
/*
 * Rule: the logger is never handed record contents (notes, codes, values, ids of patients).
 * It logs counts, sizes, hashes, site names, file names and configuration only. Call sites
 * pass formats with such values; tests/common/test_log_privacy.c checks a full pipeline's log
 * for planted patient strings.
 */
typedef enum { FF_LOG_DEBUG = 0, FF_LOG_INFO, FF_LOG_WARN, FF_LOG_ERROR, FF_LOG_OFF } ff_log_level;
typedef enum { FF_LOG_PLAIN = 0, FF_LOG_JSON } ff_log_format;

/* Process-wide logger settings. component names the process role ("coordinator",
 * "client:site-a") and is included in each line. Passing NULL path logs to stderr. */
int ff_log_open(ff_log_level level, ff_log_format format, const char *path,
                const char *component) FF_WARN_UNUSED;
void ff_log_close(void);
void ff_log_set_level(ff_log_level level);
ff_log_level ff_log_get_level(void);
int ff_log_level_parse(const char *s, ff_log_level *out) FF_WARN_UNUSED;
/* Every message is escaped (ff_log_escape) before it is written, in both formats. */
void ff_log(ff_log_level level, const char *fmt, ...) FF_PRINTF(2, 3);
void ff_logv(ff_log_level level, const char *fmt, va_list ap) FF_PRINTF(2, 0);
/* Copies in to out (cap bytes, NUL-terminated, cut at cap) with control characters, DEL,
 * C1 controls, bytes that are not well-formed UTF-8 and backslashes escaped as \xNN / \\:
 * for any peer-controlled string shown on a terminal or in a log. Returns the length. */
size_t ff_log_escape(char *out, size_t cap, const char *in);

/* Writes s to f with the five HTML-special characters (< > & " ') as entities: text and
 * attribute values of the self-contained pages (report, audit, explanation). NULL = nothing. */
void ff_html_fputs(FILE *f, const char *s);

#define FF_LOG_DEBUG(...) ff_log(FF_LOG_DEBUG, __VA_ARGS__)
#define FF_LOG_INFO(...) ff_log(FF_LOG_INFO, __VA_ARGS__)
#define FF_LOG_WARN(...) ff_log(FF_LOG_WARN, __VA_ARGS__)
#define FF_LOG_ERROR(...) ff_log(FF_LOG_ERROR, __VA_ARGS__)

/* ---------------------------------------------------------------------------------------- */
/* Memory: aligned allocation and a bump arena for per-batch scratch                         */
/* ---------------------------------------------------------------------------------------- */

#define FF_ALIGN 64

/* 64-byte aligned allocation of n bytes (n may be 0); NULL on failure. Free with ff_free. */
void *ff_alloc(size_t n);
/* As ff_alloc, zero-filled; checks count*size for overflow. */
void *ff_calloc(size_t count, size_t size);
void ff_free(void *p);

/* Checked multiplication/addition of sizes: 0 on success, FF_ENOMEM on overflow. */
int ff_size_mul(size_t a, size_t b, size_t *out) FF_WARN_UNUSED;
int ff_size_add(size_t a, size_t b, size_t *out) FF_WARN_UNUSED;
/* The one growable array: makes the realloc'd block at *pp (a T **, cast to void *) hold at
 * least need items of elem bytes. When *cap < need it grows to max(2 * *cap, 16, need) items
 * (realloc; *pp and *cap updated), so n appends cost O(n) in total. FF_ENOMEM when need * elem
 * overflows size_t or realloc fails; *pp and *cap are then unchanged (the old block stays
 * valid and owned by the caller). Usage:
 *     if (ff_grow(&v->items, &v->cap, v->count + 1, sizeof *v->items) != FF_OK) ...
 *     v->items[v->count++] = x; */
int ff_grow(void *pp, size_t *cap, size_t need, size_t elem) FF_WARN_UNUSED;
/* A growing text (HTML pages, metrics scrapes, canonical forms): printf appends, on ff_grow.
 * Out of memory sets oom and later appends do nothing, so a writer checks once at the end.
 * Start from {0}; buf (NUL-terminated once anything was appended) is freed by ff_sbuf_free. */
typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} ff_sbuf;
void ff_sbuf_printf(ff_sbuf *b, const char *fmt, ...) FF_PRINTF(2, 3);
void ff_sbuf_free(ff_sbuf *b);

typedef struct {
    uint8_t *base;
    size_t cap;
    size_t used;
    size_t peak;
} ff_arena;

/* Reserves cap bytes once; allocations never grow it (overflow is an error, not a realloc,
 * so pointers stay valid and memory stays bounded). */
int ff_arena_init(ff_arena *a, size_t cap) FF_WARN_UNUSED;
void ff_arena_free(ff_arena *a);
/* 64-byte aligned block of n bytes, or NULL (with FF_ENOMEM message) when the arena is full. */
void *ff_arena_alloc(ff_arena *a, size_t n);
/* Zero-filled float block of n floats. */
float *ff_arena_floats(ff_arena *a, size_t n);
void ff_arena_reset(ff_arena *a);

/* ---------------------------------------------------------------------------------------- */
/* Tensor views                                                                              */
/* ---------------------------------------------------------------------------------------- */

#define FF_MAX_DIMS 8

typedef enum { FF_DT_F32 = 0, FF_DT_F64, FF_DT_I32, FF_DT_I64, FF_DT_U8, FF_DT_COUNT } ff_dtype;

/* A view over memory it does not own; contiguous row-major unless strides say otherwise
 * (strides in elements). */
typedef struct {
    ff_dtype dtype;
    int ndim;
    int64_t shape[FF_MAX_DIMS];
    int64_t strides[FF_MAX_DIMS];
    void *data;
} ff_tensor;

size_t ff_dtype_size(ff_dtype dt);
const char *ff_dtype_name(ff_dtype dt); /* safetensors spelling: "F32", "I32", ... */
int ff_dtype_parse(const char *name, ff_dtype *out) FF_WARN_UNUSED;

/* Fills a contiguous view; FF_EINVAL for ndim out of range or negative dims. */
int ff_tensor_view(ff_tensor *t, ff_dtype dt, void *data, int ndim,
                   const int64_t *shape) FF_WARN_UNUSED;
/* Number of elements (product of shape; 1 for ndim 0). */
size_t ff_tensor_numel(const ff_tensor *t);
size_t ff_tensor_nbytes(const ff_tensor *t);
int ff_tensor_is_contiguous(const ff_tensor *t);
/* Formats a shape as "[2,3,4]" into buf. */
const char *ff_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

/* ---------------------------------------------------------------------------------------- */
/* The model's input batch: what data/ produces and models/ consumes                         */
/* ---------------------------------------------------------------------------------------- */
/*
 * Layout follows ../shared/spec/model.md ("Model inputs"): row-major, batch first.
 * image_present is 0/1; a text row or EHR row of all-zero ids means the modality is absent.
 * label_mask[b*K+k] is 1 when the label is known (unlabelled patients train only objectives
 * that need no labels); all ones for fully labelled data.
 */
typedef struct {
    int B, K;       /* batch size, number of tasks */
    int C, H, W;    /* image channels and size */
    int Lt, Le;     /* text tokens, EHR events */
    float *image;         /* [B, C, H, W] */
    float *image_present; /* [B] */
    int32_t *text_ids;    /* [B, Lt] */
    int32_t *ehr_code;    /* [B, Le] */
    int32_t *ehr_val;     /* [B, Le] */
    int32_t *ehr_time;    /* [B, Le] */
    float *labels;        /* [B, K] */
    float *label_mask;    /* [B, K] */
    /* The tabular modality (only with a model config's `tabular:` section; F = 0 and both
     * NULL otherwise): each patient's encoded feature row (ff_feature_set's layout) and
     * whether the patient has a row in tabular.csv. */
    int F;                /* encoded tabular columns */
    float *tab;           /* [B, F] */
    float *tab_present;   /* [B] */
} ff_batch;

/* Allocates every array of a batch (zero-filled); on error nothing is allocated. */
int ff_batch_alloc(ff_batch *b, int B, int K, int C, int H, int W, int Lt,
                   int Le) FF_WARN_UNUSED;
/* Adds the tabular arrays (zero-filled) to an allocated batch; F = 0 leaves it without. */
int ff_batch_alloc_tab(ff_batch *b, int F) FF_WARN_UNUSED;
void ff_batch_free(ff_batch *b);
/* Presence of modality j (0 image, 1 text, 2 EHR, 3 tabular: 0 for a batch without) for
 * sample i. */
int ff_batch_present(const ff_batch *b, int i, int j);
/* A view of row i of b as a batch of one (pointers into b; NULL arrays stay NULL). */
ff_batch ff_batch_row(const ff_batch *b, int i);

/* ---------------------------------------------------------------------------------------- */
/* Prediction tasks: what the model predicts is data (the model config's `tasks:` list)      */
/* ---------------------------------------------------------------------------------------- */
/*
 * Each task takes ff_task_width columns of the batch's labels/label_mask and of the model's
 * logits, from column `col`: binary 1 (label 0/1, logit), multiclass `classes` (one-hot
 * labels, one logit per class), regression 1 (the raw value; the logit predicts
 * (y − center) / scale), survival 2 (labels time, event; logit column 0 is the risk score,
 * column 1 is not trained). A row's label_mask is 1 on every column of a task whose label is
 * known. docs/model.md ("Tasks") gives the losses, docs/evaluation.md the metrics.
 */
typedef enum {
    FF_TASK_BINARY = 0,
    FF_TASK_MULTICLASS,
    FF_TASK_REGRESSION,
    FF_TASK_SURVIVAL,
    FF_TASK_KIND_COUNT
} ff_task_kind;
#define FF_TASKS_MAX 16
#define FF_TASK_CLASSES_MAX 64

typedef struct {
    char name[64];    /* shown everywhere: metrics.json keys, report, console */
    int kind;         /* ff_task_kind */
    char label[64];   /* label column of patients.csv (default label_<name>; not survival) */
    char time[64];    /* survival: time-to-event or censoring column */
    char event[64];   /* survival: 1 = event, 0 = censored */
    int64_t classes;  /* multiclass: labels 0 .. classes-1 */
    double center, scale; /* regression: the model predicts (y - center) / scale */
    double horizon;   /* survival: time of the time-dependent AUROC (> 0) */
    int col;          /* first column (filled by ff_task_set_finish) */
} ff_task;

typedef struct {
    int n;     /* tasks */
    int width; /* columns of labels and logits: the model's K */
    ff_task t[FF_TASKS_MAX];
} ff_task_set;

const char *ff_task_kind_name(int kind); /* binary, multiclass, regression, survival */
int ff_task_width(const ff_task *t);
/* The emergency-department tasks of the demo as K binary tasks: admission, icu, critical
 * (label_admission, ...), then task4, task5, ... for K > 3 (what `tasks: K` declares). */
void ff_task_set_ed(ff_task_set *s, int K);
/* Checks every task (unique non-empty names, the kind's columns given, classes 2..64,
 * scale > 0, horizon > 0), fills default label columns, `col` and width. Errors name the task. */
int ff_task_set_finish(ff_task_set *s) FF_WARN_UNUSED;
/* 1 when every task is binary (the fusion model's original BCE over all K columns). */
int ff_task_set_all_binary(const ff_task_set *s);
/* Index of the task named name, -1 when none. */
int ff_task_find(const ff_task_set *s, const char *name);

/* ---------------------------------------------------------------------------------------- */
/* Tabular features: a per-patient table declared in the model config's `tabular:` section   */
/* ---------------------------------------------------------------------------------------- */
/*
 * Each feature takes ff_feature_width columns of the batch's tab row, from column `col`:
 * numeric 2 (the value standardised with the site's mean and sd, 0 when missing; then a
 * missing indicator), categorical classes + 1 (one-hot over the declared categories, all 0
 * when missing; then a missing indicator). docs/model.md ("Tabular modality").
 */
typedef enum { FF_FEATURE_NUMERIC = 0, FF_FEATURE_CATEGORICAL } ff_feature_kind;
typedef enum { FF_NORM_SITE = 0, FF_NORM_FEDERATED } ff_feature_norm;
#define FF_FEATURES_MAX 32
#define FF_FEATURE_CATEGORIES_MAX 24

typedef struct {
    char name[64];   /* column of tabular.csv */
    int kind;        /* ff_feature_kind */
    int ncat;        /* categorical: declared categories */
    char cat[FF_FEATURE_CATEGORIES_MAX][32];
    int col;         /* first encoded column (ff_feature_set_finish) */
} ff_feature;

typedef struct {
    int n;      /* features; 0 = no tabular modality */
    int width;  /* encoded columns: the batch's F */
    int norm;   /* ff_feature_norm */
    int hidden; /* the encoder's hidden width */
    ff_feature f[FF_FEATURES_MAX];
} ff_feature_set;

int ff_feature_width(const ff_feature *f);
const char *ff_feature_kind_name(int kind); /* numeric, categorical */
/* Checks names (unique, non-empty, not patient_id), categories (2..24 per categorical,
 * unique, non-empty) and fills col and width. Errors name the feature. */
int ff_feature_set_finish(ff_feature_set *s) FF_WARN_UNUSED;
/* Index of the feature named name (n bytes), -1 when none. */
int ff_feature_find(const ff_feature_set *s, const char *name, size_t n);
/* Index of category value v (n bytes) of feature f, -1 when not declared. */
int ff_feature_category(const ff_feature *f, const char *v, size_t n);

/* ---------------------------------------------------------------------------------------- */
/* safetensors                                                                               */
/* ---------------------------------------------------------------------------------------- */

#define FF_ST_MAX_HEADER (100u * 1024u * 1024u) /* the format's own 100 MB header cap */
#define FF_ST_MAX_TENSORS 65536

typedef struct {
    char *name;
    ff_dtype dtype;
    int ndim;
    int64_t shape[FF_MAX_DIMS];
    size_t offset; /* into the data section */
    size_t nbytes;
    const void *data; /* points into the mapping; may be unaligned for 4-byte types */
} ff_st_entry;

typedef struct ff_safetensors ff_safetensors;

/* Opens and validates a safetensors file by mmap: header length within the file and cap,
 * JSON well-formed, every entry has dtype/shape/data_offsets, offsets in range, ordered,
 * non-overlapping and covering, byte counts matching dtype*shape. No tensor data is read
 * before the header is valid. On error *out is NULL and the message names the file and the
 * field. The caller owns *out and releases it with ff_safetensors_close. */
int ff_safetensors_open(ff_safetensors **out, const char *path) FF_WARN_UNUSED;
/* As open, from memory (copied). name is used in error messages. */
int ff_safetensors_open_mem(ff_safetensors **out, const void *buf, size_t len,
                            const char *name) FF_WARN_UNUSED;
void ff_safetensors_close(ff_safetensors *st);
size_t ff_safetensors_count(const ff_safetensors *st);
const ff_st_entry *ff_safetensors_entry(const ff_safetensors *st, size_t i);
/* NULL when absent. */
const ff_st_entry *ff_safetensors_find(const ff_safetensors *st, const char *name);
/* String metadata from "__metadata__" (NULL when absent). */
const char *ff_safetensors_meta(const ff_safetensors *st, const char *key);
/* Copies an entry's data into dst (n bytes must equal entry nbytes); handles alignment. */
int ff_st_entry_copy(const ff_st_entry *e, void *dst, size_t n) FF_WARN_UNUSED;
/* Looks up name, checks dtype and shape (ndim dims), copies into dst. Errors name the
 * tensor, the expected and the found shape. */
int ff_safetensors_read(const ff_safetensors *st, const char *name, ff_dtype dt, int ndim,
                        const int64_t *shape, void *dst) FF_WARN_UNUSED;

typedef struct ff_st_writer ff_st_writer;
/* Collects tensors (pointers, not copies: they must stay valid until ff_st_writer_save) and
 * writes them atomically: temp file in the same folder, fsync, rename, fsync the folder. */
int ff_st_writer_new(ff_st_writer **out) FF_WARN_UNUSED;
int ff_st_writer_add(ff_st_writer *w, const char *name, ff_dtype dt, int ndim,
                     const int64_t *shape, const void *data) FF_WARN_UNUSED;
int ff_st_writer_meta(ff_st_writer *w, const char *key, const char *value) FF_WARN_UNUSED;
int ff_st_writer_save(ff_st_writer *w, const char *path) FF_WARN_UNUSED;
void ff_st_writer_free(ff_st_writer *w);

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* A file written in pieces and published atomically: data goes to PATH.tmp.PID; commit
 * fsyncs, renames over path and fsyncs the folder; abort (or any failed write) removes the
 * temp file and leaves path as it was. */
typedef struct {
    int fd;
    int err; /* first errno seen; commit fails if set */
    char *tmp;
    char *path;
} ff_atomic_file;
int ff_atomic_open(ff_atomic_file *f, const char *path, unsigned mode) FF_WARN_UNUSED;
int ff_atomic_write(ff_atomic_file *f, const void *buf, size_t len) FF_WARN_UNUSED;
int ff_atomic_commit(ff_atomic_file *f) FF_WARN_UNUSED;
void ff_atomic_abort(ff_atomic_file *f);

/* Writes buf to path atomically (temp + fsync + rename + fsync dir), with the given mode
 * (0600 for keys). On error, path is untouched and the temp file is removed. */
int ff_file_write_atomic(const char *path, const void *buf, size_t len,
                         unsigned mode) FF_WARN_UNUSED;
/* rename(from, to), then fsync of to's folder: the new name survives a crash. */
int ff_file_rename_durable(const char *from, const char *to) FF_WARN_UNUSED;
/* Reads a whole file (at most max bytes) into a malloc'd buffer with a NUL after it. */
int ff_file_read_all(const char *path, size_t max, char **out, size_t *len) FF_WARN_UNUSED;
/* Opens path for reading only if it is a regular file (opened with O_NONBLOCK, checked with
 * fstat after open, then made blocking): a FIFO or device is refused at once instead of
 * hanging the reader. FF_EIO naming the path otherwise. The caller closes *fd. */
int ff_file_open_regular(const char *path, int *fd) FF_WARN_UNUSED;
/* fopen(path, "rb") through ff_file_open_regular; NULL with ff_error set on failure. */
FILE *ff_file_fopen_regular(const char *path);
/* mkdir -p with mode. */
int ff_mkdir_p(const char *path, unsigned mode) FF_WARN_UNUSED;
int ff_path_exists(const char *path);
/* A file as seen from outside (modification time in ns, size, inode), for files re-read when
 * they change (the CRL, the consortium file): a file replaced by rename, or rewritten within
 * the same second, has another stamp; a half-written copy differs from the finished one. All
 * zero when path cannot be stat'ed. */
typedef struct {
    int64_t mtime_ns, size;
    uint64_t ino;
} ff_file_stamp;
ff_file_stamp ff_file_stamp_of(const char *path);
int ff_file_stamp_eq(ff_file_stamp a, ff_file_stamp b);

/* ---------------------------------------------------------------------------------------- */
/* RNG: Philox4x32-10 (Salmon et al., SC'11), counter-based and identical on every machine    */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t buf[4];
    int pos; /* next unused word in buf; 4 = empty */
} ff_rng;

/* stream separates independent uses of one seed (per site, per round, per purpose). */
void ff_rng_init(ff_rng *r, uint64_t seed, uint64_t stream);
/* The raw block for (key, counter): the Philox function itself, for known-answer tests. */
void ff_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);
uint32_t ff_rng_u32(ff_rng *r);
uint64_t ff_rng_u64(ff_rng *r);
/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
float ff_rng_uniform(ff_rng *r);
double ff_rng_uniform_d(ff_rng *r);
/* Uniform integer in [0, n), unbiased (rejection). n > 0. */
uint32_t ff_rng_below(ff_rng *r, uint32_t n);
/* Standard normal (Box-Muller on 53-bit uniforms). */
double ff_rng_normal(ff_rng *r);
void ff_rng_normal_fill(ff_rng *r, float *out, size_t n, float mean, float std);
/* Fisher-Yates shuffle of n indices. */
void ff_rng_shuffle(ff_rng *r, uint32_t *idx, size_t n);

/* ---------------------------------------------------------------------------------------- */
/* Progress                                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    FILE *out;
    int tty;
    const char *label;
    uint64_t total;
    uint64_t done;
    double t_start;
    double t_last;
    char extra[128];
} ff_progress;

/* A live bar with rate and ETA on a terminal, a plain line every `period` seconds otherwise. */
void ff_progress_start(ff_progress *p, FILE *out, const char *label, uint64_t total);
void ff_progress_update(ff_progress *p, uint64_t done, const char *extra);
void ff_progress_finish(ff_progress *p);
/* Monotonic seconds. */
double ff_now(void);
/* Wall clock, seconds since the epoch. */
double ff_wall_time(void);

/* ---------------------------------------------------------------------------------------- */
/* Config: YAML loaded into typed, validated structs through a field table                    */
/* ---------------------------------------------------------------------------------------- */
/*
 * A schema is an array of ff_cfg_field ending with {0}. The loader walks the YAML mapping:
 * unknown keys, wrong types, values out of range and missing required keys are errors of the
 * form "FILE:LINE:COL: key.path: what is wrong". Fields not required and absent keep the
 * default the schema declares (documented defaults only).
 */
typedef enum {
    FF_CFG_END = 0,
    FF_CFG_INT,     /* int64_t at offset; min/max inclusive */
    FF_CFG_DOUBLE,  /* double at offset; min/max inclusive */
    FF_CFG_BOOL,    /* int at offset (0/1); YAML true/false */
    FF_CFG_STRING,  /* char[size] at offset; size = max bytes including NUL */
    FF_CFG_ENUM,    /* int at offset; the index of the value in choices (NULL-terminated) */
    FF_CFG_SECTION, /* nested mapping described by sub, at offset */
    FF_CFG_LIST,    /* sequence of sections (sub) or scalars; see ff_cfg_list */
    FF_CFG_STRLIST  /* sequence of strings into an ff_cfg_strlist at offset */
} ff_cfg_type;

typedef struct ff_cfg_field ff_cfg_field;
struct ff_cfg_field {
    const char *key;
    ff_cfg_type type;
    size_t offset;
    size_t size;      /* STRING: buffer size; LIST: element size */
    int required;
    double min, max;  /* INT/DOUBLE range; LIST/STRLIST: count range */
    const char *def;  /* default as YAML scalar text, applied before loading (NULL = zero) */
    const char *const *choices;  /* ENUM */
    const ff_cfg_field *sub;     /* SECTION/LIST */
    const char *help; /* one line for documentation and `fedfuse config schema` */
    /* LIST: a scalar given instead of a list is loaded as this field (`tasks: 3` beside
     * `tasks: [{...}]`); NULL = a scalar is an error. */
    const ff_cfg_field *alt;
};

/* A list of sections: heap array of count elements of elem_size bytes. */
typedef struct {
    void *items;
    size_t count;
} ff_cfg_list;

#define FF_CFG_STRLIST_MAX 64
typedef struct {
    char *items[FF_CFG_STRLIST_MAX];
    size_t count;
} ff_cfg_strlist;

/* The largest config file read (4 MiB). */
#define FF_CFG_MAX_FILE (4u * 1024u * 1024u)
/* Loads path into out per schema (out is first filled with defaults). On error out may be
 * partly filled; release with ff_cfg_free either way. */
int ff_cfg_load(const char *path, const ff_cfg_field *schema, void *out) FF_WARN_UNUSED;
/* As ff_cfg_load from a string; name is used in messages. */
int ff_cfg_load_str(const char *name, const char *yaml, size_t len, const ff_cfg_field *schema,
                    void *out) FF_WARN_UNUSED;
/* Applies the schema's defaults only. */
int ff_cfg_defaults(const ff_cfg_field *schema, void *out) FF_WARN_UNUSED;
/* Frees the lists and string lists the loader allocated. */
void ff_cfg_free(const ff_cfg_field *schema, void *out);
/* Adds value to the top-level list `key` of the YAML file at path, editing the text in place
 * (comments and layout kept; block `- x` or flow `[x]` lists; a missing or empty key gets a
 * new block list) and rewriting it atomically with its mode. *added = 0 when value is
 * already listed (nothing is written). The caller validates the result. */
int ff_cfg_strlist_add(const char *path, const char *key, const char *value,
                       int *added) FF_WARN_UNUSED;
/* As ff_cfg_strlist_add for a list of mappings identified by their scalar `field` (the
 * consortium's `sites: [{name: ...}]`): adds `field: value` (and the line `more`, "key: value"
 * YAML text, when not NULL) unless an item already has that field value. field NULL = a list
 * of scalars. */
int ff_cfg_list_add(const char *path, const char *key, const char *field, const char *value,
                    const char *more, int *added) FF_WARN_UNUSED;
/* Line and column (1-based) of the deepest key of path ("tls.cert", "stages[1].name") found in
 * the YAML text; 1:1 when the text does not parse or has none of it. */
void ff_cfg_key_place(const char *yaml, size_t len, const char *path, size_t *line, size_t *col);
/* An error found after loading (a file a key names is missing, a name differs from a
 * certificate's) placed at the key in the file: code, "FILE:LINE:COL: path: what". */
int ff_cfg_error_at(int code, const char *file, const char *path, const char *fmt, ...)
    FF_PRINTF(4, 5);
/* The same for a text already read (yaml, len bytes, from the file called name; NULL = place
 * 1:1): a cross-field check after loading, "NAME:LINE:COL: path: what". */
int ff_cfg_error_in(int code, const char *name, const char *yaml, size_t len, const char *path,
                    const char *fmt, ...) FF_PRINTF(6, 7);
/* Relative paths in a config file are relative to the file's folder, not to wherever the
 * program was started (systemd, a hospital's shell, a test): p (n bytes) is rewritten so. */
void ff_cfg_path_resolve(const char *config_path, char *p, size_t n);
/* Writes a human-readable description of a schema (key, type, default, range, help). */
void ff_cfg_describe(FILE *f, const ff_cfg_field *schema, int indent);

/* ---------------------------------------------------------------------------------------- */
/* Hashing (OpenSSL's SHA-256) and secret hygiene                                            */
/* ---------------------------------------------------------------------------------------- */

#define FF_SHA256_BYTES 32
#define FF_SHA256_HEX (2 * FF_SHA256_BYTES + 1)

typedef struct ff_sha256_ctx ff_sha256_ctx;
int ff_sha256_new(ff_sha256_ctx **out) FF_WARN_UNUSED;
void ff_sha256_update(ff_sha256_ctx *c, const void *data, size_t n);
/* Writes the digest and frees the context. */
void ff_sha256_final(ff_sha256_ctx *c, uint8_t out[FF_SHA256_BYTES]);
void ff_sha256(const void *data, size_t n, uint8_t out[FF_SHA256_BYTES]);
/* SHA-256 of a whole file, streamed; hex digest into out. */
int ff_sha256_file(const char *path, char out[FF_SHA256_HEX]) FF_WARN_UNUSED;
/* Wipes secrets in a way the compiler cannot elide (OPENSSL_cleanse). */
void ff_secure_zero(void *p, size_t n);
/* Constant-time equality of two n-byte buffers (CRYPTO_memcmp): 1 when equal. */
int ff_ct_equal(const void *a, const void *b, size_t n);

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Bounded copy that always NUL-terminates; FF_ERANGE when src did not fit. */
int ff_strlcpy(char *dst, const char *src, size_t n);
/* Parses a whole string as a number; FF_EINVAL on trailing junk, overflow or empty. */
int ff_parse_i64(const char *s, int64_t *out) FF_WARN_UNUSED;
int ff_parse_f64(const char *s, double *out) FF_WARN_UNUSED;
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void ff_hex(const uint8_t *in, size_t n, char *out);
/* FNV-1a 32-bit, the hash the tokenizers use. */
uint32_t ff_fnv1a32(const void *data, size_t n);

#define FF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FF_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FF_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define FF_VERSION "0.1.0"

#ifdef __cplusplus
}
#endif
#endif
