/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A short, read-only capture of corosync traffic arriving at this host: who
 * sends to UDP 5405. Only packet headers are looked at (snaplen 96: link,
 * IP and UDP headers; knet payloads are encrypted anyway and are never
 * kept). Needs CAP_NET_RAW; without it the capture reports why and the rest
 * of the facts stand. libpcap is loaded at first use (doctor-libs.h); when
 * it is missing the capture reports that, with the package to install.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "doctor/doctor-libs.h"
#include "doctor/doctor.h"

#define SNAPLEN     96
#define MAX_SOURCES 256

typedef struct {
        int linktype;
        json_t *sources; /* address -> packets */
        uint64_t packets;
} Ctx;

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
        Ctx *c = (Ctx *)user;
        size_t off, caplen = h->caplen;
        uint16_t proto;
        char addr[INET6_ADDRSTRLEN] = "";
        json_t *v;

        switch (c->linktype) {
        case DLT_LINUX_SLL: /* cooked v1: 16 bytes, protocol at 14 */
                if (caplen < 16)
                        return;
                off = 16;
                proto = (uint16_t)(bytes[14] << 8 | bytes[15]);
                break;
        case DLT_LINUX_SLL2: /* cooked v2: 20 bytes, protocol at 0 */
                if (caplen < 20)
                        return;
                off = 20;
                proto = (uint16_t)(bytes[0] << 8 | bytes[1]);
                break;
        case DLT_EN10MB:
                if (caplen < 14)
                        return;
                off = 14;
                proto = (uint16_t)(bytes[12] << 8 | bytes[13]);
                break;
        default:
                return;
        }
        if (proto == 0x0800 && caplen >= off + 20)
                inet_ntop(AF_INET, bytes + off + 12, addr, sizeof(addr));
        else if (proto == 0x86DD && caplen >= off + 40)
                inet_ntop(AF_INET6, bytes + off + 8, addr, sizeof(addr));
        else
                return;
        c->packets++;
        v = json_object_get(c->sources, addr);
        if (v)
                json_integer_set(v, json_integer_value(v) + 1);
        else if (json_object_size(c->sources) < MAX_SOURCES)
                json_object_set_new(c->sources, addr, json_integer(1));
}

int doctor_capture_corosync(unsigned seconds, json_t **ret)
{
        char err[PCAP_ERRBUF_SIZE] = "", why[512];
        struct bpf_program prog;
        json_t *j = json_object();
        Ctx c = {};
        const DoctorPcapLib *pc;
        pcap_t *p;
        uint64_t deadline;
        int fd;

        if (!j)
                return -ENOMEM;
        json_object_set_new(j, "seconds", json_integer(seconds));
        json_object_set_new(j, "filter", json_string("udp dst port 5405, incoming"));
        pc = doctor_pcap_lib(why, sizeof(why));
        if (!pc) {
                json_object_set_new(j, "error", json_string(why));
                *ret = j;
                return 0;
        }
        p = pc->pcap_create("any", err);
        if (!p) {
                json_object_set_new(j, "error", json_string(err));
                *ret = j;
                return 0;
        }
        if (pc->pcap_set_snaplen(p, SNAPLEN) != 0 || pc->pcap_set_promisc(p, 0) != 0 ||
            pc->pcap_set_timeout(p, 100) != 0 || pc->pcap_set_immediate_mode(p, 1) != 0 ||
            pc->pcap_activate(p) < 0 || pc->pcap_setdirection(p, PCAP_D_IN) != 0 ||
            pc->pcap_compile(p, &prog, "udp dst port 5405", 1, PCAP_NETMASK_UNKNOWN) != 0) {
                char msg[PCAP_ERRBUF_SIZE + 128];
                snprintf(msg, sizeof(msg), "cannot capture (needs CAP_NET_RAW): %s",
                         pc->pcap_geterr(p));
                json_object_set_new(j, "error", json_string(msg));
                pc->pcap_close(p);
                *ret = j;
                return 0;
        }
        if (pc->pcap_setfilter(p, &prog) != 0 || pc->pcap_setnonblock(p, 1, err) != 0 ||
            (fd = pc->pcap_get_selectable_fd(p)) < 0) {
                json_object_set_new(j, "error", json_string(pc->pcap_geterr(p)));
                pc->pcap_freecode(&prog);
                pc->pcap_close(p);
                *ret = j;
                return 0;
        }
        pc->pcap_freecode(&prog);
        c.linktype = pc->pcap_datalink(p);
        c.sources = json_object();
        if (!c.sources) {
                pc->pcap_close(p);
                json_decref(j);
                return -ENOMEM;
        }
        deadline = now_monotonic_usec() + (uint64_t)seconds * 1000000;
        for (;;) {
                uint64_t now = now_monotonic_usec();
                struct pollfd pfd = { .fd = fd, .events = POLLIN };

                if (now >= deadline)
                        break;
                if (poll(&pfd, 1, (int)((deadline - now) / 1000) + 1) < 0 && errno != EINTR)
                        break;
                if (pc->pcap_dispatch(p, -1, on_packet, (u_char *)&c) < 0)
                        break;
        }
        pc->pcap_close(p);
        json_object_set_new(j, "packets", json_integer((json_int_t)c.packets));
        json_object_set_new(j, "sources", c.sources);
        *ret = j;
        return 0;
}
