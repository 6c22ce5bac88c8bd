/* `fedfuse import dicom` and `fedfuse import fhir` (ff_ingest), reached through the import
 * command of cmd_data.c. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ff/client.h"
#include "ff/ingest.h"

static const char dicom_usage[] =
    "usage: fedfuse import dicom --in DIR --map FILE --out SITE_DIR\n"
    "                     [--modality M]... [--body-part B]... [--view V]...\n"
    "                     [--window stored|none|CENTER,WIDTH] [--size N | --config MODEL.yaml]\n"
    "                     [--strict] [--quiet]\n"
    "  Walks DIR (any nesting) for DICOM files and writes SITE_DIR/images/<patient_id>.png\n"
    "  (8-bit gray, rendered by DCMTK: rescale slope/intercept, window, MONOCHROME1\n"
    "  inversion) and SITE_DIR/image_manifest.csv. No identifying header value is written.\n"
    "  --map FILE      CSV the hospital controls: patient_id,dicom_patient_id or\n"
    "                  patient_id,accession_number (each patient keeps its earliest image)\n"
    "  --modality M    keep only these modalities (repeatable, e.g. DX, CR; default any)\n"
    "  --body-part B   keep only these body parts (repeatable, e.g. CHEST; default any)\n"
    "  --view V        keep only these view positions (repeatable, e.g. PA, AP; default any)\n"
    "  --window W      'stored' (default: the file's first window, else none), 'none'\n"
    "                  (the full range of the modality values), or CENTER,WIDTH\n"
    "  --size N        letterbox into N x N keeping the aspect ratio (area averaging);\n"
    "                  --config takes N from a model config's image.size; default native\n"
    "  --strict        stop at the first unreadable, unmapped or undecodable file\n";

static int split_window(const char *s, double *c, double *w)
{
    char *end;
    *c = strtod(s, &end);
    if (end == s || *end != ',')
        return -1;
    const char *p = end + 1;
    *w = strtod(p, &end);
    return end == p || *end ? -1 : 0;
}

int ff_cli_import_dicom(int argc, char **argv)
{
    if (ff_cli_wants_help(argc, argv)) {
        fputs(dicom_usage, stdout);
        return FF_EXIT_OK;
    }
    ff_cli_args a;
    ff_cli_args_init(&a, "import", argc - 1, argv + 1);
    ff_dicom_opts o = ff_dicom_opts_default();
    o.in_dir = ff_cli_opt(&a, "--in");
    o.map_path = ff_cli_opt(&a, "--map");
    const char *out = ff_cli_opt(&a, "--out");
    const char *win = ff_cli_opt(&a, "--window");
    const char *cfg = ff_cli_opt(&a, "--config");
    o.nmodality = ff_cli_opt_all(&a, "--modality", o.modality, FF_DICOM_MAX_KEEP);
    o.nbody_part = ff_cli_opt_all(&a, "--body-part", o.body_part, FF_DICOM_MAX_KEEP);
    o.nview = ff_cli_opt_all(&a, "--view", o.view, FF_DICOM_MAX_KEEP);
    int64_t size;
    if (ff_cli_opt_i64(&a, "--size", 0, &size) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    o.strict = ff_cli_flag(&a, "--strict");
    o.quiet = ff_cli_flag(&a, "--quiet");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!o.in_dir || !o.map_path || !out)
        return ff_cli_usage_error("import", "--in, --map and --out are required");
    if (size < 0 || size > 4096)
        return ff_cli_usage_error("import", "--size must be in 0..4096");
    if (cfg && size)
        return ff_cli_usage_error("import", "give --size or --config, not both");
    o.size = (int)size;
    if (cfg) {
        ff_data_shape shape;
        int rc = ff_client_shape_load(cfg, &shape);
        if (rc != FF_OK)
            return ff_cli_fail(rc);
        o.size = shape.H > shape.W ? shape.H : shape.W;
    }
    if (win && strcmp(win, "stored") == 0)
        o.window = FF_DICOM_WINDOW_AUTO;
    else if (win && strcmp(win, "none") == 0)
        o.window = FF_DICOM_WINDOW_NONE;
    else if (win) {
        if (split_window(win, &o.center, &o.width) != 0 || !(o.width >= 1))
            return ff_cli_usage_error("import",
                                      "--window must be stored, none or CENTER,WIDTH (width >= 1)");
        o.window = FF_DICOM_WINDOW_DECLARED;
    }
    ff_dicom_report rep;
    int rc = ff_ingest_dicom(&o, out, &rep);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    ff_dicom_report_print(&rep, stdout);
    printf("wrote %s/images and %s/image_manifest.csv\n", out, out);
    return FF_EXIT_OK;
}

static const char fhir_usage[] =
    "usage: fedfuse import fhir --in DIR [--rules FILE] --out SITE_DIR [--strict]\n"
    "  Reads a FHIR R4 Bulk Data export (TYPE.*.ndjson, one line at a time) and writes one\n"
    "  patients.csv row per index visit (default: each emergency Encounter, class EMER),\n"
    "  events.csv (Observation vital signs and labs, Condition, MedicationRequest, Procedure\n"
    "  strictly before the visit) and notes.csv (the latest DocumentReference or\n"
    "  DiagnosticReport text before the visit), labels from the rules, and a summary of every\n"
    "  skipped resource by reason.\n"
    "  --rules FILE  YAML: index classes, Observation categories, split seed, label rules and\n"
    "                extra code mappings (configs/fhir-rules.yaml states the defaults)\n"
    "  --strict      stop at the first malformed line (FILE:LINE: reason)\n";

int ff_cli_import_fhir(int argc, char **argv)
{
    if (ff_cli_wants_help(argc, argv)) {
        fputs(fhir_usage, stdout);
        return FF_EXIT_OK;
    }
    ff_cli_args a;
    ff_cli_args_init(&a, "import", argc - 1, argv + 1);
    ff_fhir_opts o = ff_fhir_opts_default();
    o.in_dir = ff_cli_opt(&a, "--in");
    o.rules_path = ff_cli_opt(&a, "--rules");
    const char *out = ff_cli_opt(&a, "--out");
    o.strict = ff_cli_flag(&a, "--strict");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!o.in_dir || !out)
        return ff_cli_usage_error("import", "--in and --out are required");
    ff_fhir_report rep;
    int rc = ff_ingest_fhir(&o, out, &rep);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    ff_fhir_report_print(&rep, stdout);
    printf("wrote %s/patients.csv, events.csv and notes.csv\n", out);
    return FF_EXIT_OK;
}
