/* Progress display: a live bar on a terminal, periodic plain lines in logs and pipes. */
#include "ff/common.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define FF_PROGRESS_PLAIN_PERIOD 5.0

double ff_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double ff_wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ff_progress_start(ff_progress *p, FILE *out, const char *label, uint64_t total)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = out && isatty(fileno(out));
    p->label = label;
    p->total = total;
    p->t_start = ff_now();
    p->t_last = -1e9;
}

static void fmt_eta(char *buf, size_t n, double s)
{
    if (s < 0 || s > 1e7)
        snprintf(buf, n, "--");
    else if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

static void render(ff_progress *p, double now, int final)
{
    double el = now - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0;
    double frac = p->total ? (double)p->done / (double)p->total : 0;
    char eta[32];
    fmt_eta(eta, sizeof eta, rate > 0 && p->total ? (double)(p->total - p->done) / rate : -1);
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(p->out, "\r\033[K%s [%s] %llu/%llu %.1f/s ETA %s %s%s", p->label, bar,
                (unsigned long long)p->done, (unsigned long long)p->total, rate, eta, p->extra,
                final ? "\n" : "");
    } else {
        fprintf(p->out, "%s: %llu/%llu (%.0f%%) %.1f/s ETA %s %s\n", p->label,
                (unsigned long long)p->done, (unsigned long long)p->total, 100 * frac, rate, eta,
                p->extra);
    }
    fflush(p->out);
}

void ff_progress_update(ff_progress *p, uint64_t done, const char *extra)
{
    if (!p->out)
        return;
    p->done = done;
    if (extra)
        ff_strlcpy(p->extra, extra, sizeof p->extra);
    double now = ff_now();
    double period = p->tty ? 0.1 : FF_PROGRESS_PLAIN_PERIOD;
    if (now - p->t_last < period)
        return;
    p->t_last = now;
    render(p, now, 0);
}

void ff_progress_finish(ff_progress *p)
{
    if (!p->out)
        return;
    render(p, ff_now(), 1);
}
