/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The broker's wire protocol, shared by airlockd and the airlock client.
 *
 * A message is a 4-byte big-endian length followed by that many bytes of
 * one JSON object. The length is checked against PROTO_MAX_MESSAGE before
 * anything is allocated. Requests are decoded strictly against one table per
 * channel and per connection state: an unknown type, an unknown or
 * duplicate field, a wrong type, an over-long string or trailing bytes are
 * errors. Identity never comes from a message: the daemon takes it from
 * SO_PEERCRED and from the socket the message arrived on.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/macros.h"

#define PROTO_MAX_MESSAGE  (1024 * 1024) /* one message, the JSON text */
#define PROTO_MAX_ARGV     256           /* arguments of one command */
#define PROTO_MAX_ARG      8192          /* bytes of one argument */
#define PROTO_MAX_WHY      4096          /* bytes of an agent's or approver's --why */
#define PROTO_MAX_NAME     256           /* host, agent and profile names */
#define PROTO_MAX_PATH     4096          /* cwd, workspace */
#define PROTO_MAX_WAIT_MS  (24ULL * 3600 * 1000)
#define PROTO_OUTPUT_CHUNK 16384 /* bytes of output per "output" message */

/* The channel a connection arrived on; decides which requests exist at all. */
typedef enum {
        PROTO_CHANNEL_ADMIN = 0, /* admin socket: humans outside any sandbox */
        PROTO_CHANNEL_SESSION,   /* a session socket: the agent of that session */
        PROTO_CHANNEL_HOLDER, /* an admin connection that opened a session and now only holds it */
        _PROTO_CHANNEL_MAX,
} ProtoChannel;

typedef enum {
        PROTO_REQ_INVALID = 0,
        PROTO_REQ_OPEN_SESSION,  /* admin: {agent, workspace, profile} */
        PROTO_REQ_LIST,          /* admin: {all} */
        PROTO_REQ_SHOW,          /* admin, session (own requests): {id} */
        PROTO_REQ_APPROVE,       /* admin: {id, digest, why?} */
        PROTO_REQ_DENY,          /* admin: {id, why} */
        PROTO_REQ_WAIT,          /* admin, session (own requests): {id, wait_ms} */
        PROTO_REQ_EXEC,          /* admin (as the calling human), session (as the agent) */
        PROTO_REQ_CLOSE_SESSION, /* holder: {} — ends the session this connection opened */
        _PROTO_REQ_MAX,
} ProtoRequestType;

/*
 * A decoded request. Strings are borrowed from the JSON message the request
 * was decoded from (keep it alive); argv is a new NULL-terminated vector of
 * borrowed strings (free only the vector, with proto_request_done()).
 */
typedef struct {
        ProtoRequestType type;
        uint64_t id;
        uint64_t wait_ms;
        bool all;
        const char **argv; /* exec */
        const char *host;  /* exec; NULL = this host */
        const char *why;   /* exec, approve, deny */
        const char *cwd;   /* exec */
        const char *digest;
        const char *agent;     /* open-session */
        const char *workspace; /* open-session */
        const char *profile;   /* open-session */
} ProtoRequest;

void proto_request_done(ProtoRequest *req);

const char *proto_request_type_to_string(ProtoRequestType t);
const char *proto_channel_to_string(ProtoChannel c);

/*
 * Decodes one request message for a channel. Returns 0 and fills *ret, or
 * -EBADMSG (malformed: wrong or unknown field, bad value) / -EOPNOTSUPP (a
 * type that does not exist on this channel) with a one-line reason in err
 * (always NUL-terminated). On error *ret is left zeroed.
 */
int proto_decode_request(ProtoChannel channel, json_t *msg, ProtoRequest *ret, char *err,
                         size_t err_size);

/*
 * Parses one framed message from a memory buffer (length prefix included),
 * for the fuzzer and tests. Returns 0 and *ret (caller json_decref()s), or
 * -EMSGSIZE (length above the cap), -EBADMSG (length does not match the
 * buffer, not JSON, not an object).
 */
int proto_parse_frame(const uint8_t *buf, size_t size, json_t **ret);

/* Parses the JSON body of a message (no length prefix). Same returns as proto_parse_frame(). */
int proto_parse_body(const char *body, size_t len, json_t **ret);

/*
 * Reads one message from fd (blocking). Returns 1 and *ret on a message, 0 on
 * a clean end of stream before any byte, -EMSGSIZE when the announced length
 * exceeds PROTO_MAX_MESSAGE (the body is not read: the caller must close the
 * connection after replying), -EBADMSG when the body is not a JSON object
 * (the body was consumed: the stream is still in sync), or -errno.
 */
int proto_read(int fd, json_t **ret);

/* Writes one message (never raises SIGPIPE). Returns 0, -EMSGSIZE or -errno. */
int proto_write(int fd, const json_t *msg);

/* Sends {"type":"error","error":code,"message":message}. Returns as proto_write(). */
int proto_write_error(int fd, const char *code, const char *message);

/* Base64 of bytes, as used by "output" messages. New string or NULL. */
char *proto_base64_encode(const void *buf, size_t len);
/* Decodes base64; returns 0 and a new buffer (*ret, *ret_len) or -EBADMSG / -ENOMEM. */
int proto_base64_decode(const char *s, uint8_t **ret, size_t *ret_len);
