/* Export of the log for hospital audit systems: a FHIR R4 Bundle of AuditEvent resources
 * following the IHE Basic Audit Log Patterns (who, what, when, outcome; only hashes, site
 * names and settings, never patient data), or CSV for spreadsheets. */
#include "audit_internal.h"

#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DCM "http://dicom.nema.org/resources/ontology/DCM"
#define FF_EVENT_SYSTEM "urn:fedfuse:audit-event"
#define FF_LOG_SYSTEM "urn:fedfuse:audit-log-entry"

/* Events that record something a site or the round failed to do: minor failure (4). */
static int is_failure(const char *ev)
{
    return strcmp(ev, "refusal") == 0 || strcmp(ev, "decline") == 0 || strcmp(ev, "quorum_fail") == 0;
}

/* IHE BALP: an application activity of the coordinator; start/stop for the run. */
static json_t *subtype_coding(const char *ev)
{
    json_t *arr = json_array();
    if (strcmp(ev, "run_start") == 0)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "system", DCM, "code", "110120",
                                             "display", "Application Start"));
    else if (strcmp(ev, "run_end") == 0)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "system", DCM, "code", "110121",
                                             "display", "Application Stop"));
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "system", FF_EVENT_SYSTEM, "code", ev,
                                         "display", ev));
    return arr;
}

/* The entry's scalar fields (hashes, rounds, names, settings) as BALP entity details; the
 * certificate and the privacy ledgers are left out (they stay in the log). */
static json_t *details(json_t *data)
{
    json_t *arr = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(data, k, v)
    {
        if (strcmp(k, "audit_cert") == 0 || strstr(k, "ledger"))
            continue;
        char *text = json_is_string(v) ? strdup(json_string_value(v))
                                       : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text && text[0])
            json_array_append_new(arr, json_pack("{s:s, s:s}", "type", k, "valueString", text));
        free(text);
    }
    return arr;
}

static json_t *audit_event(json_t *e, const char *coordinator, size_t i)
{
    const char *ev = json_string_value(json_object_get(e, "event"));
    json_t *data = json_object_get(e, "data");
    const char *ts = json_string_value(json_object_get(e, "ts"));
    const char *site = json_string_value(json_object_get(data, "site"));
    json_int_t seq = json_integer_value(json_object_get(e, "seq"));
    char seqs[32];
    snprintf(seqs, sizeof seqs, "%lld", (long long)seq);
    json_t *agents = json_array();
    json_array_append_new(agents,
                          json_pack("{s:{s:[{s:s, s:s, s:s}]}, s:{s:s, s:{s:s, s:s}}, s:b}", "type",
                                    "coding", "system", DCM, "code", "110150", "display",
                                    "Application", "who", "display", coordinator, "identifier",
                                    "system", "urn:fedfuse:certificate-subject", "value", coordinator,
                                    "requestor", 0));
    if (site)
        json_array_append_new(agents,
                              json_pack("{s:{s:[{s:s, s:s, s:s}]}, s:{s:s, s:{s:s, s:s}}, s:b}", "type",
                                        "coding", "system", DCM, "code", "110153", "display",
                                        "Source Role ID", "who", "display", site, "identifier",
                                        "system", "urn:fedfuse:site", "value", site, "requestor", 1));
    json_t *entity = json_pack("{s:{s:{s:s, s:s}}, s:{s:s, s:s, s:s}, s:o}", "what", "identifier",
                               "system", FF_LOG_SYSTEM, "value", seqs, "type", "system",
                               "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code", "2",
                               "display", "System Object", "detail", details(data));
    char desc[160];
    snprintf(desc, sizeof desc, "fedfuse audit log entry %lld: %s", (long long)seq, ev);
    char id[48];
    snprintf(id, sizeof id, "fedfuse-audit-%zu", i);
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:o, s:s, s:s, s:s, s:s, s:o, s:{s:s, s:{s:s}, "
                     "s:[{s:s, s:s, s:s}]}, s:[o]}",
                     "resourceType", "AuditEvent", "id", id, "type", "system", DCM, "code", "110100",
                     "display", "Application Activity", "subtype", subtype_coding(ev), "action", "E",
                     "recorded", ts, "outcome", is_failure(ev) ? "4" : "0", "outcomeDesc", desc,
                     "agent", agents, "source", "site", "fedfuse coordinator", "observer", "display",
                     coordinator, "type", "system",
                     "http://terminology.hl7.org/CodeSystem/security-source-type", "code", "4",
                     "display", "Application Server", "entity", entity);
}

static int csv_put(FILE *f, const char *s, int last)
{
    csv_fwrite(f, s ? s : "", s ? strlen(s) : 0);
    return fputc(last ? '\n' : ',', f);
}

static json_t *read_entries(const char *log_path, char *coordinator, size_t cap)
{
    char *buf;
    size_t len;
    if (ff_file_read_all(log_path, (size_t)1 << 34, &buf, &len) != FF_OK)
        return NULL;
    json_t *all = json_array();
    snprintf(coordinator, cap, "coordinator");
    for (size_t start = 0; start < len;) {
        const char *nl = memchr(buf + start, '\n', len - start);
        size_t n = nl ? (size_t)(nl - (buf + start)) : len - start;
        json_t *e = json_loadb(buf + start, n, JSON_REJECT_DUPLICATES, NULL);
        if (json_is_object(e) && json_is_string(json_object_get(e, "event")) &&
            json_is_object(json_object_get(e, "data")) && json_is_string(json_object_get(e, "ts")))
            json_array_append(all, e);
        const char *pem = json_string_value(json_object_get(json_object_get(e, "data"), "audit_cert"));
        X509 *x = pem ? au_cert_from_pem(pem) : NULL;
        if (x)
            X509_NAME_oneline(X509_get_subject_name(x), coordinator, (int)cap);
        X509_free(x);
        json_decref(e);
        start += n + 1;
    }
    free(buf);
    return all;
}

int ff_audit_export(const char *log_path, const char *format, const char *out_path)
{
    int fhir = strcmp(format, "fhir") == 0;
    if (!fhir && strcmp(format, "csv") != 0)
        return ff_error(FF_EINVAL, "--format: '%s' is not fhir or csv", format);
    char coordinator[160];
    json_t *all = read_entries(log_path, coordinator, sizeof coordinator);
    if (!all)
        return ff_error_prefix(FF_EIO, "audit export: ");
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    if (!f) {
        json_decref(all);
        return ff_error(FF_ENOMEM, "out of memory");
    }
    size_t i;
    json_t *e;
    if (fhir) {
        json_t *entries = json_array();
        json_array_foreach(all, i, e)
        {
            char url[64];
            snprintf(url, sizeof url, "urn:fedfuse:audit:%zu", i);
            json_array_append_new(entries, json_pack("{s:s, s:o}", "fullUrl", url, "resource",
                                                     audit_event(e, coordinator, i)));
        }
        json_t *last = json_array_get(all, json_array_size(all) - 1);
        json_t *b = json_pack("{s:s, s:s, s:s*, s:o}", "resourceType", "Bundle", "type",
                              "collection", "timestamp", json_string_value(json_object_get(last, "ts")),
                              "entry", entries);
        json_dumpf(b, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', f);
        json_decref(b);
    } else {
        fputs("seq,ts,event,round,site,outcome,data\n", f);
        json_array_foreach(all, i, e)
        {
            json_t *d = json_deep_copy(json_object_get(e, "data"));
            json_object_del(d, "audit_cert");
            json_object_del(d, "record_ledger");
            json_object_del(d, "client_ledger");
            const char *ev = json_string_value(json_object_get(e, "event"));
            char seq[32], round[32] = "";
            snprintf(seq, sizeof seq, "%lld", (long long)json_integer_value(json_object_get(e, "seq")));
            if (json_is_integer(json_object_get(d, "round")))
                snprintf(round, sizeof round, "%lld", (long long)json_integer_value(json_object_get(d, "round")));
            char *dj = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
            csv_put(f, seq, 0);
            csv_put(f, json_string_value(json_object_get(e, "ts")), 0);
            csv_put(f, ev, 0);
            csv_put(f, round, 0);
            csv_put(f, json_string_value(json_object_get(d, "site")), 0);
            csv_put(f, is_failure(ev) ? "minor failure" : "success", 0);
            csv_put(f, dj, 1);
            free(dj);
            json_decref(d);
        }
    }
    fclose(f);
    int rc = ff_file_write_atomic(out_path, text, tlen, 0644);
    free(text);
    json_decref(all);
    return rc;
}
