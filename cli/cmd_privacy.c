/* fedfuse privacy epsilon|plan: the RDP accountant from the command line. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ff/privacy.h"

static int cmd_privacy(int argc, char **argv);

FF_CLI_GROUP_DEFINE(privacy,
    {"privacy", "differential privacy accountant: epsilon of DP-SGD, sigma for a budget",
     cmd_privacy,
     "usage: fedfuse privacy epsilon --q Q --sigma S --steps N --delta D [options]\n"
     "       fedfuse privacy plan --epsilon E --delta D --q Q --steps N [options]\n"
     "       fedfuse privacy ledger FILE.json\n"
     "       fedfuse privacy ddg --clip S --sigma SITE_STD --gamma G --dim D --survivors N\n"
     "                           --rounds R --delta D [--beta B] [--q Q] [options]\n"
     "  epsilon: the (epsilon, delta) guarantee of N steps of the Poisson-sampled Gaussian\n"
     "           mechanism (sampling rate Q in (0,1], noise multiplier S > 0), composed in\n"
     "           RDP; prints 'epsilon <value>' and 'order <alpha>' (the optimal order).\n"
     "  plan:    the smallest noise multiplier reaching epsilon E; prints 'sigma <value>'.\n"
     "  ledger:  recomputes epsilon from a privacy ledger (JSON written by a site or the\n"
     "           coordinator) from its recorded rounds; exit 2 if the stored epsilon\n"
     "           disagrees or a round passes the budget.\n"
     "  ddg:     epsilon of R rounds of the distributed discrete Gaussian (Kairouz, Liu,\n"
     "           Steinke 2021) with N surviving sites each adding std SITE_STD (original\n"
     "           units), granularity G, padded dimension D, conditional rounding B (default\n"
     "           exp(-1/2)), site sampling Q (default 1); also prints tau.\n"
     "options:\n"
     "  --orders default|dp_accounting|opacus|tf_privacy|A,B,...  RDP orders (default:\n"
     "           dp_accounting's 1.1..10.9, 11..63, 128, 256, 512, 1024)\n"
     "  --conversion improved|classic   RDP to (eps, delta) (default improved: Balle et al.\n"
     "           2020, as dp_accounting/Opacus; classic: eps = rdp - log(delta)/(alpha-1))\n"
     "  --series dp_accounting|tf_privacy  fractional-order series (default dp_accounting,\n"
     "           conservative; tf_privacy = signed, as TF Privacy and Opacus)\n"})

typedef struct {
    double orders[FF_PRIVACY_MAX_ORDERS];
    size_t n;
    ff_privacy_series series;
    ff_privacy_conversion conv;
} acc_opts;

static int parse_common(ff_cli_args *a, acc_opts *o)
{
    const char *orders = ff_cli_opt(a, "--orders");
    const char *conv = ff_cli_opt(a, "--conversion");
    const char *series = ff_cli_opt(a, "--series");
    if (ff_privacy_orders_parse(orders ? orders : "default", o->orders, &o->n) != FF_OK)
        return ff_error_prefix(FF_EINVAL, "--orders: ");
    if (!conv || !strcmp(conv, "improved"))
        o->conv = FF_PRIVACY_CONV_IMPROVED;
    else if (!strcmp(conv, "classic"))
        o->conv = FF_PRIVACY_CONV_CLASSIC;
    else
        return ff_error(FF_EINVAL, "--conversion: '%s' is not improved|classic", conv);
    if (!series || !strcmp(series, "dp_accounting"))
        o->series = FF_PRIVACY_SERIES_DP_ACCOUNTING;
    else if (!strcmp(series, "tf_privacy") || !strcmp(series, "opacus"))
        o->series = FF_PRIVACY_SERIES_TF_PRIVACY;
    else
        return ff_error(FF_EINVAL, "--series: '%s' is not dp_accounting|tf_privacy", series);
    return FF_OK;
}

/* A required number option with a range check; errors name the flag. */
static int need_f64(ff_cli_args *a, const char *name, double *out)
{
    if (ff_cli_opt_f64(a, name, NAN, out) != FF_OK)
        return FF_EINVAL;
    if (isnan(*out))
        return ff_error(FF_EINVAL, "%s: missing (see 'fedfuse privacy --help')", name);
    return FF_OK;
}

static int check_q_delta_steps(double q, double delta, int64_t steps)
{
    if (!(q > 0.0 && q <= 1.0))
        return ff_error(FF_ERANGE, "--q: %g is outside (0, 1]", q);
    if (!(delta > 0.0 && delta < 1.0))
        return ff_error(FF_ERANGE, "--delta: %g is outside (0, 1)", delta);
    if (steps < 1)
        return ff_error(FF_ERANGE, "--steps: %lld must be >= 1", (long long)steps);
    return FF_OK;
}

static int need_steps(ff_cli_args *a, int64_t *steps)
{
    const char *v = ff_cli_opt(a, "--steps");
    if (!v)
        return ff_error(FF_EINVAL, "--steps: missing (see 'fedfuse privacy --help')");
    if (ff_parse_i64(v, steps) != FF_OK)
        return ff_error(FF_EINVAL, "--steps: '%s' is not an integer", v);
    return FF_OK;
}

static int run_epsilon(ff_cli_args *a)
{
    double q, sigma, delta, eps, order;
    int64_t steps;
    acc_opts o;
    int rc;
    if ((rc = need_f64(a, "--q", &q)) || (rc = need_f64(a, "--sigma", &sigma)) ||
        (rc = need_steps(a, &steps)) || (rc = need_f64(a, "--delta", &delta)) ||
        (rc = parse_common(a, &o)) || (rc = ff_cli_check_unused(a)))
        return ff_cli_fail(rc);
    if ((rc = check_q_delta_steps(q, delta, steps)))
        return ff_cli_fail(rc);
    if (!(sigma > 0.0) || !isfinite(sigma))
        return ff_cli_fail(ff_error(FF_ERANGE, "--sigma: %g must be finite and > 0", sigma));
    rc = ff_privacy_epsilon_sgm(q, sigma, steps, delta, o.orders, o.n, o.series, o.conv, &eps,
                                &order);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("epsilon %.15g\n", eps);
    printf("order %.15g\n", order);
    return FF_EXIT_OK;
}

static int run_plan(ff_cli_args *a)
{
    double target, q, delta, sigma;
    int64_t steps;
    acc_opts o;
    int rc;
    if ((rc = need_f64(a, "--epsilon", &target)) || (rc = need_f64(a, "--delta", &delta)) ||
        (rc = need_f64(a, "--q", &q)) || (rc = need_steps(a, &steps)) ||
        (rc = parse_common(a, &o)) || (rc = ff_cli_check_unused(a)))
        return ff_cli_fail(rc);
    if ((rc = check_q_delta_steps(q, delta, steps)))
        return ff_cli_fail(rc);
    if (!(target > 0.0) || !isfinite(target))
        return ff_cli_fail(ff_error(FF_ERANGE, "--epsilon: %g must be finite and > 0", target));
    rc = ff_privacy_plan_sigma(target, delta, q, steps, o.orders, o.n, o.series, o.conv,
                               &sigma);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    double eps, order;
    rc = ff_privacy_epsilon_sgm(q, sigma, steps, delta, o.orders, o.n, o.series, o.conv, &eps,
                                &order);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("sigma %.12g\n", sigma);
    printf("epsilon %.15g\n", eps);
    printf("order %.15g\n", order);
    return FF_EXIT_OK;
}

static int run_ledger(ff_cli_args *a)
{
    const char *path = ff_cli_pos(a, 0);
    if (!path)
        return ff_cli_usage_error("privacy", "ledger: missing FILE.json");
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    char *text = NULL;
    size_t len;
    ff_privacy_ledger *l = NULL;
    int rc = ff_file_read_all(path, (size_t)64 << 20, &text, &len);
    if (rc == FF_OK)
        rc = ff_privacy_ledger_from_json(&l, text, path);
    free(text);
    if (rc != FF_OK)
        return ff_cli_fail(rc == FF_EPOLICY ? FF_EFORMAT : rc);
    double eps, order;
    rc = ff_privacy_ledger_epsilon(l, &eps, &order);
    if (rc == FF_OK) {
        printf("rounds %zu\n", ff_privacy_ledger_count(l));
        printf("epsilon %.15g\n", eps);
        printf("order %.15g\n", order);
    }
    ff_privacy_ledger_free(l);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}

static int run_ddg(ff_cli_args *a)
{
    ff_privacy_ddg_params p = {0};
    double dim, survivors, rounds, delta, q, eps, order;
    acc_opts o;
    int rc;
    if ((rc = need_f64(a, "--clip", &p.clip_norm)) || (rc = need_f64(a, "--sigma", &p.sigma)) ||
        (rc = need_f64(a, "--gamma", &p.gamma)) || (rc = need_f64(a, "--dim", &dim)) ||
        (rc = need_f64(a, "--survivors", &survivors)) ||
        (rc = need_f64(a, "--rounds", &rounds)) || (rc = need_f64(a, "--delta", &delta)) ||
        (rc = ff_cli_opt_f64(a, "--beta", exp(-0.5), &p.beta)) ||
        (rc = ff_cli_opt_f64(a, "--q", 1.0, &q)) || (rc = parse_common(a, &o)) ||
        (rc = ff_cli_check_unused(a)))
        return ff_cli_fail(rc);
    if (!(rounds >= 1) || rounds != floor(rounds))
        return ff_cli_fail(ff_error(FF_ERANGE, "--rounds: %g must be an integer >= 1", rounds));
    if ((rc = check_q_delta_steps(q, delta, 1)))
        return ff_cli_fail(rc);
    if (!(dim >= 1) || dim != floor(dim) || !(survivors >= 1) || survivors != floor(survivors))
        return ff_cli_fail(ff_error(FF_ERANGE, "--dim/--survivors: must be integers >= 1"));
    p.dim = (int64_t)dim;
    p.survivors = (int64_t)survivors;
    ff_privacy_accountant acc;
    if ((rc = ff_privacy_accountant_init(&acc, o.orders, o.n, o.series)) ||
        (rc = ff_privacy_accountant_add_ddg(&acc, &p, q, (int64_t)rounds)) ||
        (rc = ff_privacy_accountant_epsilon(&acc, delta, o.conv, &eps, &order)))
        return ff_cli_fail(rc);
    printf("epsilon %.15g\n", eps);
    printf("order %.15g\n", order);
    printf("tau %.6g\n", ff_privacy_ddg_tau(&p));
    printf("sensitivity %.9g\n", sqrt(ff_privacy_ddg_sensitivity_sq(&p)));
    return FF_EXIT_OK;
}

static int cmd_privacy(int argc, char **argv)
{
    if (ff_cli_wants_help(argc, argv)) {
        printf("%s", ff_cli_find("privacy")->usage);
        return FF_EXIT_OK;
    }
    if (argc < 2)
        return ff_cli_usage_error("privacy", "missing subcommand (epsilon|plan|ledger|ddg)");
    ff_cli_args a;
    ff_cli_args_init(&a, "privacy", argc - 1, argv + 1);
    if (!strcmp(argv[1], "epsilon"))
        return run_epsilon(&a);
    if (!strcmp(argv[1], "plan"))
        return run_plan(&a);
    if (!strcmp(argv[1], "ledger"))
        return run_ledger(&a);
    if (!strcmp(argv[1], "ddg"))
        return run_ddg(&a);
    return ff_cli_usage_error("privacy", "unknown subcommand '%s' (epsilon|plan|ledger|ddg)", argv[1]);
}
