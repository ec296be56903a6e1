/*
 * The C reference loop for the EFA transport's performance ratio: the same RMA window straight on
 * libfabric, with nothing of Mooncake4j in between. Two processes (fork): the target registers a
 * buffer and drives progress; the initiator keeps WINDOW fi_write or fi_read operations of SIZE
 * bytes in flight for SECONDS and prints the throughput in Mooncake's bench format.
 *
 * Same choices as the plugin: FI_EP_RDM, FI_AV_TABLE, FI_CQ_FORMAT_DATA, FI_THREAD_SAFE, the
 * returned mr_mode honoured (virtual address or offset, provider key or our own), every operation
 * with its own context, the target progressing its CQ and, when idle, blocking in poll() on the
 * CQ's wait descriptor after fi_trywait (busy polling when the provider has none).
 * FABBENCH_DELIVERY_COMPLETE=1 makes every write ask for delivery completion.
 *
 * Usage: fabric_rma_bench PROVIDER read|write SIZE WINDOW SECONDS [NODE]
 * e.g.   fabric_rma_bench 'tcp;ofi_rxm' write 65536 64 5 127.0.0.1
 */
#define _GNU_SOURCE
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        int rc_ = (int)(call);                                                                     \
        if (rc_ < 0) {                                                                             \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, fi_strerror(-rc_));       \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

struct nic {
    struct fi_info *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_av *av;
    struct fid_cq *cq;
    struct fid_ep *ep;
    struct fid_mr *mr;
    int wait_fd;
    char name[64];
    size_t name_len;
};

struct exchange {
    char name[64];
    size_t name_len;
    uint64_t addr;
    uint64_t key;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void open_nic(struct nic *n, const char *provider, const char *node, void *buf, size_t len) {
    struct fi_info *hints = fi_allocinfo();
    hints->caps = FI_MSG | FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE;
    hints->mode = FI_CONTEXT | FI_CONTEXT2;
    hints->ep_attr->type = FI_EP_RDM;
    hints->domain_attr->mr_mode =
        FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
    hints->domain_attr->threading = FI_THREAD_SAFE;
    hints->domain_attr->av_type = FI_AV_TABLE;
    hints->fabric_attr->prov_name = strdup(provider);
    CHECK(fi_getinfo(FI_VERSION(1, 10), node, NULL, node ? FI_SOURCE : 0, hints, &n->info));
    fi_freeinfo(hints);
    CHECK(fi_fabric(n->info->fabric_attr, &n->fabric, NULL));
    CHECK(fi_domain(n->fabric, n->info, &n->domain, NULL));
    struct fi_av_attr av_attr = {.type = FI_AV_TABLE};
    CHECK(fi_av_open(n->domain, &av_attr, &n->av, NULL));
    struct fi_cq_attr cq_attr = {.format = FI_CQ_FORMAT_DATA, .wait_obj = FI_WAIT_FD, .size = 1024};
    n->wait_fd = -1;
    if (fi_cq_open(n->domain, &cq_attr, &n->cq, NULL) == 0) {
        if (fi_control(&n->cq->fid, FI_GETWAIT, &n->wait_fd) != 0) n->wait_fd = -1;
    } else {
        cq_attr.wait_obj = FI_WAIT_NONE;
        CHECK(fi_cq_open(n->domain, &cq_attr, &n->cq, NULL));
    }
    CHECK(fi_endpoint(n->domain, n->info, &n->ep, NULL));
    CHECK(fi_ep_bind(n->ep, &n->av->fid, 0));
    CHECK(fi_ep_bind(n->ep, &n->cq->fid, FI_TRANSMIT | FI_RECV));
    CHECK(fi_enable(n->ep));
    n->name_len = sizeof n->name;
    CHECK(fi_getname(&n->ep->fid, n->name, &n->name_len));
    CHECK(fi_mr_reg(n->domain, buf, len,
                    FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE, 0, 1, 0, &n->mr, NULL));
    if (n->info->domain_attr->mr_mode & FI_MR_ENDPOINT) {
        CHECK(fi_mr_bind(n->mr, &n->ep->fid, 0));
        CHECK(fi_mr_enable(n->mr));
    }
}

static void close_nic(struct nic *n) {
    fi_close(&n->mr->fid);
    fi_close(&n->ep->fid);
    fi_close(&n->cq->fid);
    fi_close(&n->av->fid);
    fi_close(&n->domain->fid);
    fi_close(&n->fabric->fid);
    fi_freeinfo(n->info);
}

static int reap(struct nic *n, long *inflight) {
    struct fi_cq_data_entry entries[64];
    ssize_t got = fi_cq_read(n->cq, entries, 64);
    if (got > 0) {
        *inflight -= got;
        return (int)got;
    }
    if (got == -FI_EAVAIL) {
        struct fi_cq_err_entry err = {0};
        fi_cq_readerr(n->cq, &err, 0);
        fprintf(stderr, "completion error: %s (%s)\n", fi_strerror(err.err),
                fi_cq_strerror(n->cq, err.prov_errno, err.err_data, NULL, 0));
        exit(3);
    }
    return 0;
}

static void run_target(const char *provider, const char *node, size_t len, int to_parent,
                       int from_parent) {
    void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(buf, 0x5a, len);
    struct nic n;
    open_nic(&n, provider, node, buf, len);
    struct exchange mine = {.name_len = n.name_len, .addr = (uint64_t)(uintptr_t)buf,
                            .key = fi_mr_key(n.mr)};
    memcpy(mine.name, n.name, n.name_len);
    if (write(to_parent, &mine, sizeof mine) != sizeof mine) exit(4);
    /* Progress until the parent closes its end of the pipe. While nothing happens, block on the
     * CQ's wait descriptor after fi_trywait (as the plugin does); without one, poll. */
    for (;;) {
        struct fi_cq_data_entry e;
        if (n.wait_fd >= 0) {
            struct fid *fids[1] = {&n.cq->fid};
            if (fi_trywait(n.fabric, fids, 1) == 0) {
                struct pollfd p = {.fd = n.wait_fd, .events = POLLIN};
                poll(&p, 1, 10);
            }
        }
        fi_cq_read(n.cq, &e, 1);
        char c;
        ssize_t r = recv(from_parent, &c, 1, MSG_DONTWAIT);
        if (r == 0) break;
    }
    close_nic(&n);
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s PROVIDER read|write SIZE WINDOW SECONDS [NODE]\n", argv[0]);
        return 1;
    }
    const char *provider = argv[1];
    int is_read = strcmp(argv[2], "read") == 0;
    size_t size = strtoull(argv[3], NULL, 0);
    int window = atoi(argv[4]);
    double seconds = atof(argv[5]);
    const char *node = argc > 6 && argv[6][0] ? argv[6] : NULL;
    /* FABBENCH_DELIVERY_COMPLETE=1: every write asks for delivery completion. */
    int delivery_complete = getenv("FABBENCH_DELIVERY_COMPLETE") != NULL;
    size_t len = size * (size_t)window;
    int up[2], down[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, up) || socketpair(AF_UNIX, SOCK_STREAM, 0, down)) return 4;
    pid_t child = fork();
    if (child == 0) {
        close(up[0]);
        close(down[1]);
        run_target(provider, node, len, up[1], down[0]);
    }
    close(up[1]);
    close(down[0]);
    struct exchange peer;
    if (read(up[0], &peer, sizeof peer) != sizeof peer) return 4;

    void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < len; i++) ((unsigned char *)buf)[i] = (unsigned char)(i * 31 + 7);
    struct nic n;
    open_nic(&n, provider, node, buf, len);
    fi_addr_t dest;
    if (fi_av_insert(n.av, peer.name, 1, &dest, 0, NULL) != 1) {
        fprintf(stderr, "fi_av_insert failed\n");
        return 2;
    }
    int virt = (n.info->domain_attr->mr_mode & FI_MR_VIRT_ADDR) != 0;
    uint64_t remote_base = virt ? peer.addr : 0;
    void *desc = fi_mr_desc(n.mr);
    struct fi_context2 *ctx = calloc((size_t)window, sizeof *ctx);

    /* Warm up (rxm connects on the first operation) and check the bytes arrive: write the window,
     * read it back into the upper half... simply write then read the first block and compare. */
    long inflight = 0;
    ssize_t rc;
    while ((rc = fi_write(n.ep, buf, size, desc, dest, remote_base, peer.key, &ctx[0])) == -FI_EAGAIN)
        reap(&n, &inflight);
    CHECK(rc);
    inflight++;
    while (inflight) reap(&n, &inflight);
    unsigned char *check = malloc(size);
    memcpy(check, buf, size);
    memset(buf, 0, size);
    while ((rc = fi_read(n.ep, buf, size, desc, dest, remote_base, peer.key, &ctx[0])) == -FI_EAGAIN)
        reap(&n, &inflight);
    CHECK(rc);
    inflight++;
    while (inflight) reap(&n, &inflight);
    if (memcmp(check, buf, size) != 0) {
        fprintf(stderr, "verification failed: the block read back differs from the block written\n");
        return 5;
    }

    double start = now(), end = start + seconds;
    long done = 0;
    int next = 0;
    while (now() < end) {
        while (inflight < window) {
            char *local = (char *)buf + (size_t)next * size;
            uint64_t remote = remote_base + (uint64_t)next * size;
            if (delivery_complete && !is_read) {
                struct iovec iov = {.iov_base = local, .iov_len = size};
                struct fi_rma_iov rma = {.addr = remote, .len = size, .key = peer.key};
                struct fi_msg_rma msg = {.msg_iov = &iov, .desc = &desc, .iov_count = 1, .addr = dest,
                                         .rma_iov = &rma, .rma_iov_count = 1, .context = &ctx[next]};
                rc = fi_writemsg(n.ep, &msg, FI_COMPLETION | FI_DELIVERY_COMPLETE);
            } else {
                rc = is_read ? fi_read(n.ep, local, size, desc, dest, remote, peer.key, &ctx[next])
                             : fi_write(n.ep, local, size, desc, dest, remote, peer.key, &ctx[next]);
            }
            if (rc == -FI_EAGAIN) break;
            CHECK(rc);
            inflight++;
            next = (next + 1) % window;
        }
        done += reap(&n, &inflight);
    }
    while (inflight) done += reap(&n, &inflight);
    double elapsed = now() - start;
    printf("provider %s op %s size %zu window %d cq_wait_fd %d mr_mode 0x%lx\n", provider,
           argv[2], size, window, n.wait_fd >= 0, (unsigned long)n.info->domain_attr->mr_mode);
    printf("Test completed: duration %.2f, batch count %ld, throughput %.2f GB/s\n", elapsed, done,
           (double)done * (double)size / elapsed / 1e9);
    close_nic(&n);
    close(down[1]);
    int status;
    waitpid(child, &status, 0);
    return 0;
}
