/* Independent recomputation of the epsilon a privacy entry claims. */
#include "audit_internal.h"

#include <stdlib.h>

#include "ff/privacy.h"

static int ledger_epsilon(const json_t *ledger, double *eps)
{
    *eps = 0;
    if (!ledger || json_is_null(ledger))
        return FF_OK;
    char *text = json_dumps(ledger, JSON_COMPACT);
    if (!text)
        return ff_error(FF_EFORMAT, "privacy entry: ledger is not serialisable");
    ff_privacy_ledger *l = NULL;
    int rc = ff_privacy_ledger_from_json(&l, text, "privacy entry ledger");
    double order;
    if (rc == FF_OK)
        rc = ff_privacy_ledger_epsilon(l, eps, &order);
    ff_privacy_ledger_free(l);
    free(text);
    return rc;
}

int ff_audit_privacy_epsilon(const json_t *d, double *eps_record, double *eps_client)
{
    int rc = ledger_epsilon(json_object_get(d, "record_ledger"), eps_record);
    return rc == FF_OK ? ledger_epsilon(json_object_get(d, "client_ledger"), eps_client) : rc;
}
