/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHA256_HEX_LEN 64

/*
 * SHA-256 of buf via libsodium, written as 64 lowercase hex digits plus NUL
 * into hex (which must hold SHA256_HEX_LEN + 1 bytes). Returns 0 or -EIO if
 * libsodium cannot initialise.
 */
int sha256_hex(const void *buf, size_t len, char hex[SHA256_HEX_LEN + 1]);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *in, size_t n, char *out);
