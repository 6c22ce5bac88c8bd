/* Finds where a key path ("sampling.count", "stages[1].name") sits in a YAML text, so the
 * cross-field checks that the field table cannot express still report FILE:LINE:COL. */
#include "place.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

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

void coord_key_place(const char *yaml, size_t len, const char *path, size_t *line, size_t *col)
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
