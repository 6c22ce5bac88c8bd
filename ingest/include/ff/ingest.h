/*
 * ff/ingest.h — a hospital's own exports into the site format (docs/data.md): DICOM images
 * from a PACS export (DCMTK behind a small C++ shim) and FHIR R4 Bulk Data exports (NDJSON,
 * streamed with jansson).
 *
 *     ff_dicom_opts o = ff_dicom_opts_default();
 *     o.in_dir = "pacs-export"; o.map_path = "map.csv"; o.size = 64;
 *     ff_dicom_report rep;
 *     if (ff_ingest_dicom(&o, "site", &rep) != FF_OK) ...     // names file and reason
 *     ff_dicom_report_print(&rep, stdout);                    // counts only
 *
 *     ff_fhir_opts f = ff_fhir_opts_default();
 *     f.in_dir = "fhir-export";
 *     ff_fhir_report fr;
 *     if (ff_ingest_fhir(&f, "site", &fr) != FF_OK) ...
 *     ff_fhir_report_print(&fr, stdout);
 *
 * Neither importer writes a header value or a resource field that identifies a person
 * (names, birth dates, DICOM ids, UIDs, dates): images are named by the hospital's own
 * patient_id from its mapping file, times become hours before the index visit.
 */
#ifndef FF_INGEST_H
#define FF_INGEST_H

#include <stdint.h>
#include <stdio.h>

#include "ff/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* DICOM                                                                                     */
/* ---------------------------------------------------------------------------------------- */

#define FF_DICOM_MAX_KEEP 8 /* values per filter list */

typedef enum {
    FF_DICOM_WINDOW_AUTO = 0, /* the first stored window, else none */
    FF_DICOM_WINDOW_NONE,     /* DCMTK's default: the full range of the modality values */
    FF_DICOM_WINDOW_DECLARED  /* center, width given */
} ff_dicom_window;

typedef struct {
    const char *in_dir;   /* walked recursively (any nesting; DICOMDIR files are skipped) */
    const char *map_path; /* CSV: patient_id + dicom_patient_id or accession_number */
    /* Views kept: empty list = any value. Compared case-insensitively. */
    const char *modality[FF_DICOM_MAX_KEEP];
    const char *body_part[FF_DICOM_MAX_KEEP];
    const char *view[FF_DICOM_MAX_KEEP];
    int nmodality, nbody_part, nview;
    ff_dicom_window window;
    double center, width; /* FF_DICOM_WINDOW_DECLARED */
    int size;             /* > 0: letterboxed into size x size (area averaging); 0 native */
    int strict;           /* 1: the first unreadable or unmapped file is an error */
    int quiet;
} ff_dicom_opts;
ff_dicom_opts ff_dicom_opts_default(void); /* auto window, size 0, lenient */

typedef enum {
    FF_DICOM_SKIP_NOT_DICOM = 0, /* DCMTK cannot parse it */
    FF_DICOM_SKIP_DICOMDIR,      /* a DICOMDIR (index) file */
    FF_DICOM_SKIP_NO_PIXELS,     /* no pixel data (structured report, presentation state, ...) */
    FF_DICOM_SKIP_MODALITY,      /* modality not kept */
    FF_DICOM_SKIP_BODY_PART,     /* body part not kept */
    FF_DICOM_SKIP_VIEW,          /* view position not kept */
    FF_DICOM_SKIP_UNMAPPED,      /* no row of the mapping file */
    FF_DICOM_SKIP_NOT_GRAY,      /* colour or multi-sample */
    FF_DICOM_SKIP_MULTIFRAME,    /* more than one frame */
    FF_DICOM_SKIP_RENDER,        /* DCMTK could not decode or render the pixels */
    FF_DICOM_SKIP_LATER,         /* the patient already has an earlier image */
    FF_DICOM_SKIP_COUNT
} ff_dicom_skip;
const char *ff_dicom_skip_name(ff_dicom_skip r);

typedef struct {
    long files;                         /* regular files seen */
    long images;                        /* PNGs written (one per patient) */
    long map_rows;                      /* patients in the mapping file */
    long skipped[FF_DICOM_SKIP_COUNT];
    long window_stored, window_declared, window_none; /* how each written image was windowed */
} ff_dicom_report;

/* Writes out_dir/images/<patient_id>.png (8-bit gray) and out_dir/image_manifest.csv
 * (patient_id, image, modality, body_part, view_position, photometric, bits_stored,
 * transfer_syntax, rows, cols, window, out_rows, out_cols). Each patient keeps its earliest
 * image (study date and time, instance number, SOP instance UID). An out_dir that already
 * holds images/ or image_manifest.csv is refused (FF_ESTATE); patients.csv and the rest of a
 * site folder may already be there. */
int ff_ingest_dicom(const ff_dicom_opts *o, const char *out_dir,
                    ff_dicom_report *rep) FF_WARN_UNUSED;
void ff_dicom_report_print(const ff_dicom_report *r, FILE *out);

/* ---------------------------------------------------------------------------------------- */
/* FHIR R4 Bulk Data (NDJSON)                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    const char *in_dir;     /* TYPE.*.ndjson files (Patient.000.ndjson, ...) */
    const char *rules_path; /* YAML rules (docs/data.md); NULL = the defaults */
    int strict;             /* 1: the first malformed line is an error FILE:LINE: reason */
} ff_fhir_opts;
ff_fhir_opts ff_fhir_opts_default(void);

/* The resource types read, in reading order. */
typedef enum {
    FF_FHIR_PATIENT = 0, FF_FHIR_ENCOUNTER, FF_FHIR_CONDITION, FF_FHIR_MEDICATION,
    FF_FHIR_PROCEDURE, FF_FHIR_OBSERVATION, FF_FHIR_DOCUMENT, FF_FHIR_REPORT, FF_FHIR_TYPES
} ff_fhir_type;
const char *ff_fhir_type_name(ff_fhir_type t); /* "Patient", ..., "DiagnosticReport" */

typedef enum {
    FF_FHIR_SKIP_JSON = 0,     /* not a JSON object */
    FF_FHIR_SKIP_TYPE,         /* resourceType differs from the file's type */
    FF_FHIR_SKIP_NO_SUBJECT,   /* no id / no or unknown subject patient / repeated Patient id */
    FF_FHIR_SKIP_NO_TIME,      /* no parseable time (birthDate, period, onset, ...) */
    FF_FHIR_SKIP_NO_CODE,      /* no code (class, code, medicationCodeableConcept) */
    FF_FHIR_SKIP_NO_VISIT,     /* its patient has no index visit */
    FF_FHIR_SKIP_AFTER,        /* at or after every index visit of its patient (leakage rule) */
    FF_FHIR_SKIP_CATEGORY,     /* Observation category not kept */
    FF_FHIR_SKIP_ERROR,        /* status entered-in-error */
    FF_FHIR_SKIP_NOT_TEXT,     /* no text/plain base64 attachment, or bad base64 */
    FF_FHIR_SKIP_EMPTY_VISIT,  /* an index visit with no earlier event or note: not written */
    FF_FHIR_SKIP_COUNT
} ff_fhir_skip;
const char *ff_fhir_skip_name(ff_fhir_skip r);

typedef struct {
    long files, other_files;
    long patients, index_visits, visits; /* visits = patients.csv rows written */
    long split[3];                       /* train, val, test rows */
    long positives[FF_DATA_TASKS];       /* admission, icu, critical */
    long events, mapped, code_map_entries, notes;
    long lines[FF_FHIR_TYPES], used[FF_FHIR_TYPES];
    long skipped[FF_FHIR_TYPES][FF_FHIR_SKIP_COUNT];
} ff_fhir_report;

/* The rules used without --rules (YAML text). */
extern const char ff_fhir_default_rules[];

/* Parses a FHIR date, dateTime or instant to UTC seconds since 1970 (partial dates are the
 * start of their period; no zone = UTC). 0, or -1 when malformed. */
int ff_fhir_parse_time(const char *s, int64_t *out);

/* Writes out_dir/patients.csv (one row per index visit, patient_id = the Encounter id; age at
 * the visit, sex, a seeded split by patient, the three labels), events.csv (hours before the
 * visit > 0 only) and notes.csv (the latest note strictly before the visit). An out_dir
 * already holding patients.csv is refused (FF_ESTATE). */
int ff_ingest_fhir(const ff_fhir_opts *o, const char *out_dir, ff_fhir_report *rep) FF_WARN_UNUSED;
void ff_fhir_report_print(const ff_fhir_report *r, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
