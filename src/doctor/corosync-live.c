/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The running corosync's own view, through its client libraries (libqb IPC
 * to the local daemon; nothing goes on the network): cmap for the runtime
 * configuration, quorum for the member list, votequorum for votes, cfg for
 * knet link state. Read-only calls only. The libraries are loaded at first
 * use (doctor-libs.h); without them the runtime facts are reported missing
 * with the package to install, and the rest of the facts stand.
 */
#include <corosync/corotypes.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "doctor/doctor-libs.h"
#include "doctor/doctor.h"

#define MAX_NODELIST 1024

/* The loaded client libraries; set by doctor_corosync_runtime() before any use. */
static const DoctorCorosyncLibs *cs;

static json_t *escaped_string(const char *s)
{
        _cleanup_free_ char *e = escape_for_terminal(s ? s : "");
        return e ? json_string(e) : NULL;
}

static void cmap_facts(cmap_handle_t h, json_t *rt)
{
        char *s = NULL, key[CMAP_KEYNAME_MAXLEN + 1];
        uint64_t u64;
        uint32_t u32;
        cmap_iter_handle_t it;
        cmap_value_types_t type;
        size_t vlen;
        json_t *nodes = json_array(), *rings = json_array();

        if (cs->cmap_get_string(h, "totem.cluster_name", &s) == CS_OK) {
                json_object_set_new(rt, "cluster_name", escaped_string(s));
                free(s);
        }
        if (cs->cmap_get_uint64(h, "totem.config_version", &u64) == CS_OK)
                json_object_set_new(rt, "config_version", json_integer((json_int_t)u64));
        if (cs->cmap_get_string(h, "totem.transport", &s) == CS_OK) {
                json_object_set_new(rt, "transport", escaped_string(s));
                free(s);
        }
        if (cs->cmap_get_uint32(h, "runtime.votequorum.this_node_id", &u32) == CS_OK)
                json_object_set_new(rt, "node_id", json_integer(u32));

        /* nodelist.node.N.{nodeid,name,ring0_addr,...} */
        if (nodes && cs->cmap_iter_init(h, "nodelist.node.", &it) == CS_OK) {
                json_t *cur = NULL;
                long cur_idx = -1;

                while (cs->cmap_iter_next(h, it, key, &vlen, &type) == CS_OK) {
                        char *rest, *field;
                        long idx = strtol(key + strlen("nodelist.node."), &rest, 10);

                        if (*rest != '.' || idx < 0 || idx >= MAX_NODELIST)
                                continue;
                        field = rest + 1;
                        if (idx != cur_idx) {
                                cur = json_object();
                                if (!cur || json_array_append_new(nodes, cur) < 0)
                                        break;
                                cur_idx = idx;
                        }
                        if (streq(field, "nodeid") && cs->cmap_get_uint32(h, key, &u32) == CS_OK)
                                json_object_set_new(cur, "nodeid", json_integer(u32));
                        else if (type == CMAP_VALUETYPE_STRING &&
                                 cs->cmap_get_string(h, key, &s) == CS_OK) {
                                if (streq(field, "name") || strneq(field, "ring", 4))
                                        json_object_set_new(cur, field, escaped_string(s));
                                free(s);
                        }
                }
                cs->cmap_iter_finalize(h, it);
        }
        json_object_set_new(rt, "nodelist", nodes ? nodes : json_array());

        /* The local node's ring addresses: its own nodelist entry. */
        if (json_is_integer(json_object_get(rt, "node_id"))) {
                json_int_t me = json_integer_value(json_object_get(rt, "node_id"));
                size_t i;
                json_t *n;

                json_array_foreach(json_object_get(rt, "nodelist"), i, n)
                {
                        const char *k;
                        json_t *v;

                        if (json_integer_value(json_object_get(n, "nodeid")) != me)
                                continue;
                        json_object_foreach(n, k, v)
                        {
                                if (strneq(k, "ring", 4))
                                        json_array_append(rings, v);
                        }
                }
        }
        json_object_set_new(rt, "ring_addresses", rings ? rings : json_array());
}

typedef struct {
        json_t *members;
        int quorate;
        bool seen;
} QuorumView;

static void quorum_notify(quorum_handle_t handle, uint32_t quorate, uint64_t ring_seq, uint32_t n,
                          uint32_t *list)
{
        QuorumView *v = NULL;

        if (cs->quorum_context_get(handle, (const void **)&v) != CS_OK || !v)
                return;
        v->quorate = (int)quorate;
        v->seen = true;
        for (uint32_t i = 0; i < n && i < MAX_NODELIST; i++)
                json_array_append_new(v->members, json_integer(list[i]));
}

static int quorum_facts(json_t *q, char *why, size_t why_size)
{
        quorum_handle_t h;
        quorum_callbacks_t cb = { .quorum_notify_fn = quorum_notify };
        uint32_t type = 0;
        QuorumView v = { .members = json_array() };
        votequorum_handle_t vh;
        struct votequorum_info info;
        cs_error_t e;

        if (!v.members)
                return -ENOMEM;
        e = cs->quorum_initialize(&h, &cb, &type);
        if (e != CS_OK) {
                json_decref(v.members);
                snprintf(why, why_size, "quorum_initialize: corosync error %d", (int)e);
                return -EIO;
        }
        cs->quorum_context_set(h, &v);
        if (cs->quorum_getquorate(h, &v.quorate) == CS_OK)
                json_object_set_new(q, "quorate", json_boolean(v.quorate));
        if (cs->quorum_trackstart(h, CS_TRACK_CURRENT) == CS_OK)
                cs->quorum_dispatch(h, CS_DISPATCH_ONE);
        cs->quorum_finalize(h);
        if (v.seen) {
                json_object_set_new(q, "quorate", json_boolean(v.quorate));
                json_object_set_new(q, "members", v.members);
        } else
                json_decref(v.members);

        if (cs->votequorum_initialize(&vh, NULL) == CS_OK) {
                if (cs->votequorum_getinfo(vh, 0, &info) == CS_OK) {
                        json_object_set_new(q, "node_votes", json_integer(info.node_votes));
                        json_object_set_new(q, "expected_votes",
                                            json_integer(info.node_expected_votes));
                        json_object_set_new(q, "highest_expected",
                                            json_integer(info.highest_expected));
                        json_object_set_new(q, "total_votes", json_integer(info.total_votes));
                        json_object_set_new(q, "quorum", json_integer(info.quorum));
                        if (!json_object_get(q, "quorate"))
                                json_object_set_new(
                                        q, "quorate",
                                        json_boolean(info.flags & VOTEQUORUM_INFO_QUORATE));
                }
                cs->votequorum_finalize(vh);
        }
        return 0;
}

static void link_facts(json_t *rt)
{
        corosync_cfg_handle_t h;
        json_t *links = json_array(), *n;
        json_int_t local_id = json_integer_value(json_object_get(rt, "node_id"));
        size_t i;

        if (!links)
                return;
        if (cs->corosync_cfg_initialize(&h, NULL) != CS_OK) {
                json_object_set_new(rt, "links_error",
                                    json_string("corosync_cfg_initialize failed"));
                json_decref(links);
                return;
        }
        json_array_foreach(json_object_get(rt, "nodelist"), i, n)
        {
                struct corosync_cfg_node_status_v1 st = {};
                json_int_t id = json_integer_value(json_object_get(n, "nodeid"));
                json_t *node;

                if (id <= 0 || cs->corosync_cfg_node_status_get(h, (unsigned)id, CFG_NODE_STATUS_V1,
                                                                &st) != CS_OK)
                        continue;
                node = json_object();
                if (!node)
                        break;
                json_object_set_new(node, "nodeid", json_integer(id));
                json_object_set_new(node, "reachable", json_boolean(st.reachable));
                json_object_set_new(node, "local", json_boolean(id == local_id));
                for (unsigned l = 0; l < CFG_MAX_LINKS; l++) {
                        json_t *lj;
                        char key[16];

                        if (!st.link_status[l].enabled)
                                continue;
                        lj = json_object();
                        if (!lj)
                                break;
                        st.link_status[l].dst_ipaddr[CFG_MAX_HOST_LEN - 1] = '\0';
                        json_object_set_new(lj, "connected",
                                            json_boolean(st.link_status[l].connected));
                        json_object_set_new(lj, "mtu", json_integer(st.link_status[l].mtu));
                        json_object_set_new(lj, "dst",
                                            escaped_string(st.link_status[l].dst_ipaddr));
                        snprintf(key, sizeof(key), "link%u", l);
                        json_object_set_new(node, key, lj);
                }
                json_array_append_new(links, node);
        }
        cs->corosync_cfg_finalize(h);
        json_object_set_new(rt, "links", links);
}

int doctor_corosync_runtime(json_t **ret, char *why, size_t why_size)
{
        cmap_handle_t h;
        json_t *rt, *q;
        cs_error_t e;

        cs = doctor_corosync_libs(why, why_size);
        if (!cs)
                return -ENOENT;
        e = cs->cmap_initialize(&h);
        if (e != CS_OK) {
                snprintf(why, why_size,
                         "cannot connect to corosync through libcmap (corosync error %d) — is it "
                         "starting or hung?",
                         (int)e);
                return -ECONNREFUSED;
        }
        rt = json_object();
        q = json_object();
        if (!rt || !q) {
                json_decref(rt);
                json_decref(q);
                cs->cmap_finalize(h);
                return -ENOMEM;
        }
        cmap_facts(h, rt);
        cs->cmap_finalize(h);
        if (quorum_facts(q, why, why_size) < 0)
                json_object_set_new(q, "error", json_string(why));
        json_object_set_new(rt, "quorum", q);
        link_facts(rt);
        *ret = rt;
        return 0;
}
