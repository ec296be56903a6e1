/*
 * iperf3's loopback figure with a bench's memory footprint: one TCP stream over 127.0.0.1 between two
 * processes, the sender writing BLOCK-byte blocks taken in turn from a WORKING_SET-byte area and the
 * receiver reading each block into the same place of its own area (iperf3 reuses one hot BLOCK-byte
 * buffer on each side, so its copies hit the caches; a transfer engine moving a KV cache does not).
 * Prints "tcp: block B, working set W: X GB/s" (GB = 1e9 bytes received).
 *
 *   gcc -O2 -o tcp_bw tcp_bw.c && ./tcp_bw 1048576 268435456 3
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *area(size_t n) {
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(p, 0xcc, n);
    return p;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s BLOCK WORKING_SET [SECONDS=3]\n", argv[0]);
        return 2;
    }
    size_t block = strtoull(argv[1], NULL, 0), set = strtoull(argv[2], NULL, 0);
    double seconds = argc > 3 ? atof(argv[3]) : 3;
    if (block == 0 || set < block) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    size_t blocks = set / block;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) || getsockname(ls, (struct sockaddr *)&a, &al)) {
        perror("listen");
        return 1;
    }
    pid_t child = fork();
    if (child == 0) { /* sender */
        close(ls);
        char *src = area(set);
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(s, (struct sockaddr *)&a, sizeof a)) {
            perror("connect");
            _exit(1);
        }
        for (size_t i = 0;; i = (i + 1) % blocks) {
            size_t off = 0;
            while (off < block) {
                ssize_t n = write(s, src + i * block + off, block - off);
                if (n <= 0) _exit(0);
                off += n;
            }
        }
    }
    int s = accept(ls, NULL, NULL);
    char *dst = area(set);
    unsigned long long got = 0;
    size_t i = 0, off = 0;
    double t0 = now(), warm = t0 + seconds / 10, end = 0, t = t0;
    int timing = 0;
    while (1) {
        ssize_t n = read(s, dst + i * block + off, block - off);
        if (n <= 0) break;
        off += n;
        if (off == block) {
            off = 0;
            i = (i + 1) % blocks;
        }
        if (timing) got += n;
        t = now();
        if (!timing && t >= warm) {
            timing = 1;
            t0 = t;
            end = t0 + seconds;
        } else if (timing && t >= end) {
            break;
        }
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    printf("tcp: block %zu, working set %zu: %.2f GB/s\n", block, set, got / (t - t0) / 1e9);
    return 0;
}
