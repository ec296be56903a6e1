/*
 * The physical baseline of same-process transfers: glibc memcpy of BLOCK-byte blocks, one after
 * another, from one area to another, for SECONDS on THREADS threads. WORKING_SET is the size of each
 * of the two areas across all threads (each thread copies its own WORKING_SET / THREADS), which is
 * the access pattern of `mooncake4j bench --segment_id=self`: threads x batch_size blocks.
 * Prints "memcpy: block B, working set W, threads T: X GB/s" (GB = 1e9 bytes copied, not read+written).
 *
 *   gcc -O2 -pthread -o memcpy_bw memcpy_bw.c && ./memcpy_bw 1048576 134217728 3 1
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static size_t block, set;
static double seconds;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *map(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(p, 0xcc, n); /* fault every page in before timing, as the bench's --init_mem does */
    return p;
}

static void *worker(void *arg) {
    double *result = arg;
    char *src = map(set), *dst = map(set);
    size_t blocks = set / block, i = 0;
    unsigned long long copied = 0;
    /* warm up for a tenth of the run, then time */
    double t0 = now(), end = t0 + seconds / 10;
    while (now() < end) {
        memcpy(dst + i * block, src + i * block, block);
        if (++i == blocks) i = 0;
    }
    t0 = now();
    end = t0 + seconds;
    double t = t0;
    while (t < end) {
        for (int k = 0; k < 16; k++) {
            memcpy(dst + i * block, src + i * block, block);
            if (++i == blocks) i = 0;
        }
        copied += 16ULL * block;
        t = now();
    }
    *result = copied / (t - t0) / 1e9;
    munmap(src, set);
    munmap(dst, set);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s BLOCK WORKING_SET [SECONDS=3] [THREADS=1]\n", argv[0]);
        return 2;
    }
    block = strtoull(argv[1], NULL, 0);
    set = strtoull(argv[2], NULL, 0);
    seconds = argc > 3 ? atof(argv[3]) : 3;
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    if (block == 0 || set < block || threads < 1 || threads > 256) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    set = set / threads / block * block;
    if (set == 0) {
        fprintf(stderr, "WORKING_SET must hold a block per thread\n");
        return 2;
    }
    pthread_t tid[256];
    double r[256], total = 0;
    for (int t = 0; t < threads; t++) pthread_create(&tid[t], NULL, worker, &r[t]);
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        total += r[t];
    }
    printf("memcpy: block %zu, working set %zu, threads %d: %.2f GB/s\n", block, set * threads, threads, total);
    return 0;
}
