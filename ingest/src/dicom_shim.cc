/* The DCMTK shim: the only C++ in fedfuse. Every entry point catches everything: no C++
 * exception crosses into C. See dicom_shim.h. */
#include "dicom_shim.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmimgle/dcmimage.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

struct ff_dcm {
    DcmFileFormat file;
};

static void put(char *dst, size_t cap, const OFString &s)
{
    size_t n = s.length() < cap - 1 ? s.length() : cap - 1;
    memcpy(dst, s.c_str(), n);
    dst[n] = 0;
}

static void get_str(DcmItem *ds, const DcmTagKey &tag, char *dst, size_t cap)
{
    OFString s;
    dst[0] = 0;
    if (ds->findAndGetOFString(tag, s).good())
        put(dst, cap, s);
}

static int get_int(DcmItem *ds, const DcmTagKey &tag, int dflt)
{
    long v = 0;
    if (ds->findAndGetLongInt(tag, v).good() && v >= 0 && v < 1000000000L)
        return (int)v;
    return dflt;
}

extern "C" void ff_dcm_global_init(void)
{
    static int done = 0;
    if (done)
        return;
    done = 1;
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
}

extern "C" int ff_dcm_open(const char *path, ff_dcm **out, ff_dcm_info *info, char *msg,
                           int msgcap)
{
    *out = NULL;
    memset(info, 0, sizeof *info);
    msg[0] = 0;
    try {
        ff_dcm *d = new ff_dcm;
        OFCondition st = d->file.loadFile(path);
        if (st.bad()) {
            snprintf(msg, (size_t)msgcap, "%s", st.text());
            delete d;
            return FF_DCM_NOT_DICOM;
        }
        DcmDataset *ds = d->file.getDataset();
        DcmMetaInfo *meta = d->file.getMetaInfo();
        get_str(ds, DCM_SOPClassUID, info->sop_class, sizeof info->sop_class);
        if (!info->sop_class[0] && meta)
            get_str(meta, DCM_MediaStorageSOPClassUID, info->sop_class, sizeof info->sop_class);
        get_str(ds, DCM_Modality, info->modality, sizeof info->modality);
        get_str(ds, DCM_BodyPartExamined, info->body_part, sizeof info->body_part);
        get_str(ds, DCM_ViewPosition, info->view_position, sizeof info->view_position);
        get_str(ds, DCM_PhotometricInterpretation, info->photometric, sizeof info->photometric);
        get_str(ds, DCM_PatientID, info->patient_id, sizeof info->patient_id);
        get_str(ds, DCM_AccessionNumber, info->accession, sizeof info->accession);
        DcmXfer xfer(ds->getOriginalXfer());
        put(info->transfer_syntax, sizeof info->transfer_syntax, xfer.getXferID());
        OFString date, time, inst, uid;
        ds->findAndGetOFString(DCM_StudyDate, date);
        ds->findAndGetOFString(DCM_StudyTime, time);
        ds->findAndGetOFString(DCM_InstanceNumber, inst);
        ds->findAndGetOFString(DCM_SOPInstanceUID, uid);
        char key[160];
        snprintf(key, sizeof key, "%-8.8s %-13.13s %012ld %s", date.c_str(), time.c_str(),
                 atol(inst.c_str()), uid.c_str());
        memcpy(info->order_key, key, sizeof key);
        info->rows = get_int(ds, DCM_Rows, 0);
        info->cols = get_int(ds, DCM_Columns, 0);
        info->bits_stored = get_int(ds, DCM_BitsStored, 0);
        info->samples = get_int(ds, DCM_SamplesPerPixel, 1);
        info->frames = get_int(ds, DCM_NumberOfFrames, 1);
        DcmElement *wc = NULL;
        info->windows = ds->findAndGetElement(DCM_WindowCenter, wc).good() && wc
                            ? (int)wc->getVM() : 0;
        *out = d;
        if (!ds->tagExists(DCM_PixelData) || info->rows <= 0 || info->cols <= 0)
            return FF_DCM_NO_PIXELS;
        return FF_DCM_OK;
    } catch (...) {
        snprintf(msg, (size_t)msgcap, "DCMTK failed to read the file");
        return FF_DCM_NOT_DICOM;
    }
}

extern "C" int ff_dcm_render(ff_dcm *d, int window, double center, double width, uint8_t *dst,
                             size_t cap, char *msg, int msgcap)
{
    msg[0] = 0;
    try {
        DcmDataset *ds = d->file.getDataset();
        DicomImage img(ds, ds->getOriginalXfer(), 0UL, 0UL, 1UL);
        if (img.getStatus() != EIS_Normal) {
            snprintf(msg, (size_t)msgcap, "%s", DicomImage::getString(img.getStatus()));
            return FF_DCM_RENDER;
        }
        if (!img.isMonochrome()) {
            snprintf(msg, (size_t)msgcap, "not a grayscale image");
            return FF_DCM_RENDER;
        }
        int ok = 1;
        if (window == 1)
            ok = img.setWindow(0);
        else if (window == 2)
            ok = img.setWindow(center, width);
        if (!ok) {
            snprintf(msg, (size_t)msgcap, "window not applicable");
            return FF_DCM_RENDER;
        }
        unsigned long n = img.getOutputDataSize(8);
        if (n > cap || n != (unsigned long)img.getWidth() * img.getHeight() ||
            img.getOutputData(dst, n, 8, 0) == 0) {
            snprintf(msg, (size_t)msgcap, "rendering failed");
            return FF_DCM_RENDER;
        }
        return FF_DCM_OK;
    } catch (...) {
        snprintf(msg, (size_t)msgcap, "DCMTK failed to render the image");
        return FF_DCM_RENDER;
    }
}

extern "C" void ff_dcm_close(ff_dcm *d)
{
    delete d;
}
