/* RDP of the Poisson-sampled Gaussian mechanism (Mironov, Talwar, Zhang 2019), composition
 * and conversion to (ε, δ), following dp_accounting / TF Privacy / Opacus term by term but
 * in long double, so integer orders agree with them to ~1e-14 and fractional orders to the
 * truncation of their series (terms below e^-30 of the total). */
#include "ff/privacy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "privacy_internal.h"

/* ------------------------------------------------------------------ orders */

static size_t orders_tenths(double *out)
{
    size_t n = 0;
    for (int x = 1; x < 100; x++)
        out[n++] = 1.0 + x / 10.0; /* bit-identical to Python's 1 + x / 10.0 */
    return n;
}

size_t ff_privacy_orders_dp_accounting(double *out)
{
    size_t n = orders_tenths(out);
    for (int a = 11; a < 64; a++)
        out[n++] = a;
    for (int a = 128; a <= 1024; a *= 2)
        out[n++] = a;
    return n;
}

size_t ff_privacy_orders_opacus(double *out)
{
    size_t n = orders_tenths(out);
    for (int a = 12; a < 64; a++)
        out[n++] = a;
    return n;
}

size_t ff_privacy_orders_tf_privacy(double *out)
{
    static const double head[] = {1.25, 1.5, 1.75, 2., 2.25, 2.5, 3., 3.5, 4., 4.5};
    size_t n = 0;
    for (size_t i = 0; i < FF_ARRAY_LEN(head); i++)
        out[n++] = head[i];
    for (int a = 5; a < 64; a++)
        out[n++] = a;
    for (int a = 128; a <= 512; a *= 2)
        out[n++] = a;
    return n;
}

int ff_privacy_orders_parse(const char *spec, double *out, size_t *n)
{
    if (!spec || !*spec)
        return ff_error(FF_EINVAL, "orders: empty");
    if (!strcmp(spec, "default") || !strcmp(spec, "dp_accounting")) {
        *n = ff_privacy_orders_dp_accounting(out);
        return FF_OK;
    }
    if (!strcmp(spec, "opacus")) {
        *n = ff_privacy_orders_opacus(out);
        return FF_OK;
    }
    if (!strcmp(spec, "tf_privacy")) {
        *n = ff_privacy_orders_tf_privacy(out);
        return FF_OK;
    }
    size_t k = 0;
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char buf[64];
        if (len == 0 || len >= sizeof buf)
            return ff_error(FF_EINVAL, "orders: bad item at '%s'", p);
        memcpy(buf, p, len);
        buf[len] = 0;
        double a;
        if (ff_parse_f64(buf, &a) != FF_OK || !isfinite(a) || a <= 1.0)
            return ff_error(FF_EINVAL, "orders: '%s' is not a number > 1", buf);
        if (k == FF_PRIVACY_MAX_ORDERS)
            return ff_error(FF_ERANGE, "orders: more than %d", FF_PRIVACY_MAX_ORDERS);
        out[k++] = a;
        p += len;
        if (*p == ',')
            p++;
    }
    *n = k;
    return FF_OK;
}

/* ------------------------------------------------------------------ log-space helpers */

long double ffp_log_add(long double a, long double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    long double hi = a > b ? a : b, lo = a > b ? b : a;
    return hi + log1pl(expl(lo - hi));
}

/* A signed number s·e^m, so the alternating fractional series can be summed in log space
 * without the "result must be non-negative" failure of a plain log-subtract. */
typedef struct {
    int s;
    long double m;
} slog;

static slog slog_add(slog a, slog b)
{
    if (b.s == 0)
        return a;
    if (a.s == 0)
        return b;
    if (a.s == b.s)
        return (slog){a.s, ffp_log_add(a.m, b.m)};
    if (a.m == b.m)
        return (slog){0, -INFINITY};
    slog big = a.m > b.m ? a : b, small = a.m > b.m ? b : a;
    return (slog){big.s, big.m + log1pl(-expl(small.m - big.m))};
}

/* log erfc(x), accurate in relative terms far into the tail (where erfc underflows even in
 * long double, the asymptotic series erfc x ~ e^{-x²}/(x√π) Σ (−1)^k (2k−1)!!/(2x²)^k). */
static long double log_erfc(long double x)
{
    if (x < 50.0L)
        return logl(erfcl(x));
    long double u = 1.0L / (2.0L * x * x), term = 1.0L, sum = 1.0L;
    for (int k = 1; k < 12; k++) {
        term *= -(2.0L * k - 1.0L) * u;
        sum += term;
    }
    return -x * x - logl(x) - 0.5L * logl((long double)M_PI) + logl(sum);
}

static long double log_comb(long double n, long double k)
{
    return lgammal(n + 1.0L) - lgammal(k + 1.0L) - lgammal(n - k + 1.0L);
}

/* ------------------------------------------------------------------ A_α */

/* Integer α: A_α = Σ_i C(α,i) q^i (1−q)^{α−i} exp((i²−i)/(2σ²)) (MTZ19 Sec. 3.3). The
 * libraries sum this as is; since the binomial weights sum to 1 and the i = 0, 1 exponents are
 * 0, we sum the equal, cancellation-free A_α − 1 = Σ_{i≥2} C(α,i) q^i (1−q)^{α−i}
 * expm1((i²−i)/(2σ²)) instead (log-sum-exp), which keeps full relative precision when A_α is
 * within 1e-8 of 1 (large σ). */
static long double log_expm1(long double x) /* log(e^x − 1), x > 0 */
{
    return x > 1.0L ? x + log1pl(-expl(-x)) : logl(expm1l(x));
}

static long double log_a_int_term(long double q_log, long double l1q, long double two_s2,
                                  int64_t alpha, int64_t i)
{
    long double li = (long double)i;
    return log_comb((long double)alpha, li) + li * q_log + ((long double)alpha - li) * l1q +
           log_expm1((li * li - li) / two_s2);
}

static long double log_a_int(long double q, long double sigma, int64_t alpha)
{
    long double lq = logl(q), l1q = log1pl(-q), two_s2 = 2.0L * sigma * sigma;
    /* One-pass log-sum-exp: s = Σ exp(t − mx), rescaled whenever the maximum moves. */
    long double mx = -INFINITY, s = 0.0L;
    for (int64_t i = 2; i <= alpha; i++) {
        long double t = log_a_int_term(lq, l1q, two_s2, alpha, i);
        if (t == -INFINITY)
            continue; /* a zero term; also keeps exp(−inf − (−inf)) out */
        if (t > mx) {
            s = s * expl(mx - t) + 1.0L;
            mx = t;
        } else {
            s += expl(t - mx);
        }
    }
    if (mx == -INFINITY)
        return 0.0L;
    long double log_am1 = mx + logl(s); /* log(A_α − 1) */
    return log_am1 > 0.0L ? log_am1 + log1pl(expl(-log_am1)) : log1pl(expl(log_am1));
}

/* dp_accounting gives up after 1000 terms (the order is then +inf, i.e. unused); TF Privacy
 * and Opacus loop until the terms are small. The signed series alternates in its tail, so
 * the error is below the first omitted term; we allow it 100000 terms. */
#define FRAC_MAX_TERMS_DP_ACCOUNTING 1000
#define FRAC_MAX_TERMS_SIGNED 100000

/* Fractional α: A_α split at z0 = σ² log(1/q − 1) + 1/2 into two series with erfc tails
 * (MTZ19 Sec. 3.3). Stops, as dp_accounting does, once both terms decrease and are below
 * e^-30 of the running total. Near q·e^{…} balance the terms decay only polynomially
 * (like i^-(α+2)), which is when the term caps matter. */
static long double log_a_frac(long double q, long double sigma, long double alpha,
                              ff_privacy_series series)
{
    slog a0 = {0, -INFINITY}, a1 = {0, -INFINITY};
    long double z0 = sigma * sigma * logl(1.0L / q - 1.0L) + 0.5L;
    long double lq = logl(q), l1q = log1pl(-q), two_s2 = 2.0L * sigma * sigma;
    long double rt2s = sqrtl(2.0L) * sigma, lhalf = logl(0.5L);
    long double last0 = -INFINITY, last1 = -INFINITY;
    int sign = 1; /* sign of binom(α, i), flips each time (α − i + 1) < 0 */
    int max_terms = series == FF_PRIVACY_SERIES_TF_PRIVACY ? FRAC_MAX_TERMS_SIGNED
                                                            : FRAC_MAX_TERMS_DP_ACCOUNTING;
    for (int i = 0; i < max_terms; i++) {
        long double li = (long double)i;
        if (i > 0 && alpha - li + 1.0L < 0.0L)
            sign = -sign;
        long double lc = log_comb(alpha, li), j = alpha - li;
        long double lt0 = lc + li * lq + j * l1q;
        long double lt1 = lc + j * lq + li * l1q;
        long double le0 = lhalf + log_erfc((li - z0) / rt2s);
        long double le1 = lhalf + log_erfc((z0 - j) / rt2s);
        long double ls0 = lt0 + (li * li - li) / two_s2 + le0;
        long double ls1 = lt1 + (j * j - j) / two_s2 + le1;
        int s = series == FF_PRIVACY_SERIES_TF_PRIVACY ? sign : 1;
        a0 = slog_add(a0, (slog){s, ls0});
        a1 = slog_add(a1, (slog){s, ls1});
        slog tot = slog_add(a0, a1);
        if (ls0 < last0 && ls1 < last1 && fmaxl(ls0, ls1) < tot.m - 30.0L)
            return tot.s > 0 ? tot.m : INFINITY;
        last0 = ls0;
        last1 = ls1;
    }
    return INFINITY;
}

int ff_privacy_rdp_sgm(double q, double sigma, double alpha, ff_privacy_series series,
                       double *rdp)
{
    if (!(q >= 0.0 && q <= 1.0))
        return ff_error(FF_ERANGE, "q: %g is outside [0, 1]", q);
    if (!(sigma >= 0.0) || isinf(sigma))
        return ff_error(FF_ERANGE, "sigma: %g must be finite and >= 0", sigma);
    if (!(alpha > 1.0))
        return ff_error(FF_ERANGE, "order: %g must be > 1", alpha);
    if (q == 0.0) {
        *rdp = 0.0;
        return FF_OK;
    }
    if (sigma == 0.0 || isinf(alpha)) {
        *rdp = INFINITY;
        return FF_OK;
    }
    if (q == 1.0) {
        *rdp = alpha / (2.0 * sigma * sigma);
        return FF_OK;
    }
    long double la;
    if (floor(alpha) == alpha && alpha <= 1e6)
        la = log_a_int(q, sigma, (int64_t)alpha);
    else
        la = log_a_frac(q, sigma, alpha, series);
    *rdp = (double)(la / ((long double)alpha - 1.0L));
    return FF_OK;
}

/* ------------------------------------------------------------------ accountant */

int ff_privacy_accountant_init(ff_privacy_accountant *acc, const double *orders, size_t n,
                               ff_privacy_series series)
{
    if (n == 0 || n > FF_PRIVACY_MAX_ORDERS)
        return ff_error(FF_ERANGE, "orders: %zu orders (need 1..%d)", n,
                        FF_PRIVACY_MAX_ORDERS);
    for (size_t i = 0; i < n; i++)
        if (!(orders[i] > 1.0) || !isfinite(orders[i]))
            return ff_error(FF_ERANGE, "orders[%zu]: %g must be finite and > 1", i,
                            orders[i]);
    if (series != FF_PRIVACY_SERIES_DP_ACCOUNTING && series != FF_PRIVACY_SERIES_TF_PRIVACY)
        return ff_error(FF_EINVAL, "series: unknown value %d", (int)series);
    memset(acc, 0, sizeof *acc);
    acc->n = n;
    memcpy(acc->orders, orders, n * sizeof *orders);
    acc->series = series;
    return FF_OK;
}

int ff_privacy_accountant_add_sgm(ff_privacy_accountant *acc, double q, double sigma,
                                  int64_t steps)
{
    if (steps < 0)
        return ff_error(FF_ERANGE, "steps: %lld must be >= 0", (long long)steps);
    double add[FF_PRIVACY_MAX_ORDERS];
    for (size_t i = 0; i < acc->n; i++) {
        double r;
        int rc = ff_privacy_rdp_sgm(q, sigma, acc->orders[i], acc->series, &r);
        if (rc != FF_OK)
            return rc;
        add[i] = r * (double)steps;
        if (steps == 0)
            add[i] = 0.0;
    }
    for (size_t i = 0; i < acc->n; i++)
        acc->rdp[i] += add[i];
    return FF_OK;
}

int ff_privacy_accountant_merge(ff_privacy_accountant *acc, const ff_privacy_accountant *other)
{
    if (other->n != acc->n || memcmp(other->orders, acc->orders, acc->n * sizeof(double)))
        return ff_error(FF_EINVAL, "accountant merge: the order lists differ");
    for (size_t i = 0; i < acc->n; i++)
        acc->rdp[i] += other->rdp[i];
    return FF_OK;
}

/* ε at one order; +inf when the order gives nothing. */
static double eps_at(double a, double r, double delta, ff_privacy_conversion conv)
{
    if (conv == FF_PRIVACY_CONV_CLASSIC)
        return r - log(delta) / (a - 1.0);
    if (r < 0.0)
        return 0.0; /* numerical noise in extreme events, as dp_accounting */
    if (delta * delta + expm1(-r) > 0.0)
        return 0.0; /* the KL bound δ ≤ sqrt(1 − e^{−rdp}) already holds */
    if (a > 1.01)
        return r + log1p(-1.0 / a) - log(delta * a) / (a - 1.0);
    return INFINITY;
}

int ff_privacy_accountant_epsilon(const ff_privacy_accountant *acc, double delta,
                                  ff_privacy_conversion conv, double *eps, double *order)
{
    if (!(delta > 0.0 && delta < 1.0))
        return ff_error(FF_ERANGE, "delta: %g is outside (0, 1)", delta);
    if (conv != FF_PRIVACY_CONV_IMPROVED && conv != FF_PRIVACY_CONV_CLASSIC)
        return ff_error(FF_EINVAL, "conversion: unknown value %d", (int)conv);
    double best = INFINITY, best_a = acc->orders[0];
    int found = 0;
    for (size_t i = 0; i < acc->n; i++) {
        double e = eps_at(acc->orders[i], acc->rdp[i], delta, conv);
        if (isnan(e))
            continue;
        if (!found || e < best) {
            best = e;
            best_a = acc->orders[i];
            found = 1;
        }
    }
    *eps = best < 0.0 ? 0.0 : best;
    *order = best_a;
    return FF_OK;
}

int ff_privacy_epsilon_sgm(double q, double sigma, int64_t steps, double delta,
                           const double *orders, size_t n, ff_privacy_series series,
                           ff_privacy_conversion conv, double *eps, double *order)
{
    ff_privacy_accountant acc;
    int rc = ff_privacy_accountant_init(&acc, orders, n, series);
    if (rc == FF_OK)
        rc = ff_privacy_accountant_add_sgm(&acc, q, sigma, steps);
    if (rc == FF_OK)
        rc = ff_privacy_accountant_epsilon(&acc, delta, conv, eps, order);
    return rc;
}

#define PLAN_SIGMA_MAX 1e4

int ff_privacy_plan_sigma(double target_eps, double delta, double q, int64_t steps,
                          const double *orders, size_t n, ff_privacy_series series,
                          ff_privacy_conversion conv, double *sigma)
{
    if (!(target_eps > 0.0) || !isfinite(target_eps))
        return ff_error(FF_ERANGE, "epsilon: %g must be finite and > 0", target_eps);
    if (!(q > 0.0 && q <= 1.0))
        return ff_error(FF_ERANGE, "q: %g is outside (0, 1]", q);
    if (steps < 1)
        return ff_error(FF_ERANGE, "steps: %lld must be >= 1", (long long)steps);
    double eps, order, hi = 1.0, lo = 0.0;
    int rc;
    /* Grow hi until it meets the target; ε decreases as σ grows. */
    for (;;) {
        rc = ff_privacy_epsilon_sgm(q, hi, steps, delta, orders, n, series, conv, &eps, &order);
        if (rc != FF_OK)
            return rc;
        if (eps <= target_eps)
            break;
        lo = hi;
        hi *= 2.0;
        if (hi > PLAN_SIGMA_MAX)
            return ff_error(FF_ERANGE,
                            "epsilon: %g at delta %g is out of reach even with sigma %g",
                            target_eps, delta, PLAN_SIGMA_MAX);
    }
    /* Invariant: ε(hi) ≤ target < ε(lo) (lo = 0 means ε = ∞). */
    while (hi - lo > 1e-9 * hi) {
        double mid = 0.5 * (lo + hi);
        rc = ff_privacy_epsilon_sgm(q, mid, steps, delta, orders, n, series, conv, &eps,
                                    &order);
        if (rc != FF_OK)
            return rc;
        if (eps <= target_eps)
            hi = mid;
        else
            lo = mid;
    }
    *sigma = hi;
    return FF_OK;
}
