/* libFuzzer target: the audit log verifier reads hostile logs without crashing. */
#include <stdio.h>
#include <unistd.h>

#include "ff/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/ff-fuzz-audit-%d.jsonl", (int)getpid());
    if (ff_file_write_atomic(path, data, size, 0600) != FF_OK)
        return 0;
    ff_audit_verify_opts o = {0};
    ff_audit_summary s;
    ff_audit_findings f;
    if (ff_audit_verify(path, &o, &s, &f) == FF_OK) {
        ff_audit_findings_free(&f);
        ff_audit_summary_free(&s);
    }
    unlink(path);
    return 0;
}
