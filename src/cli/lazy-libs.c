/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libyaml and libsodium, loaded by the airlock command the first time one
 * of their functions is called, not at every start.
 *
 * Why: airlock is started for every request an agent makes (airlock exec),
 * and most subcommands never parse a policy (libyaml) or hash (libsodium).
 * Loading and relocating both costs about 0.2 ms of every start (measured:
 * an empty program linked with them starts in 0.95 ms, with libjansson only
 * in 0.76 ms). The functions below have the names and prototypes of the
 * libraries' own (their headers are included, so the compiler checks
 * that); being defined here, the linker needs neither library for airlock,
 * and --as-needed leaves them out of its DT_NEEDED list. Each call looks up
 * the real function once (with dlopen/dlsym) and jumps to it. airlockd and
 * the tests link the libraries as usual.
 *
 * These definitions are not exported (airlock is not linked with
 * --export-dynamic), so the libraries, once loaded, still call their own
 * functions, never these.
 *
 * A library that cannot be loaded ends the command with one line saying
 * which package to install (exit 70): the caller cannot go on without it.
 */
#include <dlfcn.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <yaml.h>

#include "cli/cli.h"

typedef struct {
        const char *soname;
        const char *package;
        void *handle;
} LazyLib;

static LazyLib lib_sodium = { "libsodium.so.23", "libsodium23", NULL };
static LazyLib lib_yaml = { "libyaml-0.so.2", "libyaml-0-2", NULL };

static _noreturn_ void lazy_fail(const LazyLib *l, const char *what)
{
        fprintf(stderr, "airlock: cannot load %s (%s) — install it: apt-get install %s\n",
                l->soname, what ? what : "unknown error", l->package);
        exit(EXIT_INTERNAL);
}

/* The address of name in l, loading l first if needed. Thread-safe: dlopen
 * and dlsym are, and a handle or pointer stored twice is the same value. */
static void *lazy_sym(LazyLib *l, const char *name)
{
        void *h = __atomic_load_n(&l->handle, __ATOMIC_ACQUIRE), *f;

        if (!h) {
                h = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL);
                if (!h)
                        lazy_fail(l, dlerror());
                __atomic_store_n(&l->handle, h, __ATOMIC_RELEASE);
        }
        f = dlsym(h, name);
        if (!f)
                lazy_fail(l, dlerror());
        return f;
}

/*
 * One forwarding function: RET NAME(PARAMS) { return real(ARGS); }, with
 * the real function's address cached after the first call.
 */
#define LAZY(lib, ret, name, params, args)                                 \
        ret name params                                                    \
        {                                                                  \
                static ret(*real) params;                                  \
                ret(*f) params = __atomic_load_n(&real, __ATOMIC_ACQUIRE); \
                if (!f) {                                                  \
                        *(void **)&f = lazy_sym(&lib, #name);              \
                        __atomic_store_n(&real, f, __ATOMIC_RELEASE);      \
                }                                                          \
                return f args;                                             \
        }

#define LAZY_VOID(lib, name, params, args)                                  \
        void name params                                                    \
        {                                                                   \
                static void(*real) params;                                  \
                void(*f) params = __atomic_load_n(&real, __ATOMIC_ACQUIRE); \
                if (!f) {                                                   \
                        *(void **)&f = lazy_sym(&lib, #name);               \
                        __atomic_store_n(&real, f, __ATOMIC_RELEASE);       \
                }                                                           \
                f args;                                                     \
        }

/* libsodium: every function the modules linked into airlock call. */
LAZY(lib_sodium, int, sodium_init, (void), ())
LAZY_VOID(lib_sodium, randombytes_buf, (void *const buf, const size_t size), (buf, size))
LAZY(lib_sodium, int, sodium_memcmp, (const void *const b1_, const void *const b2_, size_t len),
     (b1_, b2_, len))
LAZY(lib_sodium, int, crypto_hash_sha256,
     (unsigned char *out, const unsigned char *in, unsigned long long inlen), (out, in, inlen))
LAZY(lib_sodium, int, crypto_hash_sha256_init, (crypto_hash_sha256_state * state), (state))
LAZY(lib_sodium, int, crypto_hash_sha256_update,
     (crypto_hash_sha256_state * state, const unsigned char *in, unsigned long long inlen),
     (state, in, inlen))
LAZY(lib_sodium, int, crypto_hash_sha256_final,
     (crypto_hash_sha256_state * state, unsigned char *out), (state, out))
LAZY(lib_sodium, int, crypto_generichash,
     (unsigned char *out, size_t outlen, const unsigned char *in, unsigned long long inlen,
      const unsigned char *key, size_t keylen),
     (out, outlen, in, inlen, key, keylen))
LAZY(lib_sodium, int, crypto_auth_hmacsha256,
     (unsigned char *out, const unsigned char *in, unsigned long long inlen,
      const unsigned char *k),
     (out, in, inlen, k))
LAZY(lib_sodium, size_t, sodium_base64_encoded_len, (const size_t bin_len, const int variant),
     (bin_len, variant))
LAZY(lib_sodium, char *, sodium_bin2base64,
     (char *const b64, const size_t b64_maxlen, const unsigned char *const bin,
      const size_t bin_len, const int variant),
     (b64, b64_maxlen, bin, bin_len, variant))
LAZY(lib_sodium, int, sodium_base642bin,
     (unsigned char *const bin, const size_t bin_maxlen, const char *const b64,
      const size_t b64_len, const char *const ignore, size_t *const bin_len,
      const char **const b64_end, const int variant),
     (bin, bin_maxlen, b64, b64_len, ignore, bin_len, b64_end, variant))

/* libyaml: the event API the policy loader uses. */
LAZY(lib_yaml, int, yaml_parser_initialize, (yaml_parser_t * parser), (parser))
LAZY_VOID(lib_yaml, yaml_parser_delete, (yaml_parser_t * parser), (parser))
LAZY_VOID(lib_yaml, yaml_parser_set_input_string,
          (yaml_parser_t * parser, const unsigned char *input, size_t size), (parser, input, size))
LAZY(lib_yaml, int, yaml_parser_parse, (yaml_parser_t * parser, yaml_event_t *event),
     (parser, event))
LAZY_VOID(lib_yaml, yaml_event_delete, (yaml_event_t * event), (event))
