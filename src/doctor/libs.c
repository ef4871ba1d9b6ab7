/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Loading corosync's client libraries and libpcap at first use (see
 * doctor-libs.h for why). dlopen() searches exactly as the dynamic linker
 * does for a DT_NEEDED entry (same ld.so.cache, same LD_LIBRARY_PATH rules,
 * which ld.so ignores in a secure-execution process), so loading late trusts
 * no library that linking at build time would not have trusted.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/macros.h"
#include "doctor/doctor-libs.h"

int doctor_libs_load(const char *what, const DoctorLib *libs, size_t n_libs, const DoctorSym *syms,
                     size_t n_syms, void *table, char *why, size_t why_size)
{
        void *handles[8];

        if (n_libs > ELEMENTSOF(handles))
                return -E2BIG;
        for (size_t i = 0; i < n_libs; i++) {
                const char *err;

                handles[i] = dlopen(libs[i].soname, RTLD_NOW | RTLD_LOCAL);
                if (handles[i])
                        continue;
                err = dlerror();
                {
                        char pkgs[256] = "";
                        size_t used = 0;

                        for (size_t k = 0; k < n_libs && used < sizeof(pkgs); k++) {
                                int m = snprintf(pkgs + used, sizeof(pkgs) - used, "%s%s",
                                                 k ? " " : "", libs[k].package);
                                if (m < 0)
                                        break;
                                used += (size_t)m;
                        }
                        snprintf(why, why_size, "%s %s not installed (%s: %s) — apt-get install %s",
                                 what, n_libs > 1 ? "are" : "is", libs[i].soname,
                                 err ? err : "cannot be loaded", pkgs);
                }
                /* Loaded libraries stay: their constructors ran, unloading gains nothing. */
                return -ENOENT;
        }
        for (size_t s = 0; s < n_syms; s++) {
                void *p = NULL;

                for (size_t i = 0; i < n_libs && !p; i++) {
                        (void)dlerror();
                        p = dlsym(handles[i], syms[s].name);
                }
                if (!p) {
                        snprintf(why, why_size,
                                 "%s: %s() is missing — the installed version is too old; upgrade "
                                 "%s",
                                 what, syms[s].name, libs[0].package);
                        return -ENOSYS;
                }
                /* POSIX guarantees a function pointer survives the trip through void *. */
                memcpy((char *)table + syms[s].offset, &p, sizeof(p));
        }
        return 0;
}

#define SYM(type, f)                  \
        {                             \
#f, offsetof(type, f) \
        }

static const DoctorLib corosync_libs[] = {
        { "libcmap.so.4", "libcmap4" },
        { "libquorum.so.5", "libquorum5" },
        { "libvotequorum.so.8", "libvotequorum8" },
        { "libcfg.so.7", "libcfg7" },
};

static const DoctorSym corosync_syms[] = {
        SYM(DoctorCorosyncLibs, cmap_initialize),
        SYM(DoctorCorosyncLibs, cmap_finalize),
        SYM(DoctorCorosyncLibs, cmap_get_string),
        SYM(DoctorCorosyncLibs, cmap_get_uint32),
        SYM(DoctorCorosyncLibs, cmap_get_uint64),
        SYM(DoctorCorosyncLibs, cmap_iter_init),
        SYM(DoctorCorosyncLibs, cmap_iter_next),
        SYM(DoctorCorosyncLibs, cmap_iter_finalize),
        SYM(DoctorCorosyncLibs, quorum_initialize),
        SYM(DoctorCorosyncLibs, quorum_finalize),
        SYM(DoctorCorosyncLibs, quorum_context_set),
        SYM(DoctorCorosyncLibs, quorum_context_get),
        SYM(DoctorCorosyncLibs, quorum_getquorate),
        SYM(DoctorCorosyncLibs, quorum_trackstart),
        SYM(DoctorCorosyncLibs, quorum_dispatch),
        SYM(DoctorCorosyncLibs, votequorum_initialize),
        SYM(DoctorCorosyncLibs, votequorum_getinfo),
        SYM(DoctorCorosyncLibs, votequorum_finalize),
        SYM(DoctorCorosyncLibs, corosync_cfg_initialize),
        SYM(DoctorCorosyncLibs, corosync_cfg_node_status_get),
        SYM(DoctorCorosyncLibs, corosync_cfg_finalize),
};

static const DoctorLib pcap_libs[] = {
        { "libpcap.so.0.8", "libpcap0.8" },
};

static const DoctorSym pcap_syms[] = {
        SYM(DoctorPcapLib, pcap_create),
        SYM(DoctorPcapLib, pcap_set_snaplen),
        SYM(DoctorPcapLib, pcap_set_promisc),
        SYM(DoctorPcapLib, pcap_set_timeout),
        SYM(DoctorPcapLib, pcap_set_immediate_mode),
        SYM(DoctorPcapLib, pcap_activate),
        SYM(DoctorPcapLib, pcap_setdirection),
        SYM(DoctorPcapLib, pcap_compile),
        SYM(DoctorPcapLib, pcap_setfilter),
        SYM(DoctorPcapLib, pcap_freecode),
        SYM(DoctorPcapLib, pcap_setnonblock),
        SYM(DoctorPcapLib, pcap_get_selectable_fd),
        SYM(DoctorPcapLib, pcap_datalink),
        SYM(DoctorPcapLib, pcap_dispatch),
        SYM(DoctorPcapLib, pcap_geterr),
        SYM(DoctorPcapLib, pcap_close),
};

static DoctorCorosyncLibs corosync_table;
static char corosync_why[512];
static int corosync_r;
static pthread_once_t corosync_once = PTHREAD_ONCE_INIT;

static void corosync_load(void)
{
        corosync_r = doctor_libs_load("corosync's client libraries", corosync_libs,
                                      ELEMENTSOF(corosync_libs), corosync_syms,
                                      ELEMENTSOF(corosync_syms), &corosync_table, corosync_why,
                                      sizeof(corosync_why));
}

const DoctorCorosyncLibs *doctor_corosync_libs(char *why, size_t why_size)
{
        pthread_once(&corosync_once, corosync_load);
        if (corosync_r < 0) {
                snprintf(why, why_size, "%s", corosync_why);
                return NULL;
        }
        return &corosync_table;
}

static DoctorPcapLib pcap_table;
static char pcap_why[512];
static int pcap_r;
static pthread_once_t pcap_once = PTHREAD_ONCE_INIT;

static void pcap_load(void)
{
        pcap_r = doctor_libs_load("libpcap", pcap_libs, ELEMENTSOF(pcap_libs), pcap_syms,
                                  ELEMENTSOF(pcap_syms), &pcap_table, pcap_why, sizeof(pcap_why));
}

const DoctorPcapLib *doctor_pcap_lib(char *why, size_t why_size)
{
        pthread_once(&pcap_once, pcap_load);
        if (pcap_r < 0) {
                snprintf(why, why_size, "%s", pcap_why);
                return NULL;
        }
        return &pcap_table;
}
