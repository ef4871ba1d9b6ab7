/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "broker/proto.h"
#include "common/util.h"

typedef enum {
        F_STRING,
        F_UINT,
        F_BOOL,
        F_ARGV,
} FieldType;

/* One field a request type accepts: where it goes and how large it may be. */
typedef struct {
        const char *name;
        FieldType type;
        bool required;
        uint64_t max; /* bytes for strings and argv elements; value for integers */
        size_t offset;
} FieldSpec;

#define FIELD(n, t, req, m, member)                              \
        {                                                        \
                .name = n, .type = t, .required = req, .max = m, \
                .offset = offsetof(ProtoRequest, member)         \
        }

static const FieldSpec fields_open_session[] = {
        FIELD("agent", F_STRING, true, PROTO_MAX_NAME, agent),
        FIELD("workspace", F_STRING, true, PROTO_MAX_PATH, workspace),
        FIELD("profile", F_STRING, true, PROTO_MAX_NAME, profile),
        {},
};
static const FieldSpec fields_list[] = {
        FIELD("all", F_BOOL, false, 0, all),
        {},
};
static const FieldSpec fields_show[] = {
        FIELD("id", F_UINT, true, INT64_MAX, id),
        {},
};
static const FieldSpec fields_approve[] = {
        FIELD("id", F_UINT, true, INT64_MAX, id),
        FIELD("digest", F_STRING, true, 64, digest),
        FIELD("why", F_STRING, false, PROTO_MAX_WHY, why),
        {},
};
static const FieldSpec fields_deny[] = {
        FIELD("id", F_UINT, true, INT64_MAX, id),
        FIELD("why", F_STRING, true, PROTO_MAX_WHY, why),
        {},
};
static const FieldSpec fields_wait[] = {
        FIELD("id", F_UINT, true, INT64_MAX, id),
        FIELD("wait_ms", F_UINT, true, PROTO_MAX_WAIT_MS, wait_ms),
        {},
};
static const FieldSpec fields_exec[] = {
        FIELD("argv", F_ARGV, true, PROTO_MAX_ARG, argv),
        FIELD("host", F_STRING, false, PROTO_MAX_NAME, host),
        FIELD("why", F_STRING, false, PROTO_MAX_WHY, why),
        FIELD("cwd", F_STRING, true, PROTO_MAX_PATH, cwd),
        FIELD("wait_ms", F_UINT, true, PROTO_MAX_WAIT_MS, wait_ms),
        {},
};
static const FieldSpec fields_none[] = {
        {},
};

typedef struct {
        const char *name;
        ProtoRequestType type;
        const FieldSpec *fields;
} RequestSpec;

/*
 * The request tables, one per channel (in the spirit of OpenSSH's monitor
 * tables): a request type that is not in a channel's table does not exist
 * there. Approving and denying exist only on the admin channel; a session
 * connection (the agent) can only ask, wait for and look at its own requests;
 * an admin connection that opened a session only holds it.
 */
static const RequestSpec table_admin[] = {
        { "open-session", PROTO_REQ_OPEN_SESSION, fields_open_session },
        { "list", PROTO_REQ_LIST, fields_list },
        { "show", PROTO_REQ_SHOW, fields_show },
        { "approve", PROTO_REQ_APPROVE, fields_approve },
        { "deny", PROTO_REQ_DENY, fields_deny },
        { "wait", PROTO_REQ_WAIT, fields_wait },
        { "exec", PROTO_REQ_EXEC, fields_exec },
        {},
};
static const RequestSpec table_session[] = {
        { "exec", PROTO_REQ_EXEC, fields_exec },
        { "wait", PROTO_REQ_WAIT, fields_wait },
        { "show", PROTO_REQ_SHOW, fields_show },
        {},
};
static const RequestSpec table_holder[] = {
        { "close-session", PROTO_REQ_CLOSE_SESSION, fields_none },
        {},
};

static const RequestSpec *const tables[_PROTO_CHANNEL_MAX] = {
        [PROTO_CHANNEL_ADMIN] = table_admin,
        [PROTO_CHANNEL_SESSION] = table_session,
        [PROTO_CHANNEL_HOLDER] = table_holder,
};

const char *proto_channel_to_string(ProtoChannel c)
{
        switch (c) {
        case PROTO_CHANNEL_ADMIN:
                return "admin";
        case PROTO_CHANNEL_SESSION:
                return "session";
        case PROTO_CHANNEL_HOLDER:
                return "session-holder";
        case _PROTO_CHANNEL_MAX:
                break;
        }
        return "unknown";
}

const char *proto_request_type_to_string(ProtoRequestType t)
{
        static const char *const names[_PROTO_REQ_MAX] = {
                [PROTO_REQ_INVALID] = "invalid",
                [PROTO_REQ_OPEN_SESSION] = "open-session",
                [PROTO_REQ_LIST] = "list",
                [PROTO_REQ_SHOW] = "show",
                [PROTO_REQ_APPROVE] = "approve",
                [PROTO_REQ_DENY] = "deny",
                [PROTO_REQ_WAIT] = "wait",
                [PROTO_REQ_EXEC] = "exec",
                [PROTO_REQ_CLOSE_SESSION] = "close-session",
        };
        if ((unsigned)t >= _PROTO_REQ_MAX)
                return "invalid";
        return names[t];
}

void proto_request_done(ProtoRequest *req)
{
        if (!req)
                return;
        free(req->argv);
        *req = (ProtoRequest){};
}

static bool string_is_clean(const char *s, size_t len)
{
        /* jansson already rejects NUL (no JSON_ALLOW_NUL) and invalid UTF-8 */
        return strlen(s) == len;
}

static int decode_field(const FieldSpec *f, json_t *v, ProtoRequest *req, char *err,
                        size_t err_size)
{
        void *dst = (uint8_t *)req + f->offset;

        switch (f->type) {
        case F_STRING: {
                size_t len;

                if (!json_is_string(v)) {
                        snprintf(err, err_size, "field '%s' must be a string", f->name);
                        return -EBADMSG;
                }
                len = json_string_length(v);
                if (len > f->max || !string_is_clean(json_string_value(v), len)) {
                        snprintf(err, err_size, "field '%s' is longer than %llu bytes", f->name,
                                 (unsigned long long)f->max);
                        return -EBADMSG;
                }
                *(const char **)dst = json_string_value(v);
                return 0;
        }
        case F_UINT: {
                json_int_t i;

                if (!json_is_integer(v)) {
                        snprintf(err, err_size, "field '%s' must be an integer", f->name);
                        return -EBADMSG;
                }
                i = json_integer_value(v);
                if (i < 0 || (uint64_t)i > f->max) {
                        snprintf(err, err_size, "field '%s' is out of range (0..%llu)", f->name,
                                 (unsigned long long)f->max);
                        return -EBADMSG;
                }
                *(uint64_t *)dst = (uint64_t)i;
                return 0;
        }
        case F_BOOL:
                if (!json_is_boolean(v)) {
                        snprintf(err, err_size, "field '%s' must be true or false", f->name);
                        return -EBADMSG;
                }
                *(bool *)dst = json_is_true(v);
                return 0;
        case F_ARGV: {
                size_t n = json_array_size(v), i;
                const char **argv;
                json_t *e;

                if (!json_is_array(v) || n == 0 || n > PROTO_MAX_ARGV) {
                        snprintf(err, err_size, "field '%s' must be an array of 1 to %d strings",
                                 f->name, PROTO_MAX_ARGV);
                        return -EBADMSG;
                }
                argv = calloc(n + 1, sizeof(char *));
                if (!argv) {
                        snprintf(err, err_size, "out of memory");
                        return -ENOMEM;
                }
                json_array_foreach(v, i, e)
                {
                        if (!json_is_string(e) || json_string_length(e) > f->max ||
                            !string_is_clean(json_string_value(e), json_string_length(e))) {
                                snprintf(err, err_size,
                                         "field '%s' element %zu must be a string of at most "
                                         "%llu bytes",
                                         f->name, i, (unsigned long long)f->max);
                                free(argv);
                                return -EBADMSG;
                        }
                        argv[i] = json_string_value(e);
                }
                if (argv[0][0] == '\0') {
                        snprintf(err, err_size, "field '%s': the command name is empty", f->name);
                        free(argv);
                        return -EBADMSG;
                }
                *(const char ***)dst = argv;
                return 0;
        }
        }
        snprintf(err, err_size, "internal error: unknown field type");
        return -EINVAL;
}

int proto_decode_request(ProtoChannel channel, json_t *msg, ProtoRequest *ret, char *err,
                         size_t err_size)
{
        ProtoRequest req = {};
        const RequestSpec *spec = NULL;
        const char *type, *key;
        json_t *v, *t;
        int r;

        *ret = (ProtoRequest){};
        err[0] = '\0';
        if ((unsigned)channel >= _PROTO_CHANNEL_MAX) {
                snprintf(err, err_size, "unknown channel");
                return -EINVAL;
        }
        if (!json_is_object(msg)) {
                snprintf(err, err_size, "a message must be a JSON object");
                return -EBADMSG;
        }
        t = json_object_get(msg, "type");
        if (!json_is_string(t)) {
                snprintf(err, err_size, "the message has no string field 'type'");
                return -EBADMSG;
        }
        type = json_string_value(t);
        for (const RequestSpec *s = tables[channel]; s->name; s++)
                if (streq(s->name, type)) {
                        spec = s;
                        break;
                }
        if (!spec) {
                _cleanup_free_ char *esc = escape_for_terminal(type);

                snprintf(err, err_size, "request type '%.64s' does not exist on the %s channel",
                         esc ? esc : "?", proto_channel_to_string(channel));
                return -EOPNOTSUPP;
        }
        req.type = spec->type;

        /* every field present must be known, and be well-formed */
        json_object_foreach(msg, key, v)
        {
                const FieldSpec *f = NULL;

                if (streq(key, "type"))
                        continue;
                for (const FieldSpec *i = spec->fields; i->name; i++)
                        if (streq(i->name, key)) {
                                f = i;
                                break;
                        }
                if (!f) {
                        _cleanup_free_ char *esc = escape_for_terminal(key);

                        snprintf(err, err_size, "unknown field '%.64s' in a '%s' request",
                                 esc ? esc : "?", spec->name);
                        proto_request_done(&req);
                        return -EBADMSG;
                }
                r = decode_field(f, v, &req, err, err_size);
                if (r < 0) {
                        proto_request_done(&req);
                        return r;
                }
        }
        for (const FieldSpec *f = spec->fields; f->name; f++)
                if (f->required && !json_object_get(msg, f->name)) {
                        snprintf(err, err_size, "a '%s' request needs the field '%s'", spec->name,
                                 f->name);
                        proto_request_done(&req);
                        return -EBADMSG;
                }
        *ret = req;
        return 0;
}

int proto_parse_body(const char *body, size_t len, json_t **ret)
{
        json_t *j;
        json_error_t e;

        if (len == 0 || len > PROTO_MAX_MESSAGE)
                return len ? -EMSGSIZE : -EBADMSG;
        /* JSON_REJECT_DUPLICATES: a field given twice is an attempt to confuse, not a request */
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
        if (!j)
                return -EBADMSG;
        if (!json_is_object(j)) {
                json_decref(j);
                return -EBADMSG;
        }
        *ret = j;
        return 0;
}

int proto_parse_frame(const uint8_t *buf, size_t size, json_t **ret)
{
        uint32_t len;

        if (size < 4)
                return -EBADMSG;
        len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
        if (len > PROTO_MAX_MESSAGE)
                return -EMSGSIZE;
        if ((size_t)len != size - 4)
                return -EBADMSG;
        return proto_parse_body((const char *)buf + 4, len, ret);
}

static int read_exact(int fd, void *buf, size_t len, bool eof_ok)
{
        uint8_t *p = buf;
        size_t done = 0;

        while (done < len) {
                ssize_t n = read(fd, p + done, len - done);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return (done == 0 && eof_ok) ? 0 : -ECONNRESET;
                done += (size_t)n;
        }
        return 1;
}

int proto_read(int fd, json_t **ret)
{
        _cleanup_free_ char *body = NULL;
        uint8_t hdr[4];
        uint32_t len;
        int r;

        r = read_exact(fd, hdr, sizeof(hdr), true);
        if (r <= 0)
                return r;
        len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
        /* the cap is checked before anything is allocated */
        if (len > PROTO_MAX_MESSAGE)
                return -EMSGSIZE;
        if (len == 0)
                return -EBADMSG;
        body = malloc(len);
        if (!body)
                return -ENOMEM;
        r = read_exact(fd, body, len, false);
        if (r < 0)
                return r;
        r = proto_parse_body(body, len, ret);
        return r < 0 ? r : 1;
}

int proto_write(int fd, const json_t *msg)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len, done = 0;

        text = json_dumps(msg, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        if (len > PROTO_MAX_MESSAGE)
                return -EMSGSIZE;
        buf = malloc(len + 4);
        if (!buf)
                return -ENOMEM;
        buf[0] = (uint8_t)(len >> 24);
        buf[1] = (uint8_t)(len >> 16);
        buf[2] = (uint8_t)(len >> 8);
        buf[3] = (uint8_t)len;
        memcpy(buf + 4, text, len);
        while (done < len + 4) {
                ssize_t n = send(fd, buf + done, len + 4 - done, MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == ENOTSOCK) {
                                n = write(fd, buf + done, len + 4 - done);
                                if (n < 0 && errno == EINTR)
                                        continue;
                        }
                        if (n < 0)
                                return -errno;
                }
                done += (size_t)n;
        }
        return 0;
}

int proto_write_error(int fd, const char *code, const char *message)
{
        _cleanup_(json_decrefp) json_t *m = NULL;

        m = json_pack("{s:s, s:s, s:s}", "type", "error", "error", code, "message", message);
        if (!m)
                return -ENOMEM;
        return proto_write(fd, m);
}

char *proto_base64_encode(const void *buf, size_t len)
{
        size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
        char *s = malloc(n);

        if (!s)
                return NULL;
        sodium_bin2base64(s, n, buf, len, sodium_base64_VARIANT_ORIGINAL);
        return s;
}

int proto_base64_decode(const char *s, uint8_t **ret, size_t *ret_len)
{
        size_t slen = strlen(s), n = 0;
        uint8_t *b = malloc(slen / 4 * 3 + 3);

        if (!b)
                return -ENOMEM;
        if (sodium_base642bin(b, slen / 4 * 3 + 3, s, slen, NULL, &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0) {
                free(b);
                return -EBADMSG;
        }
        *ret = b;
        *ret_len = n;
        return 0;
}
