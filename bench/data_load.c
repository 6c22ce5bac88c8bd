/* bench_data_load [COHORT_DIR]: times loading every site of a cohort with the fusion-base
 * input shape (CSV parsing, tokenizing, value bins, PNG decode + area resize), against a
 * peer measured in the same run: reading every byte of the same files. Without COHORT_DIR it
 * first generates the default cohort (4 hospitals, ~8,000 patients) in a temp folder.
 * Then assembles every training batch (B = 32, default augmentation) once. Ends with
 * machine-readable `key value` lines. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ff/data.h"

static size_t read_tree(const char *dir)
{
    size_t total = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    char path[4096], buf[1 << 16];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t n, got = 0;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            got += n;
        fclose(f);
        if (got == 0 && strcmp(e->d_name, "images") == 0)
            total += read_tree(path); /* a directory reads as 0 bytes */
        total += got;
    }
    closedir(d);
    return total;
}

int main(int argc, char **argv)
{
    char tmp[] = "/tmp/ffbench.XXXXXX";
    const char *cohort = argc > 1 ? argv[1] : NULL;
    double t_synth = 0;
    if (!cohort) {
        if (!mkdtemp(tmp))
            return 1;
        static char dir[64];
        snprintf(dir, sizeof dir, "%s/cohort", tmp);
        ff_synth_opts o = ff_synth_opts_default();
        o.quiet = 1;
        double t0 = ff_now();
        if (ff_synth_generate(&o, dir) != FF_OK) {
            fprintf(stderr, "synth: %s\n", ff_error_message());
            return 1;
        }
        t_synth = ff_now() - t0;
        cohort = dir;
    }
    char site_dir[4096];
    int nsites = 0;
    for (;; nsites++) {
        snprintf(site_dir, sizeof site_dir, "%s/site-%d", cohort, nsites + 1);
        if (!ff_path_exists(site_dir))
            break;
    }
    double t0 = ff_now();
    size_t bytes = 0;
    for (int k = 0; k < nsites; k++) {
        snprintf(site_dir, sizeof site_dir, "%s/site-%d", cohort, k + 1);
        bytes += read_tree(site_dir);
    }
    double t_read = ff_now() - t0;

    ff_data_shape sh;
    ff_data_shape_base(&sh);
    ff_site *sites[64] = {0};
    long patients = 0;
    t0 = ff_now();
    for (int k = 0; k < nsites && k < 64; k++) {
        snprintf(site_dir, sizeof site_dir, "%s/site-%d", cohort, k + 1);
        ff_site_opts o = ff_site_opts_default();
        ff_load_report rep;
        if (ff_site_load(&sites[k], site_dir, &sh, &o, &rep) != FF_OK) {
            fprintf(stderr, "load: %s\n", ff_error_message());
            return 1;
        }
        patients += rep.patients[0] + rep.patients[1] + rep.patients[2];
    }
    double t_load = ff_now() - t0;

    ff_batch b;
    if (ff_site_batch_alloc(&b, 32, &sh) != FF_OK)
        return 1;
    ff_aug aug = ff_aug_default();
    ff_rng rng;
    ff_rng_init(&rng, 1, 1);
    long batches = 0;
    t0 = ff_now();
    for (int k = 0; k < nsites && k < 64; k++) {
        size_t n = ff_site_count(sites[k], FF_SPLIT_TRAIN);
        uint32_t *order = malloc(n * sizeof *order + 1);
        ff_site_shuffle(sites[k], FF_SPLIT_TRAIN, 1, 0, order);
        for (size_t i = 0; i + 32 <= n; i += 32, batches++)
            if (ff_site_batch(sites[k], FF_SPLIT_TRAIN, order + i, 32, &aug, &rng, &b) != FF_OK)
                return 1;
        free(order);
    }
    double t_batch = ff_now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;

    printf("cohort %s: %d sites, %ld patients, %.1f MB on disk%s\n", cohort, nsites, patients,
           (double)bytes / 1e6, t_synth > 0 ? " (generated)" : "");
    if (t_synth > 0)
        printf("synth:  %.2f s (%.0f patients/s)\n", t_synth, patients / t_synth);
    printf("read:   %.3f s (peer: every byte of every file)\n", t_read);
    printf("load:   %.3f s (fusion-base shape, all sites kept in memory)\n", t_load);
    printf("ratio load/read: %.1f\n", t_load / (t_read > 1e-9 ? t_read : 1e-9));
    printf("batches: %ld of 32 with augmentation in %.3f s (%.0f batches/s)\n", batches, t_batch,
           batches / (t_batch > 1e-9 ? t_batch : 1e-9));
    printf("peak RSS: %.1f MB\n", rss_mb);
    printf("data_load_patients %ld\n", patients);
    printf("data_load_seconds %.3f\n", t_load);
    printf("data_read_seconds %.3f\n", t_read);
    printf("data_load_vs_read_ratio %.2f\n", t_load / (t_read > 1e-9 ? t_read : 1e-9));
    printf("data_batches_per_second %.1f\n", batches / (t_batch > 1e-9 ? t_batch : 1e-9));
    printf("data_peak_rss_mb %.1f\n", rss_mb);
    ff_batch_free(&b);
    for (int k = 0; k < nsites && k < 64; k++)
        ff_site_free(sites[k]);
    if (t_synth > 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp);
    }
    return 0;
}
