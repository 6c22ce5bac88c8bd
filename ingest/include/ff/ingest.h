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

#ifdef __cplusplus
}
#endif
#endif
