/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Feeds bytes to the broker's message decoder as airlockd sees them: a
 * length-prefixed frame, then the strict decode against each channel's
 * request table. Anything may be rejected; nothing may crash, leak or read
 * out of bounds, and an accepted request must be internally consistent.
 */
#include <stdint.h>
#include <stdlib.h>

#include "broker/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_t *msg = NULL;

        if (proto_parse_frame(data, size, &msg) < 0) {
                /* also try the bytes as a bare body, to reach the decoder more often */
                if (proto_parse_body((const char *)data, size, &msg) < 0)
                        return 0;
        }
        for (int ch = 0; ch < _PROTO_CHANNEL_MAX; ch++) {
                ProtoRequest q;
                char err[256];

                if (proto_decode_request((ProtoChannel)ch, msg, &q, err, sizeof(err)) < 0) {
                        if (err[0] == '\0')
                                abort(); /* every rejection says why */
                        continue;
                }
                if (q.type == PROTO_REQ_INVALID || q.type >= _PROTO_REQ_MAX)
                        abort();
                if (q.type == PROTO_REQ_EXEC && (!q.argv || !q.argv[0] || !q.cwd))
                        abort();
                if ((q.type == PROTO_REQ_APPROVE || q.type == PROTO_REQ_DENY) &&
                    ch != PROTO_CHANNEL_ADMIN)
                        abort(); /* verdicts exist only on the admin channel */
                proto_request_done(&q);
        }
        json_decref(msg);
        return 0;
}
