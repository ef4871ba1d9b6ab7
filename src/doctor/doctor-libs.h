/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * corosync's client libraries and libpcap, loaded with dlopen() at first use.
 * Only `airlock doctor --local` (live facts) and `--capture` need them, so
 * the airlock command does not link them: every other subcommand starts
 * without loading them and their own dependencies (libqb, libdbus). The
 * headers still give the types: each pointer has the exact type of the
 * function it stands for.
 */
#include <corosync/cfg.h>
#include <corosync/cmap.h>
#include <corosync/quorum.h>
#include <corosync/votequorum.h>
#include <pcap/pcap.h>
#include <stddef.h>

#define DOCTOR_LIB_FN(f) __typeof__(f) *f

typedef struct {
        DOCTOR_LIB_FN(cmap_initialize);
        DOCTOR_LIB_FN(cmap_finalize);
        DOCTOR_LIB_FN(cmap_get_string);
        DOCTOR_LIB_FN(cmap_get_uint32);
        DOCTOR_LIB_FN(cmap_get_uint64);
        DOCTOR_LIB_FN(cmap_iter_init);
        DOCTOR_LIB_FN(cmap_iter_next);
        DOCTOR_LIB_FN(cmap_iter_finalize);
        DOCTOR_LIB_FN(quorum_initialize);
        DOCTOR_LIB_FN(quorum_finalize);
        DOCTOR_LIB_FN(quorum_context_set);
        DOCTOR_LIB_FN(quorum_context_get);
        DOCTOR_LIB_FN(quorum_getquorate);
        DOCTOR_LIB_FN(quorum_trackstart);
        DOCTOR_LIB_FN(quorum_dispatch);
        DOCTOR_LIB_FN(votequorum_initialize);
        DOCTOR_LIB_FN(votequorum_getinfo);
        DOCTOR_LIB_FN(votequorum_finalize);
        DOCTOR_LIB_FN(corosync_cfg_initialize);
        DOCTOR_LIB_FN(corosync_cfg_node_status_get);
        DOCTOR_LIB_FN(corosync_cfg_finalize);
} DoctorCorosyncLibs;

typedef struct {
        DOCTOR_LIB_FN(pcap_create);
        DOCTOR_LIB_FN(pcap_set_snaplen);
        DOCTOR_LIB_FN(pcap_set_promisc);
        DOCTOR_LIB_FN(pcap_set_timeout);
        DOCTOR_LIB_FN(pcap_set_immediate_mode);
        DOCTOR_LIB_FN(pcap_activate);
        DOCTOR_LIB_FN(pcap_setdirection);
        DOCTOR_LIB_FN(pcap_compile);
        DOCTOR_LIB_FN(pcap_setfilter);
        DOCTOR_LIB_FN(pcap_freecode);
        DOCTOR_LIB_FN(pcap_setnonblock);
        DOCTOR_LIB_FN(pcap_get_selectable_fd);
        DOCTOR_LIB_FN(pcap_datalink);
        DOCTOR_LIB_FN(pcap_dispatch);
        DOCTOR_LIB_FN(pcap_geterr);
        DOCTOR_LIB_FN(pcap_close);
} DoctorPcapLib;

/* One library: its soname, the Debian package that ships it. */
typedef struct {
        const char *soname;
        const char *package;
} DoctorLib;

/* One function: its name and where its pointer goes in the table. */
typedef struct {
        const char *name;
        size_t offset;
} DoctorSym;

/*
 * Opens each of libs (RTLD_NOW | RTLD_LOCAL, never closed) and fills the
 * table from syms, each looked up in every opened library in turn. what
 * names the set for the message ("corosync's client libraries"). Returns 0,
 * or -ENOENT with why filled ("... are not installed (SONAME: dlerror) —
 * apt-get install PACKAGES") when a library cannot be loaded, or -ENOSYS
 * with why filled when a function is missing; the table is then left
 * unusable and the caller must not use it. Exposed for the unit tests.
 */
int doctor_libs_load(const char *what, const DoctorLib *libs, size_t n_libs, const DoctorSym *syms,
                     size_t n_syms, void *table, char *why, size_t why_size);

/*
 * The loaded tables, loading at the first call (thread-safe, once per
 * process). NULL when loading failed; why then holds the reason, the same
 * on every call.
 */
const DoctorCorosyncLibs *doctor_corosync_libs(char *why, size_t why_size);
const DoctorPcapLib *doctor_pcap_lib(char *why, size_t why_size);
