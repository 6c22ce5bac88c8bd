/* The C face of the DCMTK shim (dicom_shim.cc, the one C++ file of fedfuse): open a DICOM
 * file, read the few header values the importer needs, render the first frame through
 * DCMTK's own display pipeline (modality LUT = rescale slope/intercept, VOI window,
 * MONOCHROME1 inversion) to 8 bits. Nothing here logs or keeps header values: the identifying
 * ones (patient id, accession number, study date) go to the caller for the mapping only. */
#ifndef FF_INGEST_DICOM_SHIM_H
#define FF_INGEST_DICOM_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ff_dcm ff_dcm;

/* Header values, NUL-terminated, cut to their buffers. */
typedef struct {
    char sop_class[68];
    char modality[20];
    char body_part[68];
    char view_position[20];
    char photometric[20];
    char transfer_syntax[68];
    char patient_id[68];  /* identifying: mapping only */
    char accession[20];   /* identifying: mapping only */
    char order_key[160];  /* StudyDate StudyTime InstanceNumber SOPInstanceUID: ordering only */
    int rows, cols, bits_stored, samples, frames;
    int windows;          /* stored VOI windows */
} ff_dcm_info;

enum { FF_DCM_OK = 0, FF_DCM_NOT_DICOM = 1, FF_DCM_NO_PIXELS = 2, FF_DCM_RENDER = 3 };

/* Registers DCMTK's decoders (JPEG, JPEG-LS, RLE) once and silences its logger. */
void ff_dcm_global_init(void);
/* Opens path (pixel data stays on disk until rendered). FF_DCM_NOT_DICOM when DCMTK cannot
 * parse it. msg receives DCMTK's reason (no header values). */
int ff_dcm_open(const char *path, ff_dcm **out, ff_dcm_info *info, char *msg, int msgcap);
/* Renders frame 0 to 8-bit, rows*cols bytes into dst (cap bytes). window: 0 none (DCMTK's default,
 * the full range of the modality values), 1 the first stored window, 2 (center, width). */
int ff_dcm_render(ff_dcm *d, int window, double center, double width, uint8_t *dst,
                  size_t cap, char *msg, int msgcap);
void ff_dcm_close(ff_dcm *d);

#ifdef __cplusplus
}
#endif
#endif
