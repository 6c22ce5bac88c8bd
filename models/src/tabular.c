/* Tabular models over a plain feature matrix: `linear` (one Linear layer with a logistic,
 * linear, Cox or softmax head) and `mlp` (hidden Linear layers with an activation and inverted
 * dropout, then the head's Linear layer); the optimizers FLamby uses (torch.optim.SGD and
 * torch.optim.Adam) over one flat parameter vector. Layers reuse the kernels of kernels.c
 * (ff_linear_forward/backward, ff_gelu_*); losses are loss.c's. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const arch_names[] = {"linear", "mlp", NULL};
static const char *const head_names[] = {"logistic", "linear", "cox", "softmax", NULL};
static const char *const act_names[] = {"relu", "tanh", "gelu", NULL};

const ff_cfg_field ff_tab_config_schema[] = {
    {.key = "model", .type = FF_CFG_ENUM, .offset = offsetof(ff_tab_config, arch),
     .choices = arch_names, .required = 1, .help = "linear or mlp"},
    {.key = "features", .type = FF_CFG_INT, .offset = offsetof(ff_tab_config, features),
     .required = 1, .min = 1, .max = 1 << 20, .help = "columns of the feature matrix"},
    {.key = "outputs", .type = FF_CFG_INT, .offset = offsetof(ff_tab_config, outputs),
     .min = 1, .max = 1 << 16, .def = "1",
     .help = "outputs of the head (classes for softmax; 1 for logistic and cox)"},
    {.key = "head", .type = FF_CFG_ENUM, .offset = offsetof(ff_tab_config, head),
     .choices = head_names, .required = 1,
     .help = "logistic (BCE), linear (MSE), cox (Breslow partial likelihood), softmax (CE)"},
    {.key = "hidden", .type = FF_CFG_STRLIST, .offset = offsetof(ff_tab_config, hidden_list),
     .help = "mlp: widths of the hidden layers, e.g. [64, 32]"},
    {.key = "activation", .type = FF_CFG_ENUM, .offset = offsetof(ff_tab_config, activation),
     .choices = act_names, .def = "relu", .help = "mlp: relu, tanh or gelu (tanh form)"},
    {.key = "dropout", .type = FF_CFG_DOUBLE, .offset = offsetof(ff_tab_config, dropout),
     .min = 0, .max = 0.95, .def = "0", .help = "mlp: dropout after each hidden layer (training)"},
    {0},
};

const char *ff_tab_head_name(int head) { return head >= 0 && head < 4 ? head_names[head] : "?"; }

int ff_tab_config_validate(ff_tab_config *c)
{
    if (c->head != FF_TAB_SOFTMAX && c->outputs != 1)
        return ff_error(FF_ECONFIG, "outputs: the %s head has 1 output, not %lld",
                        head_names[c->head], (long long)c->outputs);
    if (c->head == FF_TAB_SOFTMAX && c->outputs < 2)
        return ff_error(FF_ECONFIG, "outputs: the softmax head needs at least 2 classes");
    if (c->arch == FF_TAB_LINEAR && (c->hidden_list.count > 0 || c->nhidden > 0))
        return ff_error(FF_ECONFIG, "hidden: a linear model has no hidden layers (use model: mlp)");
    if (c->hidden_list.count > FF_TAB_MAX_HIDDEN)
        return ff_error(FF_ECONFIG, "hidden: at most %d layers", FF_TAB_MAX_HIDDEN);
    if (c->hidden_list.count > 0) {
        c->nhidden = (int)c->hidden_list.count;
        for (size_t i = 0; i < c->hidden_list.count; i++) {
            char *end = NULL;
            long v = strtol(c->hidden_list.items[i], &end, 10);
            if (!end || *end || v < 1 || v > (1 << 16))
                return ff_error(FF_ECONFIG, "hidden[%zu]: '%s' is not a width in [1, 65536]", i,
                                c->hidden_list.items[i]);
            c->hidden[i] = v;
        }
    }
    if (c->arch == FF_TAB_MLP && c->nhidden == 0)
        return ff_error(FF_ECONFIG, "hidden: an mlp needs at least one hidden layer");
    return FF_OK;
}

int ff_tab_config_load(const char *path, ff_tab_config *c)
{
    memset(c, 0, sizeof *c);
    int rc = ff_cfg_load(path, ff_tab_config_schema, c);
    if (rc == FF_OK && (rc = ff_tab_config_validate(c)) != FF_OK)
        ff_error_prefix(rc, "%s: ", path);
    return rc;
}

int ff_tab_config_load_str(const char *name, const char *yaml, size_t len, ff_tab_config *c)
{
    memset(c, 0, sizeof *c);
    int rc = ff_cfg_load_str(name, yaml, len, ff_tab_config_schema, c);
    if (rc == FF_OK && (rc = ff_tab_config_validate(c)) != FF_OK)
        ff_error_prefix(rc, "%s: ", name);
    return rc;
}

void ff_tab_config_free(ff_tab_config *c) { ff_cfg_free(ff_tab_config_schema, c); }

/* ---- the model ------------------------------------------------------------------------- */

#define TAB_MAX_LAYERS (FF_TAB_MAX_HIDDEN + 1)

struct ff_tab {
    ff_tab_config cfg;
    int nlayers;
    int width[TAB_MAX_LAYERS + 1]; /* width[0] = features, width[nlayers] = outputs */
    ff_param_info tensors[2 * TAB_MAX_LAYERS];
    char names[2 * TAB_MAX_LAYERS][24];
    size_t nparams;
    float *params, *grads;
    int max_batch;
    /* activations: pre[l] = layer l's output before activation, act[l] = the input of layer
     * l (act[0] is the caller's x, not stored); mask[l] = dropout keep mask of act[l] */
    float *pre[TAB_MAX_LAYERS], *act[TAB_MAX_LAYERS], *mask[TAB_MAX_LAYERS];
    float *dbuf[2]; /* backward scratch, widest layer */
    int last_B, last_train;
};

static float *W_of(ff_tab *t, int l) { return t->params + t->tensors[2 * l].offset; }
static float *b_of(ff_tab *t, int l) { return t->params + t->tensors[2 * l + 1].offset; }

int ff_tab_new(ff_tab **out, const ff_tab_config *cfg, int max_batch)
{
    *out = NULL;
    ff_tab_config c = *cfg;
    memset(&c.hidden_list, 0, sizeof c.hidden_list); /* not owned by the model */
    if (max_batch < 1)
        return ff_error(FF_EINVAL, "tabular model: max_batch %d < 1", max_batch);
    if (c.features < 1 || c.outputs < 1 || c.nhidden < 0 || c.nhidden > FF_TAB_MAX_HIDDEN ||
        (c.arch == FF_TAB_LINEAR && c.nhidden) || (c.arch == FF_TAB_MLP && !c.nhidden))
        return ff_error(FF_EINVAL, "tabular model: invalid config (ff_tab_config_validate)");
    ff_tab *t = calloc(1, sizeof *t);
    if (!t)
        return ff_error(FF_ENOMEM, "tabular model: no memory");
    t->cfg = c;
    t->max_batch = max_batch;
    t->nlayers = (int)c.nhidden + 1;
    t->width[0] = (int)c.features;
    for (int l = 0; l < c.nhidden; l++)
        t->width[l + 1] = (int)c.hidden[l];
    t->width[t->nlayers] = (int)c.outputs;
    size_t off = 0;
    int widest = 1;
    for (int l = 0; l < t->nlayers; l++) {
        int in = t->width[l], o = t->width[l + 1];
        widest = o > widest ? o : widest;
        widest = in > widest ? in : widest;
        ff_param_info *w = &t->tensors[2 * l], *b = &t->tensors[2 * l + 1];
        if (t->nlayers == 1) {
            snprintf(t->names[2 * l], sizeof t->names[0], "fc.weight");
            snprintf(t->names[2 * l + 1], sizeof t->names[0], "fc.bias");
        } else {
            snprintf(t->names[2 * l], sizeof t->names[0], "fc%d.weight", l);
            snprintf(t->names[2 * l + 1], sizeof t->names[0], "fc%d.bias", l);
        }
        *w = (ff_param_info){.name = t->names[2 * l], .ndim = 2, .shape = {o, in},
                             .offset = off, .numel = (size_t)o * in, .decay = 1};
        off += w->numel;
        *b = (ff_param_info){.name = t->names[2 * l + 1], .ndim = 1, .shape = {o},
                             .offset = off, .numel = (size_t)o};
        off += b->numel;
    }
    t->nparams = off;
    t->params = calloc(off, sizeof(float));
    t->grads = calloc(off, sizeof(float));
    int ok = t->params && t->grads;
    for (int l = 0; l < t->nlayers && ok; l++) {
        size_t o = (size_t)max_batch * t->width[l + 1];
        t->pre[l] = malloc(o * sizeof(float));
        ok = t->pre[l] != NULL;
        if (l > 0) {
            size_t a = (size_t)max_batch * t->width[l];
            t->act[l] = malloc(a * sizeof(float));
            t->mask[l] = malloc(a * sizeof(float));
            ok = ok && t->act[l] && t->mask[l];
        }
    }
    for (int k = 0; k < 2 && ok; k++)
        ok = (t->dbuf[k] = malloc((size_t)max_batch * widest * sizeof(float))) != NULL;
    if (!ok) {
        ff_tab_free(t);
        return ff_error(FF_ENOMEM, "tabular model: no memory for %zu parameters", off);
    }
    *out = t;
    return FF_OK;
}

void ff_tab_free(ff_tab *t)
{
    if (!t)
        return;
    free(t->params);
    free(t->grads);
    for (int l = 0; l < TAB_MAX_LAYERS; l++) {
        free(t->pre[l]);
        free(t->act[l]);
        free(t->mask[l]);
    }
    free(t->dbuf[0]);
    free(t->dbuf[1]);
    free(t);
}

const ff_tab_config *ff_tab_cfg(const ff_tab *t) { return &t->cfg; }
size_t ff_tab_nparams(const ff_tab *t) { return t->nparams; }
float *ff_tab_params(ff_tab *t) { return t->params; }
float *ff_tab_grads(ff_tab *t) { return t->grads; }
size_t ff_tab_ntensors(const ff_tab *t) { return 2 * (size_t)t->nlayers; }
const ff_param_info *ff_tab_tensor(const ff_tab *t, size_t i)
{
    return i < 2 * (size_t)t->nlayers ? &t->tensors[i] : NULL;
}
void ff_tab_zero_grad(ff_tab *t) { memset(t->grads, 0, t->nparams * sizeof(float)); }

/* PyTorch's nn.Linear default: W and b ~ U(−1/√in, 1/√in) (kaiming_uniform with a = √5). */
void ff_tab_init(ff_tab *t, uint64_t seed)
{
    for (int l = 0; l < t->nlayers; l++) {
        ff_rng r;
        ff_rng_init(&r, seed, (uint64_t)l);
        double bound = 1.0 / sqrt((double)t->width[l]);
        float *W = W_of(t, l), *b = b_of(t, l);
        size_t nw = t->tensors[2 * l].numel, nb = t->tensors[2 * l + 1].numel;
        for (size_t i = 0; i < nw; i++)
            W[i] = (float)((2.0 * ff_rng_uniform_d(&r) - 1.0) * bound);
        for (size_t i = 0; i < nb; i++)
            b[i] = (float)((2.0 * ff_rng_uniform_d(&r) - 1.0) * bound);
    }
}

static void act_forward(int act, float *y, const float *x, size_t n)
{
    switch (act) {
    case FF_TAB_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] > 0 ? x[i] : 0.0f;
        break;
    case FF_TAB_TANH:
        for (size_t i = 0; i < n; i++)
            y[i] = tanhf(x[i]);
        break;
    default: ff_gelu_forward(y, x, n); break;
    }
}

/* dx = dy · act'(x), overwriting dx (may alias dy). */
static void act_backward(int act, float *dx, const float *dy, const float *x, size_t n)
{
    switch (act) {
    case FF_TAB_RELU:
        for (size_t i = 0; i < n; i++)
            dx[i] = x[i] > 0 ? dy[i] : 0.0f;
        break;
    case FF_TAB_TANH:
        for (size_t i = 0; i < n; i++) {
            float th = tanhf(x[i]);
            dx[i] = dy[i] * (1.0f - th * th);
        }
        break;
    default:
        if (dx != dy)
            memcpy(dx, dy, n * sizeof *dx);
        ff_gelu_backward_inplace(dx, x, n);
        break;
    }
}

int ff_tab_forward(ff_tab *t, const float *x, int B, float *out, ff_rng *dropout_rng)
{
    if (B < 1 || B > t->max_batch)
        return ff_error(FF_EINVAL, "tabular forward: batch %d outside [1, %d]", B, t->max_batch);
    const float p = (float)t->cfg.dropout;
    const int train = dropout_rng != NULL && p > 0;
    const float *in = x;
    for (int l = 0; l < t->nlayers; l++) {
        const int I = t->width[l], O = t->width[l + 1];
        ff_linear_forward(t->pre[l], in, W_of(t, l), b_of(t, l), B, I, O, 0);
        if (l == t->nlayers - 1)
            break;
        float *a = t->act[l + 1], *m = t->mask[l + 1];
        size_t n = (size_t)B * O;
        act_forward((int)t->cfg.activation, a, t->pre[l], n);
        /* inverted dropout: keep with probability 1 − p, scale kept values by 1/(1 − p) */
        for (size_t i = 0; i < n; i++) {
            m[i] = train ? (ff_rng_uniform_d(dropout_rng) >= p ? 1.0f / (1.0f - p) : 0.0f) : 1.0f;
            a[i] *= m[i];
        }
        in = a;
    }
    memcpy(out, t->pre[t->nlayers - 1], (size_t)B * t->width[t->nlayers] * sizeof(float));
    t->last_B = B;
    return FF_OK;
}

int ff_tab_backward(ff_tab *t, const float *x, const float *dout, int B)
{
    if (B != t->last_B)
        return ff_error(FF_ESTATE, "tabular backward: batch %d, last forward had %d", B, t->last_B);
    const float *dy = dout;
    for (int l = t->nlayers - 1; l >= 0; l--) {
        const int I = t->width[l], O = t->width[l + 1];
        const float *in = l == 0 ? x : t->act[l];
        float *gW = t->grads + t->tensors[2 * l].offset, *gb = t->grads + t->tensors[2 * l + 1].offset;
        float *dx = NULL;
        if (l > 0) {
            dx = t->dbuf[l & 1];
            memset(dx, 0, (size_t)B * I * sizeof(float));
        }
        ff_linear_backward(dx, gW, gb, dy, in, W_of(t, l), B, I, O);
        if (l > 0) {
            size_t n = (size_t)B * I;
            const float *m = t->mask[l];
            for (size_t i = 0; i < n; i++)
                dx[i] *= m[i];
            act_backward((int)t->cfg.activation, dx, dx, t->pre[l - 1], n);
            dy = dx;
        }
    }
    return FF_OK;
}

/* Targets by head: logistic y [B] in [0,1]; linear y [B, outputs]; softmax y [B] = class
 * index; cox y [B, 2] = (event, time) rows, FLamby's order. */
int ff_tab_loss(const ff_tab *t, const float *out, const float *y, int B, double *loss,
                float *dout)
{
    int rc = FF_OK;
    const int K = t->width[t->nlayers];
    switch (t->cfg.head) {
    case FF_TAB_LOGISTIC:
        rc = ff_loss_bce_forward(loss, out, y, B);
        if (rc == FF_OK && dout)
            ff_loss_bce_backward(dout, out, y, B, 1.0f);
        return rc;
    case FF_TAB_LINEAR_HEAD:
        *loss = ff_loss_mse_forward(out, y, (size_t)B * K);
        if (dout)
            ff_loss_mse_backward(dout, out, y, (size_t)B * K, 1.0f);
        return FF_OK;
    case FF_TAB_SOFTMAX: {
        int32_t *lab = malloc((size_t)B * sizeof *lab);
        if (!lab)
            return ff_error(FF_ENOMEM, "softmax loss: no memory");
        for (int i = 0; i < B; i++)
            lab[i] = isfinite(y[i]) && y[i] >= 0 && y[i] < (float)K ? (int32_t)y[i] : -1;
        rc = ff_loss_ce_forward(loss, out, lab, B, K);
        if (rc == FF_OK && dout)
            rc = ff_loss_ce_backward(dout, out, lab, B, K, 1.0f);
        free(lab);
        return rc;
    }
    default: {
        float *ev = malloc((size_t)B * 2 * sizeof(float));
        if (!ev)
            return ff_error(FF_ENOMEM, "cox loss: no memory");
        float *tm = ev + B;
        for (int i = 0; i < B; i++) {
            ev[i] = y[2 * i];
            tm[i] = y[2 * i + 1];
        }
        rc = ff_loss_cox_forward(loss, out, tm, ev, B);
        if (rc == FF_OK && dout)
            rc = ff_loss_cox_backward(dout, out, tm, ev, B, 1.0f);
        free(ev);
        return rc;
    }
    }
}

int ff_tab_target_width(const ff_tab_config *c)
{
    return c->head == FF_TAB_COX ? 2 : (c->head == FF_TAB_LINEAR_HEAD ? (int)c->outputs : 1);
}

/* ---- optimizers over a flat vector ------------------------------------------------------ */

int ff_vec_optim_init(ff_vec_optim *o, int kind, size_t n, float lr)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->n = n;
    o->lr = lr;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    if (kind == FF_OPTIM_SGD)
        return FF_OK;
    o->m = calloc(n ? n : 1, sizeof(float));
    o->v = calloc(n ? n : 1, sizeof(float));
    if (!o->m || !o->v) {
        ff_vec_optim_free(o);
        return ff_error(FF_ENOMEM, "optimizer: no memory for %zu moments", n);
    }
    return FF_OK;
}

void ff_vec_optim_free(ff_vec_optim *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

/* torch.optim.SGD (momentum 0): w ← w − lr (g + wd w).
 * torch.optim.Adam: g ← g + wd w; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
 * w ← w − lr (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + eps). */
void ff_vec_optim_step(ff_vec_optim *o, float *w, const float *g)
{
    o->t++;
    const double lr = o->lr, wd = o->weight_decay;
    if (o->kind == FF_OPTIM_SGD) {
        for (size_t j = 0; j < o->n; j++)
            w[j] = (float)((double)w[j] - lr * ((double)g[j] + wd * w[j]));
        return;
    }
    const double b1 = o->beta1, b2 = o->beta2;
    const double c1 = 1.0 - pow(b1, (double)o->t), c2 = 1.0 - pow(b2, (double)o->t);
    for (size_t j = 0; j < o->n; j++) {
        double gj = (double)g[j] + wd * w[j];
        double m = b1 * o->m[j] + (1 - b1) * gj;
        double v = b2 * o->v[j] + (1 - b2) * gj * gj;
        o->m[j] = (float)m;
        o->v[j] = (float)v;
        w[j] = (float)((double)w[j] - lr * (m / c1) / (sqrt(v / c2) + o->eps));
    }
}
