/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Cluster-key fingerprints: a keyed BLAKE2b-128 (libsodium's generichash)
 * whose key is a fixed, public, per-purpose context. Equal keys give equal
 * fingerprints on every host, so a copied key shows up across the
 * inventory; a 128-bit digest of a 256-byte random key reveals nothing
 * usable about it, and the context keeps these digests from matching any
 * other hash of the same bytes.
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "common/hash.h"
#include "doctor/doctor.h"

/* The fixed per-purpose context: fingerprints are comparable across hosts
 * and useless for anything else (a different context gives unrelated hashes). */
static const char fingerprint_context[crypto_generichash_KEYBYTES] =
        "airlock-doctor/authkey-fpr/v1...";

int doctor_fingerprint(const void *buf, size_t len, char out[DOCTOR_FINGERPRINT_LEN])
{
        uint8_t h[16];

        if (sodium_init() < 0)
                return -EIO;
        if (crypto_generichash(h, sizeof(h), buf, len, (const uint8_t *)fingerprint_context,
                               sizeof(fingerprint_context)) != 0)
                return -EIO;
        memcpy(out, DOCTOR_FINGERPRINT_PREFIX, strlen(DOCTOR_FINGERPRINT_PREFIX));
        hex_encode(h, sizeof(h), out + strlen(DOCTOR_FINGERPRINT_PREFIX));
        return 0;
}
