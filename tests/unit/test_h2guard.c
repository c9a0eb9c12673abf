/* Unit tests for h2guard's HPACK field counter, on the header blocks of RFC 7541 Appendix C and on
 * the shapes an attacker would send. The frame-level guards are tested with a real client in
 * tests/integration/test_hardening.py. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h2guard.h"

#include "check.h"

static size_t count_hex(const char *hex, size_t max)
{
    uint8_t block[256];
    size_t len = 0;
    for (const char *p = hex; p[0] != '\0' && p[1] != '\0';) {
        if (*p == ' ') {
            ++p;
            continue;
        }
        unsigned byte;
        sscanf(p, "%2x", &byte);
        block[len++] = (uint8_t)byte;
        p += 2;
    }
    return h2guard_count_header_fields(block, len, max);
}

/* RFC 7541 C.3 (no Huffman) and C.4 (Huffman): three requests on one connection, whose fields are
 * indexed, literal with an indexed name, and literal with a new name. */
static void test_rfc7541_requests(void)
{
    CHECK(count_hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", 100) == 4);
    CHECK(count_hex("8286 84be 5808 6e6f 2d63 6163 6865", 100) == 5);
    CHECK(count_hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", 100) == 5);
    CHECK(count_hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", 100) == 4);
    CHECK(count_hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", 100) == 5);
}

/* C.2.2 literal without indexing, C.2.3 never indexed, and a dynamic table size update (no field). */
static void test_other_representations(void)
{
    CHECK(count_hex("040c 2f73 616d 706c 652f 7061 7468", 100) == 1);
    CHECK(count_hex("1008 7061 7373 776f 7264 0673 6563 7265 74", 100) == 1);
    CHECK(count_hex("3fe1 1f 82", 100) == 1); /* size update to 4096 (multi-byte integer), then :method GET */
}

/* Counting stops just past max, so a flood costs no more than max + 1 steps. */
static void test_flood_stops_past_max(void)
{
    static uint8_t flood[200000];
    memset(flood, 0x93, sizeof(flood)); /* static index 19, "accept": one byte per field */
    CHECK(h2guard_count_header_fields(flood, sizeof(flood), 216) == 217);
    CHECK(h2guard_count_header_fields(flood, 216, 216) == 216);
}

/* A block cut short counts the fields it holds whole; libh2o rejects the rest. */
static void test_truncated_blocks(void)
{
    CHECK(count_hex("8286 4008 6e6f", 100) == 2);    /* the name string runs past the end */
    CHECK(count_hex("82 ff", 100) == 1);             /* an integer whose continuation is missing */
    CHECK(count_hex("82 ff ff ff ff ff ff 01", 100) == 1); /* an integer beyond 32 bits */
    CHECK(count_hex("", 100) == 0);
}

/* Random blocks of every length: the counter must stay inside them (AddressSanitizer watches in
 * the sanitizer build, where each block sits alone in its own allocation) and never count more
 * fields than bytes. */
static void test_random_blocks_stay_in_bounds(void)
{
    uint32_t state = 2463534242u; /* xorshift32: the same blocks on every run */
    int within = 1;
    for (int round = 0; round != 20000; ++round) {
        size_t len = (size_t)(round % 64);
        uint8_t *block = malloc(len == 0 ? 1 : len);
        for (size_t i = 0; i != len; ++i) {
            state ^= state << 13, state ^= state >> 17, state ^= state << 5;
            block[i] = (uint8_t)state;
        }
        if (h2guard_count_header_fields(block, len, SIZE_MAX - 1) > len)
            within = 0;
        free(block);
    }
    CHECK(within);
}

int main(void)
{
    test_rfc7541_requests();
    test_other_representations();
    test_flood_stops_past_max();
    test_truncated_blocks();
    test_random_blocks_stay_in_bounds();
    return check_summary();
}
