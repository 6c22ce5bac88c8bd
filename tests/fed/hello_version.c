/* Says Hello to a coordinator as an enrolled site, claiming a given protocol version, and
 * prints the answer: "hello vN: ok (coordinator vM)" or "hello vN: refused: MESSAGE".
 * Exit 0 when accepted, 1 when refused, 2 on a usage or connection error.
 *   fed_hello_version TARGET CA CERT KEY VERSION */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ff/transport.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: fed_hello_version TARGET CA CERT KEY VERSION\n");
        return 2;
    }
    ff_rpc_opts o = {.target = argv[1], .ca = argv[2], .cert = argv[3], .key = argv[4],
                        .server_name = "coordinator", .attempts = 1};
    Fedfuse__HelloRequest q = FEDFUSE__HELLO_REQUEST__INIT;
    q.software_version = "test";
    q.protocol_version = (uint32_t)strtoul(argv[5], NULL, 10);
    int rc = FF_ENET;
    /* the coordinator may still be starting: unreachable is retried on a fresh channel (gRPC
     * can keep a failed sub-channel), an answer is not */
    for (int i = 0; i < 120 && (rc == FF_ENET || rc == FF_ETIMEOUT); i++) {
        ff_rpc *c = NULL;
        if (ff_rpc_new(&c, &o) != FF_OK) {
            fprintf(stderr, "client: %s\n", ff_error_message());
            return 2;
        }
        Fedfuse__HelloReply *r = NULL;
        rc = ff_rpc_hello(c, &q, &r, 10000);
        if (rc == FF_OK)
            printf("hello v%u: ok (coordinator v%u)\n", q.protocol_version, r->protocol_version);
        ff_msg_free(r);
        if (rc != FF_OK)
            printf("hello v%u: %s: %s\n", q.protocol_version,
                   rc == FF_ENET || rc == FF_ETIMEOUT ? "unreachable" : "refused", ff_error_message());
        ff_rpc_free(c);
        if (rc == FF_ENET || rc == FF_ETIMEOUT)
            usleep(250000);
    }
    return rc == FF_OK ? 0 : rc == FF_ENET || rc == FF_ETIMEOUT ? 2 : 1;
}
