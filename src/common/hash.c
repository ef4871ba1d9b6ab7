/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <sodium.h>

#include "common/hash.h"

void hex_encode(const uint8_t *in, size_t n, char *out)
{
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 0xf];
        }
        out[2 * n] = '\0';
}

int sha256_hex(const void *buf, size_t len, char hex[SHA256_HEX_LEN + 1])
{
        uint8_t d[crypto_hash_sha256_BYTES];

        if (sodium_init() < 0)
                return -EIO;
        crypto_hash_sha256(d, buf, len);
        hex_encode(d, sizeof(d), hex);
        return 0;
}
