/* Commands of the data library: `fedfuse synth`, `fedfuse data check` and
 * `fedfuse import mimic-iv-ed`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ff/client.h"
#include "ff/data.h"

static int cmd_synth(int argc, char **argv);
static int cmd_data(int argc, char **argv);
static int cmd_import(int argc, char **argv);

FF_CLI_GROUP_DEFINE(data,
    {"synth", "write a synthetic multi-hospital emergency-department cohort", cmd_synth,
     "usage: fedfuse synth [--sites N] [--patients M] [--seed S] [--image-size P]\n"
     "                     [--no-image-site K] [--config MODEL.yaml] [--quiet] --out DIR\n"
     "  Writes DIR/site-1 ... DIR/site-N in the site format (patients.csv, notes.csv,\n"
     "  events.csv, images/) plus site-k/oracle.csv with each patient's true risk.\n"
     "  --sites N          hospitals (default 4)\n"
     "  --patients M       patients per hospital on average (default 2000; sizes differ)\n"
     "  --seed S           everything is a function of the seed (default 1)\n"
     "  --image-size P     side of the written images (default 64, or the config's size)\n"
     "  --no-image-site K  hospital without images (default 3, or 0 with fewer than 3 sites;\n"
     "                     0 = every hospital has them)\n"
     "  --config FILE      take the image size from a model config\n"
     "  Memory stays bounded for any M: patients are streamed to disk.\n"},
    {"data", "validate a hospital's site directory (`fedfuse data check SITE_DIR`)", cmd_data,
     "usage: fedfuse data check SITE_DIR [--strict] [--config MODEL.yaml]\n"
     "  Loads the site as a client would and prints patients per split, label prevalence,\n"
     "  modality availability, note and event lengths, the share of notes and event\n"
     "  histories cut at the model's limits, everything skipped by reason, and every dropped\n"
     "  row or file as FILE:LINE: reason. Lenient by default: bad rows are skipped. A UTF-8\n"
     "  byte order mark is dropped; a ';' or tab delimiter is detected (and said); rows that\n"
     "  are not UTF-8 and images that are not PNG (.dcm, .jpg, ...) are reported as such.\n"
     "  --strict       stop at the first bad row or file, naming file and line\n"
     "  --config FILE  tokenize with a model config's dimensions (default fusion-base)\n"
     "  Exit 0 when usable; 2 on the first error in strict mode or when nothing usable\n"
     "  remains.\n"},
    {"import", "import real records (MIMIC-IV-ED, DICOM, FHIR, FLamby's benchmarks)", cmd_import,
     "usage: fedfuse import mimic-iv-ed --ed DIR --hosp DIR --icu DIR --out DIR\n"
     "                     [--sites N] [--seed S] [--lookback-days D] [--strict]\n"
     "  Reads the MIMIC-IV-ED ed/ tables and the MIMIC-IV hosp/ and icu/ tables (.csv.gz,\n"
     "  streamed; .csv also accepted) and writes one patient row per ED stay: the triage\n"
     "  note, labs, prior diagnoses and vitals strictly before ED arrival (the index time),\n"
     "  and the labels admission, ICU within 24 h of leaving the ED, critical (ICU or\n"
     "  in-hospital death). ATTRIBUTION.md and LICENSE.md (ODbL) go beside the data.\n"
     "  --sites N          split patients into DIR/site-1..N (seeded, balanced by stays;\n"
     "                     default: one site written to DIR itself)\n"
     "  --seed S           split and site assignment seed (default 1)\n"
     "  --lookback-days D  drop events older than D days before arrival (default: keep all)\n"
     "  --strict           stop at the first malformed record (default: skip and count)\n"
     "  See docs/data.md, \"Real data: MIMIC-IV-ED demo\".\n"
     "usage: fedfuse import dicom --in DIR --map FILE --out SITE_DIR [options]\n"
     "usage: fedfuse import fhir --in DIR [--rules FILE] --out SITE_DIR [options]\n"
     "  A PACS export to images/ and image_manifest.csv; a FHIR R4 Bulk Data export to\n"
     "  patients.csv, events.csv and notes.csv. 'fedfuse import dicom --help' and\n"
     "  'fedfuse import fhir --help' list their options (docs/data.md).\n"

     "usage: fedfuse import flamby --dataset heart-disease|tcga-brca --in DIR --out DIR\n"
     "  FLamby's preprocessing of Fed-Heart-Disease (DIR: the four UCI processed.*.data\n"
     "  files, in DIR/raw/ or DIR, and split.csv) or Fed-TCGA-BRCA (DIR: brca.csv and\n"
     "  train_test_split.csv) into OUT/center_K_{train,test}.csv and\n"
     "  OUT/pooled_{train,test}.csv, for `fedfuse benchmark flamby` (docs/benchmarks.md).\n"})

static int cmd_synth(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "synth", argc, argv);
    ff_synth_opts o = ff_synth_opts_default();
    const char *out = ff_cli_opt(&a, "--out");
    const char *cfg = ff_cli_opt(&a, "--config");
    int64_t sites, patients, seed, size, noimg;
    if (ff_cli_opt_i64(&a, "--sites", o.sites, &sites) != FF_OK ||
        ff_cli_opt_i64(&a, "--patients", o.patients, &patients) != FF_OK ||
        ff_cli_opt_i64(&a, "--seed", (int64_t)o.seed, &seed) != FF_OK ||
        ff_cli_opt_i64(&a, "--image-size", 0, &size) != FF_OK ||
        ff_cli_opt_i64(&a, "--no-image-site", -1, &noimg) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    o.quiet = ff_cli_flag(&a, "--quiet");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!out)
        return ff_cli_usage_error("synth", "missing --out DIR");
    if (sites < 1 || sites > 64)
        return ff_cli_usage_error("synth", "--sites must be in 1..64");
    if (patients < 1 || patients > 100000000)
        return ff_cli_usage_error("synth", "--patients must be in 1..100000000");
    if (seed < 0)
        return ff_cli_usage_error("synth", "--seed must be >= 0");
    if (noimg == -1) /* the default: hospital 3 when there is one, else every one has images */
        noimg = o.no_image_site <= sites ? o.no_image_site : 0;
    if (noimg < 0 || noimg > sites)
        return ff_cli_usage_error("synth", "--no-image-site must be in 0..%d", (int)sites);
    if (cfg) {
        ff_data_shape sh;
        if (ff_client_shape_load(cfg, &sh) != FF_OK)
            return ff_cli_fail(FF_ECONFIG);
        o.image_size = sh.H;
    }
    if (size) {
        if (size < 8 || size > 1024)
            return ff_cli_usage_error("synth", "--image-size must be in 8..1024");
        o.image_size = (int)size;
    }
    o.sites = sites == -1 ? 0 : (int)sites; /* 0: one site written to --out itself */
    o.patients = (long)patients;
    o.seed = (uint64_t)seed;
    o.no_image_site = (int)noimg;
    int rc = ff_synth_generate(&o, out);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("wrote %d sites to %s\n", o.sites, out);
    return FF_EXIT_OK;
}

/* Every dropped row, in order, for the summary (an in-memory stream). */
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
    long n;
} dropped_list;

static void on_dropped(void *ud, const char *where, long line, const char *reason)
{
    dropped_list *d = ud;
    if (!d->f)
        return;
    if (line > 0)
        fprintf(d->f, "  %s:%ld: %s\n", where, line, reason);
    else
        fprintf(d->f, "  %s: %s\n", where, reason);
    d->n++;
}

static void dropped_print(dropped_list *d)
{
    if (d->f && fclose(d->f) == 0 && d->n > 0)
        printf("dropped (%ld, each with file:line and reason):\n%s", d->n, d->buf);
    d->f = NULL;
    free(d->buf);
    d->buf = NULL;
}

static int cmd_data_check(ff_cli_args *a)
{
    const char *cfg = ff_cli_opt(a, "--config");
    int strict = ff_cli_flag(a, "--strict");
    const char *dir = ff_cli_pos(a, 0);
    if (!dir)
        return ff_cli_usage_error("data", "missing SITE_DIR");
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    ff_data_shape sh;
    ff_data_shape_base(&sh);
    if (cfg && ff_client_shape_load(cfg, &sh) != FF_OK)
        return ff_cli_fail(FF_ECONFIG);
    ff_site_opts o = ff_site_opts_default();
    o.strict = strict;
    dropped_list dl = {0};
    dl.f = open_memstream(&dl.buf, &dl.len);
    o.on_skip = on_dropped;
    o.skip_ud = &dl;
    ff_load_report rep;
    ff_site *site = NULL;
    double t0 = ff_now();
    int rc = ff_site_load(&site, dir, &sh, &o, &rep);
    if (rc != FF_OK) {
        if (!strict)
            ff_load_report_print(&rep, stdout);
        dropped_print(&dl);
        return ff_cli_fail(rc);
    }
    printf("site %s: usable (%s mode, loaded in %.2f s)\n", dir, strict ? "strict" : "lenient",
           ff_now() - t0);
    ff_load_report_print(&rep, stdout);
    dropped_print(&dl);
    ff_load_report_log(&rep, dir);
    ff_site_free(site);
    return FF_EXIT_OK;
}

static int cmd_data(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "data", argc, argv);
    const char *sub = ff_cli_pos(&a, 0);
    if (!sub)
        return ff_cli_usage_error("data", "missing subcommand (check)");
    if (strcmp(sub, "check") == 0)
        return cmd_data_check(&a);
    return ff_cli_usage_error("data", "unknown subcommand '%s'", sub);
}

static int import_flamby(ff_cli_args *a)
{
    const char *dataset = ff_cli_opt(a, "--dataset");
    const char *in = ff_cli_opt(a, "--in");
    const char *out = ff_cli_opt(a, "--out");
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!dataset || !in || !out)
        return ff_cli_usage_error("import", "flamby needs --dataset, --in and --out");
    if (strcmp(dataset, "heart-disease") != 0 && strcmp(dataset, "tcga-brca") != 0)
        return ff_cli_usage_error("import", "--dataset must be heart-disease or tcga-brca, not '%s'",
                                  dataset);
    ff_flamby_data d;
    int rc = ff_flamby_import(dataset, in, out, &d);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("%s: %d centres, %d features\n", dataset, d.ncenters, d.nfeatures);
    for (int k = 0; k < d.ncenters; k++)
        printf("  centre %d: %d train, %d test\n", k, d.train[k].n, d.test[k].n);
    printf("wrote %s\n", out);
    ff_flamby_data_free(&d);
    return FF_EXIT_OK;
}

static int cmd_import(int argc, char **argv)
{
#ifdef FF_HAVE_INGEST
    if (argc > 1 && strcmp(argv[1], "dicom") == 0)
        return ff_cli_import_dicom(argc, argv);
    if (argc > 1 && strcmp(argv[1], "fhir") == 0)
        return ff_cli_import_fhir(argc, argv);
#endif
    ff_cli_args a;
    ff_cli_args_init(&a, "import", argc, argv);
    if (argc > 1 && strcmp(argv[1], "flamby") == 0) {
        a.used[1] = 1;
        return import_flamby(&a);
    }
    ff_mimic_opts o = ff_mimic_opts_default();
    int64_t sites, seed;
    double lookback;
    o.ed_dir = ff_cli_opt(&a, "--ed");
    o.hosp_dir = ff_cli_opt(&a, "--hosp");
    o.icu_dir = ff_cli_opt(&a, "--icu");
    const char *out = ff_cli_opt(&a, "--out");
    if (ff_cli_opt_i64(&a, "--sites", -1, &sites) != FF_OK ||
        ff_cli_opt_i64(&a, "--seed", 1, &seed) != FF_OK ||
        ff_cli_opt_f64(&a, "--lookback-days", 0, &lookback) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    o.strict = ff_cli_flag(&a, "--strict");
    const char *source = ff_cli_pos(&a, 0);
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!source || strcmp(source, "mimic-iv-ed") != 0)
        return ff_cli_usage_error("import", "the source must be 'mimic-iv-ed', 'dicom', 'fhir' or 'flamby'");
    if (!o.ed_dir || !o.hosp_dir || !o.icu_dir || !out)
        return ff_cli_usage_error("import", "--ed, --hosp, --icu and --out are required");
    if (sites != -1 && (sites < 1 || sites > FF_MIMIC_MAX_SITES))
        return ff_cli_usage_error("import", "--sites must be in 1..%d", FF_MIMIC_MAX_SITES);
    if (seed < 0)
        return ff_cli_usage_error("import", "--seed must be >= 0");
    if (!(lookback >= 0))
        return ff_cli_usage_error("import", "--lookback-days must be >= 0");
    o.sites = sites == -1 ? 0 : (int)sites; /* 0: one site written to --out itself */
    o.seed = (uint64_t)seed;
    o.lookback_days = lookback;
    ff_mimic_report rep;
    int rc = ff_mimic_import(&o, out, &rep);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    ff_mimic_report_print(&rep, stdout);
    printf("wrote %s (%d site%s) with ATTRIBUTION.md (ODbL)\n", out, rep.sites,
           rep.sites == 1 ? "" : "s");
    return FF_EXIT_OK;
}
