/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "broker/client.h"
#include "broker/proto.h"
#include "common/macros.h"
#include "config.h"

const char *broker_admin_socket_path(void)
{
        const char *e = getenv("AIRLOCK_SOCKET");

        if (!isempty(e))
                return e;
        return AIRLOCK_RUNTIME_DIR "/admin.sock";
}

int broker_connect(const char *path, int *ret_fd)
{
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int broker_call(int fd, json_t *request, json_t **ret)
{
        int r;

        r = proto_write(fd, request);
        if (r < 0)
                return r;
        r = proto_read(fd, ret);
        if (r == 0)
                return -ECONNRESET;
        return r < 0 ? r : 0;
}

int broker_open_session(const char *admin_socket, const char *agent, const char *workspace,
                        const char *profile, int *ret_fd, char **ret_socket,
                        uint64_t *ret_session_id, char *err, size_t err_size)
{
        _cleanup_(json_decrefp) json_t *req = NULL, *reply = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *type, *sock;
        json_t *id;
        char *s;
        int r;

        if (err_size)
                err[0] = '\0';
        r = broker_connect(admin_socket, &fd);
        if (r < 0)
                return r;
        req = json_pack("{s:s, s:s, s:s, s:s}", "type", "open-session", "agent", agent, "workspace",
                        workspace, "profile", profile);
        if (!req)
                return -ENOMEM;
        r = broker_call(fd, req, &reply);
        if (r < 0)
                return r;
        type = json_string_value(json_object_get(reply, "type"));
        if (type && streq(type, "error")) {
                snprintf(err, err_size, "%s",
                         json_string_value(json_object_get(reply, "message")) ?: "refused");
                return -EPERM;
        }
        sock = json_string_value(json_object_get(reply, "socket"));
        id = json_object_get(reply, "session");
        if (!type || !streq(type, "session") || !sock || !json_is_integer(id))
                return -EBADMSG;
        s = strdup(sock);
        if (!s)
                return -ENOMEM;
        *ret_socket = s;
        *ret_session_id = (uint64_t)json_integer_value(id);
        *ret_fd = TAKE_FD(fd);
        return 0;
}
