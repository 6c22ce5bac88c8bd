/* YAML config loader: libyaml builds the document (with line/column marks), and a field
 * table (ff_cfg_field) types and validates it. Every error names FILE:LINE:COL and the key
 * path, so a hospital's IT can fix the file without reading our code. */
#include "ff/common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

typedef struct {
    const char *file;
    yaml_document_t *doc;
} cfg_ctx;

#define CFG_PATH_MAX 256
/* Deepest nesting of mappings/sequences a YAML config may have (docs/security.md): libyaml's
 * scanner is quadratic in nesting depth, so a deeper file is refused before it is loaded. */
#define FF_CFG_DEPTH_MAX 64

static int node_error(const cfg_ctx *c, const yaml_node_t *n, const char *path, const char *fmt,
                      ...) FF_PRINTF(4, 5);

static int node_error(const cfg_ctx *c, const yaml_node_t *n, const char *path, const char *fmt,
                      ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ff_error(FF_ECONFIG, "%s:%zu:%zu: %s: %s", c->file, n ? n->start_mark.line + 1 : 1,
                    n ? n->start_mark.column + 1 : 1, path[0] ? path : "(top level)", what);
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static int is_quoted(const yaml_node_t *n)
{
    return n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
           n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
}

/* The field's storage inside the struct at base (void *, so no alignment-changing casts). */
static void *field_ptr(void *base, const ff_cfg_field *f)
{
    return (uint8_t *)base + f->offset;
}

static int has_range(const ff_cfg_field *f)
{
    return f->max > f->min;
}

static const char *type_name(ff_cfg_type t)
{
    switch (t) {
    case FF_CFG_INT: return "an integer";
    case FF_CFG_DOUBLE: return "a number";
    case FF_CFG_BOOL: return "true or false";
    case FF_CFG_STRING: return "a string";
    case FF_CFG_ENUM: return "one of the listed values";
    case FF_CFG_SECTION: return "a mapping";
    case FF_CFG_LIST: return "a list";
    case FF_CFG_STRLIST: return "a list of strings";
    default: return "?";
    }
}

/* Stores scalar text s into the field; used for defaults and YAML values alike. On error,
 * returns FF_ECONFIG with only the reason as message (callers add the place). */
static int set_scalar(const ff_cfg_field *f, void *base, const char *s)
{
    uint8_t *p = (uint8_t *)base + f->offset;
    switch (f->type) {
    case FF_CFG_INT: {
        int64_t v;
        if (ff_parse_i64(s, &v) != FF_OK)
            return ff_error(FF_ECONFIG, "'%s' is not an integer", s);
        if (has_range(f) && ((double)v < f->min || (double)v > f->max))
            return ff_error(FF_ECONFIG, "%lld is out of range [%g, %g]", (long long)v, f->min, f->max);
        memcpy(p, &v, sizeof v);
        return FF_OK;
    }
    case FF_CFG_DOUBLE: {
        double v;
        if (ff_parse_f64(s, &v) != FF_OK)
            return ff_error(FF_ECONFIG, "'%s' is not a finite number", s);
        if (has_range(f) && (v < f->min || v > f->max))
            return ff_error(FF_ECONFIG, "%g is out of range [%g, %g]", v, f->min, f->max);
        memcpy(p, &v, sizeof v);
        return FF_OK;
    }
    case FF_CFG_BOOL: {
        int v;
        if (strcmp(s, "true") == 0)
            v = 1;
        else if (strcmp(s, "false") == 0)
            v = 0;
        else
            return ff_error(FF_ECONFIG, "'%s' is not true or false", s);
        memcpy(p, &v, sizeof v);
        return FF_OK;
    }
    case FF_CFG_STRING:
        if (strlen(s) >= f->size)
            return ff_error(FF_ECONFIG, "value is %zu bytes, at most %zu allowed", strlen(s), f->size - 1);
        memcpy(p, s, strlen(s) + 1);
        return FF_OK;
    case FF_CFG_ENUM:
        for (int i = 0; f->choices[i]; i++) {
            if (strcmp(s, f->choices[i]) == 0) {
                memcpy(p, &i, sizeof i);
                return FF_OK;
            }
        }
        {
            char list[256] = "";
            for (int i = 0; f->choices[i]; i++) {
                strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, f->choices[i], sizeof list - strlen(list) - 1);
            }
            return ff_error(FF_ECONFIG, "'%s' is not one of: %s", s, list);
        }
    default:
        return ff_error(FF_EINTERNAL, "field '%s' is not a scalar", f->key);
    }
}

int ff_cfg_defaults(const ff_cfg_field *schema, void *out)
{
    for (const ff_cfg_field *f = schema; f->key; f++) {
        if (f->type == FF_CFG_SECTION) {
            int rc = ff_cfg_defaults(f->sub, (uint8_t *)out + f->offset);
            if (rc != FF_OK)
                return rc;
        } else if (f->def) {
            int rc = set_scalar(f, out, f->def);
            if (rc != FF_OK)
                return ff_error_prefix(FF_EINTERNAL, "default of '%s': ", f->key);
        }
    }
    return FF_OK;
}

static int apply_mapping(const cfg_ctx *c, yaml_node_t *map, const ff_cfg_field *schema,
                         void *base, const char *path);

static void join_path(char *out, const char *path, const char *key)
{
    snprintf(out, CFG_PATH_MAX, "%s%s%s", path, path[0] ? "." : "", key);
}

static int apply_list(const cfg_ctx *c, yaml_node_t *val, const ff_cfg_field *f, void *base,
                      const char *path)
{
    if (val->type != YAML_SEQUENCE_NODE)
        return node_error(c, val, path, "expected %s", type_name(f->type));
    size_t n = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
    if (has_range(f) && ((double)n < f->min || (double)n > f->max))
        return node_error(c, val, path, "%zu items, expected %g to %g", n, f->min, f->max);
    if (f->type == FF_CFG_STRLIST) {
        ff_cfg_strlist *sl = field_ptr(base, f);
        if (n > FF_CFG_STRLIST_MAX)
            return node_error(c, val, path, "%zu items, at most %d allowed", n, FF_CFG_STRLIST_MAX);
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *it = yaml_document_get_node(c->doc, val->data.sequence.items.start[i]);
            if (!it || it->type != YAML_SCALAR_NODE)
                return node_error(c, it ? it : val, path, "item %zu: expected a string", i);
            if (!(sl->items[sl->count] = strdup(scalar(it))))
                return ff_error(FF_ENOMEM, "out of memory");
            sl->count++;
        }
        return FF_OK;
    }
    ff_cfg_list *list = field_ptr(base, f);
    list->items = calloc(n ? n : 1, f->size);
    if (!list->items)
        return ff_error(FF_ENOMEM, "out of memory");
    list->count = n;
    for (size_t i = 0; i < n; i++) {
        char ipath[CFG_PATH_MAX];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        void *elem = (uint8_t *)list->items + i * f->size;
        yaml_node_t *it = yaml_document_get_node(c->doc, val->data.sequence.items.start[i]);
        int rc = ff_cfg_defaults(f->sub, elem);
        if (rc == FF_OK)
            rc = apply_mapping(c, it, f->sub, elem, ipath);
        if (rc != FF_OK)
            return rc;
    }
    return FF_OK;
}

static int apply_value(const cfg_ctx *c, yaml_node_t *val, const ff_cfg_field *f, void *base,
                       const char *path)
{
    switch (f->type) {
    case FF_CFG_SECTION:
        return apply_mapping(c, val, f->sub, (uint8_t *)base + f->offset, path);
    case FF_CFG_LIST:
        if (f->alt && val->type == YAML_SCALAR_NODE)
            return apply_value(c, val, f->alt, base, path);
        return apply_list(c, val, f, base, path);
    case FF_CFG_STRLIST:
        return apply_list(c, val, f, base, path);
    default:
        break;
    }
    if (val->type != YAML_SCALAR_NODE)
        return node_error(c, val, path, "expected %s", type_name(f->type));
    const char *s = scalar(val);
    if (f->type != FF_CFG_STRING && f->type != FF_CFG_ENUM && is_quoted(val))
        return node_error(c, val, path, "expected %s, found the quoted string \"%s\"",
                          type_name(f->type), s);
    if (f->type != FF_CFG_STRING && !is_quoted(val) && (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0))
        return node_error(c, val, path, "missing value (expected %s)", type_name(f->type));
    if (set_scalar(f, base, s) != FF_OK)
        return node_error(c, val, path, "%s", ff_error_message());
    return FF_OK;
}

static int apply_mapping(const cfg_ctx *c, yaml_node_t *map, const ff_cfg_field *schema,
                         void *base, const char *path)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return node_error(c, map, path, "expected a mapping of keys to values");
    size_t nfields = 0;
    while (schema[nfields].key)
        nfields++;
    uint8_t seen[256] = {0};
    FF_ASSERT(nfields <= sizeof seen);
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
        if (!k || k->type != YAML_SCALAR_NODE || !v)
            return node_error(c, k, path, "keys must be plain strings");
        char kpath[CFG_PATH_MAX];
        join_path(kpath, path, scalar(k));
        size_t i = 0;
        while (i < nfields && strcmp(schema[i].key, scalar(k)) != 0)
            i++;
        if (i == nfields) {
            char list[512] = "";
            for (size_t j = 0; j < nfields; j++) {
                strncat(list, j ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, schema[j].key, sizeof list - strlen(list) - 1);
            }
            return node_error(c, k, kpath, "unknown key (known keys: %s)", list);
        }
        if (seen[i])
            return node_error(c, k, kpath, "duplicate key");
        seen[i] = 1;
        int rc = apply_value(c, v, &schema[i], base, kpath);
        if (rc != FF_OK)
            return rc;
    }
    for (size_t i = 0; i < nfields; i++) {
        if (schema[i].required && !seen[i]) {
            char kpath[CFG_PATH_MAX];
            join_path(kpath, path, schema[i].key);
            return node_error(c, map, kpath, "required key is missing");
        }
    }
    return FF_OK;
}

/* Nesting depth, checked with libyaml's event parser before the document is built: it stops
 * at the first collection deeper than FF_CFG_DEPTH_MAX, so a hostile 100k-deep file costs
 * a few dozen events instead of libyaml's quadratic load. A syntax error is left to
 * yaml_parser_load, which reports it. */
static int cfg_depth_check(const char *name, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return ff_error(FF_ENOMEM, "%s: cannot initialise the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    int rc = FF_OK, depth = 0, done = 0;
    while (!done && rc == FF_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev))
            break;
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
            if (++depth > FF_CFG_DEPTH_MAX)
                rc = ff_error(FF_ECONFIG, "%s:%zu:%zu: nesting deeper than %d levels (refused "
                              "before loading)", name, ev.start_mark.line + 1,
                              ev.start_mark.column + 1, FF_CFG_DEPTH_MAX);
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (ev.type == YAML_STREAM_END_EVENT) {
            done = 1;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

int ff_cfg_load_str(const char *name, const char *yaml, size_t len, const ff_cfg_field *schema,
                    void *out)
{
    int rc = ff_cfg_defaults(schema, out);
    if (rc != FF_OK)
        return rc;
    rc = cfg_depth_check(name, yaml, len);
    if (rc != FF_OK)
        return rc;
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return ff_error(FF_ENOMEM, "%s: cannot initialise the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = ff_error(FF_ECONFIG, "%s:%zu:%zu: YAML syntax error: %s", name,
                      parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                      parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        return rc;
    }
    cfg_ctx c = {name, &doc};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        /* An empty file is an empty mapping: only required keys can fail. */
        for (const ff_cfg_field *f = schema; f->key; f++)
            if (f->required) {
                rc = ff_error(FF_ECONFIG, "%s:1:1: %s: required key is missing (the file is empty)",
                              name, f->key);
                break;
            }
    } else {
        rc = apply_mapping(&c, root, schema, out, "");
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int ff_cfg_load(const char *path, const ff_cfg_field *schema, void *out)
{
    char *buf;
    size_t len;
    int rc = ff_file_read_all(path, FF_CFG_MAX_FILE, &buf, &len);
    if (rc != FF_OK) {
        int drc = ff_cfg_defaults(schema, out);
        return drc != FF_OK ? drc : rc;
    }
    rc = ff_cfg_load_str(path, buf, len, schema, out);
    free(buf);
    return rc;
}

void ff_cfg_free(const ff_cfg_field *schema, void *out)
{
    for (const ff_cfg_field *f = schema; f->key; f++) {
        void *p = field_ptr(out, f);
        if (f->type == FF_CFG_SECTION) {
            ff_cfg_free(f->sub, p);
        } else if (f->type == FF_CFG_STRLIST) {
            ff_cfg_strlist *sl = p;
            for (size_t i = 0; i < sl->count; i++)
                FF_FREE(sl->items[i]);
            sl->count = 0;
        } else if (f->type == FF_CFG_LIST) {
            ff_cfg_list *l = p;
            for (size_t i = 0; l->items && i < l->count; i++)
                ff_cfg_free(f->sub, (uint8_t *)l->items + i * f->size);
            FF_FREE(l->items);
            l->count = 0;
        }
    }
}

void ff_cfg_describe(FILE *out, const ff_cfg_field *schema, int indent)
{
    for (const ff_cfg_field *f = schema; f->key; f++) {
        fprintf(out, "%*s%s: %s%s", indent, "", f->key, type_name(f->type),
                f->required ? ", required" : "");
        if (f->def)
            fprintf(out, ", default %s", f->def);
        if (has_range(f))
            fprintf(out, ", range [%g, %g]", f->min, f->max);
        if (f->type == FF_CFG_ENUM) {
            fprintf(out, " (");
            for (int i = 0; f->choices[i]; i++)
                fprintf(out, "%s%s", i ? "|" : "", f->choices[i]);
            fprintf(out, ")");
        }
        fprintf(out, "%s%s\n", f->help ? " — " : "", f->help ? f->help : "");
        if (f->type == FF_CFG_SECTION || (f->type == FF_CFG_LIST && f->sub))
            ff_cfg_describe(out, f->sub, indent + 2);
    }
}

/* The line prefix ("  - ") of a block-sequence item at byte index at of text. */
static size_t line_start(const char *text, size_t at)
{
    while (at > 0 && text[at - 1] != '\n')
        at--;
    return at;
}

static yaml_node_t *child(yaml_document_t *doc, yaml_node_t *map, const char *key, size_t klen,
                          yaml_node_t **key_node);

/* The scalar that identifies a list item: the item itself, or its `field` when items are
 * mappings (NULL when it has none). */
static const char *item_id(yaml_document_t *doc, yaml_node_t *v, const char *field)
{
    if (!field)
        return v->type == YAML_SCALAR_NODE ? scalar(v) : NULL;
    yaml_node_t *kn = NULL;
    yaml_node_t *f = child(doc, v, field, strlen(field), &kn);
    return f && f->type == YAML_SCALAR_NODE ? scalar(f) : NULL;
}

/* Where a block item's text ends: its last scalar (a block mapping's own end mark lies at the
 * next token, past any comment lines that follow it). */
static size_t item_end(yaml_document_t *doc, yaml_node_t *v)
{
    while (v->type == YAML_MAPPING_NODE && v->data.mapping.style == YAML_BLOCK_MAPPING_STYLE &&
           v->data.mapping.pairs.top > v->data.mapping.pairs.start)
        v = yaml_document_get_node(doc, (v->data.mapping.pairs.top - 1)->value);
    while (v->type == YAML_SEQUENCE_NODE && v->data.sequence.style == YAML_BLOCK_SEQUENCE_STYLE &&
           v->data.sequence.items.top > v->data.sequence.items.start)
        v = yaml_document_get_node(doc, *(v->data.sequence.items.top - 1));
    return v->end_mark.index;
}

/* The new item's text, written into f: block style at column col (the item's own lines after
 * the first are indented to it), or flow style. */
static void item_text(FILE *f, const char *field, const char *value, const char *more, int flow,
                      size_t col)
{
    if (!field)
        fprintf(f, "%s", value);
    else if (flow)
        fprintf(f, "{%s: %s%s%s}", field, value, more ? ", " : "", more ? more : "");
    else
        fprintf(f, "%s: %s%s%*s%s", field, value, more ? "\n" : "", more ? (int)col : 0, "",
                more ? more : "");
}

int ff_cfg_list_add(const char *path, const char *key, const char *field, const char *value,
                    const char *more, int *added)
{
    *added = 0;
    char *text = NULL;
    size_t len = 0;
    int rc = ff_file_read_all(path, FF_CFG_MAX_FILE, &text, &len);
    if (rc != FF_OK)
        return rc;
    rc = cfg_depth_check(path, text, len);
    if (rc != FF_OK) {
        free(text);
        return rc;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        free(text);
        return ff_error(FF_ENOMEM, "%s: cannot initialise the YAML parser", path);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = ff_error(FF_ECONFIG, "%s:%zu:%zu: YAML syntax error: %s", path,
                      parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                      parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        free(text);
        return rc;
    }
    cfg_ctx c = {path, &doc};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *seq = NULL;
    if (root && root->type != YAML_MAPPING_NODE)
        rc = node_error(&c, root, "", "expected a mapping");
    for (yaml_node_pair_t *p = root && rc == FF_OK ? root->data.mapping.pairs.start : NULL;
         p && p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(scalar(k), key) == 0)
            seq = yaml_document_get_node(&doc, p->value);
    }
    /* The edit is textual so the file's comments and layout stay as the site wrote them. */
    char *out = NULL;
    size_t olen = 0;
    FILE *f = rc == FF_OK ? open_memstream(&out, &olen) : NULL;
    if (rc == FF_OK && !f)
        rc = ff_error(FF_ENOMEM, "out of memory");
    if (rc == FF_OK && seq && seq->type != YAML_SEQUENCE_NODE &&
        !(seq->type == YAML_SCALAR_NODE && scalar(seq)[0] == '\0' && !is_quoted(seq)))
        rc = node_error(&c, seq, key, "expected a list to add '%s' to", value);
    if (rc == FF_OK && seq && seq->type == YAML_SEQUENCE_NODE) {
        yaml_node_item_t *it = seq->data.sequence.items.start;
        size_t n = (size_t)(seq->data.sequence.items.top - it);
        int listed = 0;
        for (size_t i = 0; i < n; i++) {
            const char *id = item_id(&doc, yaml_document_get_node(&doc, it[i]), field);
            listed |= id && strcmp(id, value) == 0;
        }
        if (listed) {
            /* nothing to write */
        } else if (seq->data.sequence.style == YAML_FLOW_SEQUENCE_STYLE) {
            size_t close = seq->end_mark.index - 1; /* the ']' */
            fprintf(f, "%.*s%s", (int)close, text, n ? ", " : "");
            item_text(f, field, value, more, 1, 0);
            fprintf(f, "%s", text + close);
            *added = 1;
        } else if (n) {
            yaml_node_t *last = yaml_document_get_node(&doc, it[n - 1]);
            size_t ls = line_start(text, last->start_mark.index);
            size_t eol = item_end(&doc, last);
            while (eol < len && text[eol] != '\n')
                eol++;
            fprintf(f, "%.*s\n%.*s", (int)eol, text, (int)(last->start_mark.index - ls), text + ls);
            item_text(f, field, value, more, 0, last->start_mark.index - ls);
            fprintf(f, "%s", eol < len ? text + eol : "\n");
            *added = 1;
        }
    } else if (rc == FF_OK) {
        /* `key:` with no value (the list goes on the next lines), or no key at all */
        size_t eol = seq ? seq->end_mark.index : len;
        while (eol < len && text[eol] != '\n')
            eol++;
        fprintf(f, "%.*s%s", (int)eol, text, eol && text[eol - 1] != '\n' ? "\n" : "");
        if (!seq)
            fprintf(f, "%s:\n", key);
        fprintf(f, "  - ");
        item_text(f, field, value, more, 0, 4);
        fprintf(f, "%s", eol < len ? text + eol : "\n");
        *added = 1;
    }
    if (f)
        fclose(f);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    struct stat sb;
    if (rc == FF_OK && *added && stat(path, &sb) != 0)
        rc = ff_error(FF_EIO, "%s: %s", path, strerror(errno));
    if (rc == FF_OK && *added)
        rc = ff_file_write_atomic(path, out, olen, (unsigned)(sb.st_mode & 07777));
    free(out);
    free(text);
    return rc;
}

int ff_cfg_strlist_add(const char *path, const char *key, const char *value, int *added)
{
    return ff_cfg_list_add(path, key, NULL, value, NULL, added);
}

/* ---- where a key sits: cross-field errors still name FILE:LINE:COL ---------------- */

static yaml_node_t *child(yaml_document_t *doc, yaml_node_t *map, const char *key, size_t klen,
                          yaml_node_t **key_node)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == klen &&
            memcmp(k->data.scalar.value, key, klen) == 0) {
            *key_node = k;
            return yaml_document_get_node(doc, p->value);
        }
    }
    return NULL;
}

void ff_cfg_key_place(const char *yaml, size_t len, const char *path, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return;
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_parser_delete(&parser);
        return;
    }
    yaml_node_t *node = yaml_document_get_root_node(&doc);
    const char *p = path;
    while (node && *p) {
        size_t klen = strcspn(p, ".[");
        yaml_node_t *key = NULL;
        node = child(&doc, node, p, klen, &key);
        if (!key)
            break;
        *line = key->start_mark.line + 1;
        *col = key->start_mark.column + 1;
        p += klen;
        while (node && *p == '[') {
            long i = strtol(p + 1, NULL, 10);
            p = strchr(p, ']');
            if (!p || node->type != YAML_SEQUENCE_NODE ||
                i >= node->data.sequence.items.top - node->data.sequence.items.start) {
                node = NULL;
                break;
            }
            node = yaml_document_get_node(&doc, node->data.sequence.items.start[i]);
            p++;
            if (node) {
                *line = node->start_mark.line + 1;
                *col = node->start_mark.column + 1;
            }
        }
        if (!p)
            break;
        if (*p == '.')
            p++;
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

int ff_cfg_error_in(int code, const char *name, const char *yaml, size_t len, const char *path,
                    const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t line = 1, col = 1;
    if (yaml)
        ff_cfg_key_place(yaml, len, path, &line, &col);
    return ff_error(code, "%s:%zu:%zu: %s: %s", name, line, col, path, what);
}

int ff_cfg_error_at(int code, const char *file, const char *path, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char *text = NULL;
    size_t len = 0;
    if (ff_file_read_all(file, FF_CFG_MAX_FILE, &text, &len) != FF_OK)
        ff_error_clear();
    int rc = ff_cfg_error_in(code, file, text, len, path, "%s", what);
    free(text);
    return rc;
}

void ff_cfg_path_resolve(const char *config_path, char *p, size_t n)
{
    if (!p[0] || p[0] == '/')
        return;
    const char *slash = strrchr(config_path, '/');
    if (!slash)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%.*s/%s", (int)(slash - config_path), config_path, p);
    ff_strlcpy(p, tmp, n);
}
