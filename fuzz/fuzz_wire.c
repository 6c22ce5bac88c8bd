/* libFuzzer target: every protobuf message the transport receives goes through protobuf-c's
 * unpack and then ff_msg_validate (string/bytes lengths, enums, repeated counts) before a
 * handler sees it, as in ff_wire_unpack. The first byte picks the message type. */
#include <stddef.h>
#include <stdint.h>

#include "ff/transport.h"

static const ProtobufCMessageDescriptor *const types[] = {
    &fedfuse__hello_request__descriptor,   &fedfuse__hello_reply__descriptor,
    &fedfuse__task_request__descriptor,    &fedfuse__sec_agg_params__descriptor,
    &fedfuse__dp_params__descriptor,       &fedfuse__task__descriptor,
    &fedfuse__download_request__descriptor, &fedfuse__download_header__descriptor,
    &fedfuse__upload_header__descriptor,   &fedfuse__download_part__descriptor,
    &fedfuse__upload_part__descriptor,     &fedfuse__upload_ack__descriptor,
    &fedfuse__eval_submission__descriptor, &fedfuse__ack__descriptor,
    &fedfuse__sec_agg_envelope__descriptor, &fedfuse__status_request__descriptor,
    &fedfuse__counter__descriptor,         &fedfuse__status_reply__descriptor,
    &fedfuse__sec_agg_audit_entry__descriptor, &fedfuse__ddg_params__descriptor,
    &fedfuse__inclusion_proof__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *d = types[data[0] % (sizeof types / sizeof *types)];
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
    if (!m)
        return 0;
    (void)ff_msg_validate(m);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
