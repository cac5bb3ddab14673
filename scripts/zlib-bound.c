/* zlib's own CPU on the pages a kdump-compressed file stores (issue 19;
 * docs/PERFORMANCE.md, "Session 15: -c -d 31 against zlib's bound").
 *
 * Reads a kdump-compressed file written with -c (makedumpfile's or cocomem's:
 * they are byte-identical), takes every stored page back to its 4 KiB
 * (uncompress() of a zlib page, a raw page as it is), then times zlib alone
 * compressing exactly those pages the two ways the tools call it:
 *   compress2   compress2(..., Z_BEST_SPEED) per page into a compressBound()
 *               buffer, as makedumpfile's write_kdump_pages_cyclic() does
 *               (deflateInit + deflate + deflateEnd per page);
 *   reset       one z_stream made with deflateInit(Z_BEST_SPEED), then
 *               deflateReset + deflate(Z_FINISH) per page, as cocomem's
 *               PageCompressor does.
 * Each pass checks that every page compresses to the bytes the file stores
 * (or to no shorter form, for a raw page), so both call sequences are shown
 * byte-identical on these pages. CPU time is CLOCK_PROCESS_CPUTIME_ID, the
 * minimum over ROUNDS passes (the pages are in memory: no I/O is timed).
 *
 *   cc -O2 -o /tmp/zlib-bound scripts/zlib-bound.c -lz
 *   /tmp/zlib-bound DUMPFILE [ROUNDS]
 *
 * Layout read (makedumpfile's diskdump_mod.h): disk_dump_header's
 * block_size, sub_hdr_size, bitmap_blocks and max_mapnr (offsets 428-440 on
 * x86-64), kdump_sub_header's max_mapnr_64 (offset 96 of the sub-header,
 * header_version >= 6), the 2nd bitmap as the second half of the bitmap
 * blocks, one 24-byte page_desc (offset, size, flags, page_flags) per set
 * bit from block 1 + sub_hdr_size + bitmap_blocks on.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define PAGE 4096
#define DUMP_DH_COMPRESSED_ZLIB 0x1

struct page_desc { uint64_t offset; uint32_t size; uint32_t flags; uint64_t page_flags; };

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *m) { fprintf(stderr, "error: %s\n", m); exit(1); }

int main(int argc, char **argv) {
    if (argc < 2) die("usage: zlib-bound DUMPFILE [ROUNDS]");
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (rounds < 1) die("ROUNDS must be at least 1");
    FILE *f = fopen(argv[1], "rb");
    if (!f) die("cannot open the dump file");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *file = malloc(size);
    if (!file || fread(file, 1, size, f) != (size_t)size) die("cannot read the dump file");
    fclose(f);
    if (size < 4096 || memcmp(file, "KDUMP   ", 8) != 0) die("not a kdump-compressed file");
    int32_t version, block, subhdr;
    uint32_t bitmap_blocks, mapnr32;
    memcpy(&version, file + 8, 4);
    memcpy(&block, file + 428, 4);
    memcpy(&subhdr, file + 432, 4);
    memcpy(&bitmap_blocks, file + 436, 4);
    memcpy(&mapnr32, file + 440, 4);
    uint64_t mapnr = mapnr32;
    if (version >= 6) memcpy(&mapnr, file + block + 96, 8);
    uint64_t bitmap2 = (uint64_t)(1 + subhdr) * block + (uint64_t)bitmap_blocks * block / 2;
    uint64_t descs = (uint64_t)(1 + subhdr + bitmap_blocks) * block;
    uint64_t pages = 0;
    for (uint64_t pfn = 0; pfn < mapnr; pfn++)
        if (file[bitmap2 + pfn / 8] >> (pfn % 8) & 1) pages++;
    if (descs + pages * sizeof(struct page_desc) > (uint64_t)size) die("page descriptors past the end of the file");
    /* The pages back to their bytes; `stored` is what the file keeps of each. */
    unsigned char *plain = malloc(pages * PAGE);
    struct page_desc *d = malloc(pages * sizeof *d);
    uint64_t zlibbed = 0;
    for (uint64_t i = 0; i < pages; i++) {
        memcpy(&d[i], file + descs + i * sizeof *d, sizeof *d);
        if (d[i].offset + d[i].size > (uint64_t)size) die("a page past the end of the file");
        if (d[i].flags & DUMP_DH_COMPRESSED_ZLIB) {
            uLongf n = PAGE;
            if (uncompress(plain + i * PAGE, &n, file + d[i].offset, d[i].size) != Z_OK || n != PAGE) die("a page does not inflate to 4096 bytes");
            zlibbed++;
        } else if (d[i].size == PAGE && d[i].flags == 0) {
            memcpy(plain + i * PAGE, file + d[i].offset, PAGE);
        } else die("a page neither zlib nor raw (not a -c dump?)");
    }
    /* With dump level bit 1 every zero page's descriptor points at one raw zero
       page stored first in the data area (write_kdump_pages_cyclic()'s pd_zero):
       neither tool compresses those pages. */
    uint64_t zero_offset = descs + pages * sizeof(struct page_desc), zeros = 0;
    for (uint64_t i = 0; i < pages; i++) if (d[i].offset == zero_offset && d[i].flags == 0) zeros++;
    printf("%s: %llu pages in the 2nd bitmap, %llu zero (not compressed), %llu zlib, %llu raw\n", argv[1],
           (unsigned long long)pages, (unsigned long long)zeros, (unsigned long long)zlibbed,
           (unsigned long long)(pages - zlibbed - zeros));
    uLong bound = compressBound(PAGE);
    unsigned char *out = malloc(bound > 2 * PAGE ? bound : 2 * PAGE);
    z_stream s;
    memset(&s, 0, sizeof s);
    if (deflateInit(&s, Z_BEST_SPEED) != Z_OK) die("deflateInit failed");
    for (int way = 0; way < 2; way++) {
        double best = 1e9;
        for (int r = 0; r < rounds; r++) {
            uint64_t mismatched = 0;
            double t0 = cpu_now();
            for (uint64_t i = 0; i < pages; i++) {
                if (d[i].offset == zero_offset && d[i].flags == 0) continue;   /* a zero page */
                uLongf n = bound;
                int ok;
                if (way == 0) {
                    ok = compress2(out, &n, plain + i * PAGE, PAGE, Z_BEST_SPEED) == Z_OK;
                } else {
                    deflateReset(&s);
                    s.next_in = plain + i * PAGE; s.avail_in = PAGE;
                    s.next_out = out; s.avail_out = bound;
                    ok = deflate(&s, Z_FINISH) == Z_STREAM_END;
                    n = s.total_out;
                }
                int compressed = ok && n < PAGE;
                if (compressed != !!(d[i].flags & DUMP_DH_COMPRESSED_ZLIB)) mismatched++;
                else if (compressed && (n != d[i].size || memcmp(out, file + d[i].offset, n) != 0)) mismatched++;
            }
            double t = cpu_now() - t0;
            if (t < best) best = t;
            if (mismatched) { fprintf(stderr, "error: %llu pages differ from the file (%s)\n", (unsigned long long)mismatched, way ? "reset" : "compress2"); return 1; }
        }
        printf("%-9s %.3f s CPU (min of %d), every page byte-identical to the file\n", way ? "reset" : "compress2", best, rounds);
    }
    deflateEnd(&s);
    return 0;
}
