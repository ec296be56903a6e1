/*
 * JNI binding to libfabric for the EFA transport. libfabric is never linked: libfabric.so.1 is
 * opened at run time with dlopen (the path comes from Java: MC_LIBFABRIC_PATH or the default), so a
 * host without it reports the plugin unavailable with the cause. Only five real symbols are needed
 * (fi_getinfo, fi_freeinfo, fi_dupinfo, fi_fabric, fi_strerror); everything else in libfabric's API
 * is an inline call through the objects' operation tables.
 *
 * Conventions (as in mooncake4j_native.c): static functions registered in JNI_OnLoad, hidden
 * visibility, negative libfabric errno returns that the Java side turns into exceptions carrying
 * fi_strerror text. The hot path crosses JNI once per batch: post0 posts a whole array of RMA
 * operations described in native memory, reap0 reads a batch of completions into a preallocated
 * array. Every operation's context is one slot of a preallocated fi_context2 array owned by its
 * endpoint, valid until the endpoint is closed; Java frees a slot only after reading its completion.
 *
 * A fault seam (setFault0) lets tests reach mr_mode branches and failures that no software provider
 * can be asked for: fail the Nth fi_mr_reg, or make a domain behave as if the provider returned extra
 * mr_mode bits (FI_MR_PROV_KEY: keys are chosen "by the provider"; FI_MR_ENDPOINT: regions are bound
 * to the endpoint and enabled), or refuse every post with -FI_EAGAIN (a peer whose connection never
 * drains, as rxm does for a dead peer it keeps reconnecting to), or make a reopened endpoint take a
 * new address (as EFA's does: a new queue pair) instead of asking for its old one, or make NICs claim
 * FI_HMEM and register device memory as host memory (FakeGpu's "device memory" is host memory), the
 * iface and device asked for being kept for the test to read.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <jni.h>
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

#include "mooncake4j_fabric.h"

#define CLASS_NAME "io/mooncake4j/nativeio/fabric/FabricNatives"
#define API_VERSION FI_VERSION(1, 10)

#define OP_READ 1u
#define OP_DELIVERY_COMPLETE 2u

/* One RMA operation as Java writes it into native memory (64 bytes, little-endian). */
struct mc_op {
    uint32_t slot;
    uint32_t flags;
    uint64_t local;
    uint64_t length;
    uint64_t desc;
    uint64_t remote;
    uint64_t rkey;
    uint64_t dest;
    int64_t rc;
};

struct mc_nic {
    struct fi_info *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_av *av;
    struct fid_cq *cq;
    struct fid_ep *ep;
    struct fi_context2 *contexts;
    uint32_t slots;
    uint64_t mr_mode;
    size_t cq_size;
    int wait_fd; /* the CQ's FI_WAIT_FD descriptor, or -1 when the provider has no wait object */
};

struct mc_mr {
    struct fid_mr *mr;
};

static int (*p_getinfo)(uint32_t, const char *, const char *, uint64_t, const struct fi_info *,
                        struct fi_info **);
static void (*p_freeinfo)(struct fi_info *);
static struct fi_info *(*p_dupinfo)(const struct fi_info *);
static int (*p_fabric)(struct fi_fabric_attr *, struct fid_fabric **, void *);
static const char *(*p_strerror)(int);

/* Fault seam: tests only. */
static long fault_mr_reg_countdown; /* > 0: the Nth fi_mr_reg from now fails */
static int fault_mr_reg_errno;
static uint64_t fault_mr_mode_add;
static uint64_t fault_next_key = 1u << 20;
static int fault_post_eagain; /* non-zero: every post is refused with -FI_EAGAIN (a backlogged peer) */
static int fault_new_address; /* non-zero: a reopened endpoint never asks for its old address (as on EFA) */
static int fault_hmem; /* non-zero: NICs claim FI_HMEM; device memory is registered as host memory */
static long last_regattr = -1; /* iface << 32 | device of the last fi_mr_regattr asked for (tests) */

static __thread const char *last_step = "";

/*
 * libfabric's shm provider installs handlers for SIGSEGV, SIGBUS, SIGINT and SIGTERM when libfabric
 * is loaded (a library constructor, in every process, whatever the provider asked for), and they re-raise the signal.
 * The JVM takes SIGSEGV on purpose (implicit null checks, safepoints): with shm's handler in front
 * it dies. So the JVM's handlers are put back after dlopen and after each call that may
 * initialise providers. What
 * is lost: shm's removal of its /dev/shm files when the process crashes.
 */
static const int guarded_signals[] = {SIGSEGV, SIGBUS, SIGINT, SIGTERM};
#define GUARDED_COUNT (sizeof guarded_signals / sizeof guarded_signals[0])

static void save_signals(struct sigaction *saved) {
    for (size_t i = 0; i < GUARDED_COUNT; i++) {
        sigaction(guarded_signals[i], NULL, &saved[i]);
    }
}

static void restore_signals(const struct sigaction *saved) {
    for (size_t i = 0; i < GUARDED_COUNT; i++) {
        sigaction(guarded_signals[i], &saved[i], NULL);
    }
}

static jstring fab_load(JNIEnv *env, jclass cls, jstring jpath) {
    (void)cls;
    const char *path = (*env)->GetStringUTFChars(env, jpath, NULL);
    if (path == NULL) {
        return NULL;
    }
    char msg[1024];
    struct sigaction saved[GUARDED_COUNT];
    save_signals(saved);
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    restore_signals(saved);
    if (h == NULL) {
        snprintf(msg, sizeof msg, "dlopen(%s) failed: %s", path, dlerror());
        (*env)->ReleaseStringUTFChars(env, jpath, path);
        return (*env)->NewStringUTF(env, msg);
    }
    (*env)->ReleaseStringUTFChars(env, jpath, path);
    static const char *names[] = {"fi_getinfo", "fi_freeinfo", "fi_dupinfo", "fi_fabric",
                                  "fi_strerror"};
    void *syms[5];
    for (int i = 0; i < 5; i++) {
        syms[i] = dlsym(h, names[i]);
        if (syms[i] == NULL) {
            snprintf(msg, sizeof msg, "%s not found in libfabric: %s", names[i], dlerror());
            return (*env)->NewStringUTF(env, msg);
        }
    }
    *(void **)&p_getinfo = syms[0];
    *(void **)&p_freeinfo = syms[1];
    *(void **)&p_dupinfo = syms[2];
    *(void **)&p_fabric = syms[3];
    *(void **)&p_strerror = syms[4];
    return NULL;
}

static jstring fab_strerror(JNIEnv *env, jclass cls, jint err) {
    (void)cls;
    return (*env)->NewStringUTF(env, p_strerror != NULL ? p_strerror(err) : "libfabric not loaded");
}

static jstring fab_last_step(JNIEnv *env, jclass cls) {
    (void)cls;
    return (*env)->NewStringUTF(env, last_step);
}

static jlong fab_getinfo(JNIEnv *env, jclass cls, jstring jprov, jstring jnode, jlong mr_mode,
                         jlong extra_caps) {
    (void)cls;
    struct sigaction saved[GUARDED_COUNT];
    save_signals(saved);
    struct fi_info *hints = p_dupinfo(NULL);
    if (hints == NULL) {
        restore_signals(saved);
        return -FI_ENOMEM;
    }
    hints->caps = FI_MSG | FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE |
                  (uint64_t)extra_caps;
    hints->mode = FI_CONTEXT | FI_CONTEXT2;
    hints->ep_attr->type = FI_EP_RDM;
    hints->domain_attr->mr_mode = (int)mr_mode;
    if (fault_hmem) { /* the test seam claims FI_HMEM for providers without it */
        hints->caps &= ~FI_HMEM;
        hints->domain_attr->mr_mode &= ~FI_MR_HMEM;
    }
    hints->domain_attr->threading = FI_THREAD_SAFE;
    hints->domain_attr->av_type = FI_AV_TABLE;
    const char *prov = (*env)->GetStringUTFChars(env, jprov, NULL);
    hints->fabric_attr->prov_name = prov != NULL ? strdup(prov) : NULL;
    if (prov != NULL) {
        (*env)->ReleaseStringUTFChars(env, jprov, prov);
    }
    const char *node = jnode != NULL ? (*env)->GetStringUTFChars(env, jnode, NULL) : NULL;
    struct fi_info *info = NULL;
    int rc = p_getinfo(API_VERSION, node, NULL, node != NULL ? FI_SOURCE : 0, hints, &info);
    restore_signals(saved);
    if (node != NULL) {
        (*env)->ReleaseStringUTFChars(env, jnode, node);
    }
    p_freeinfo(hints);
    if (rc != 0) {
        return rc < 0 ? rc : -rc;
    }
    return (jlong)(uintptr_t)info;
}

static void fab_freeinfo(JNIEnv *env, jclass cls, jlong info) {
    (void)env;
    (void)cls;
    p_freeinfo((struct fi_info *)(uintptr_t)info);
}

static jlong fab_info_next(JNIEnv *env, jclass cls, jlong info) {
    (void)env;
    (void)cls;
    return (jlong)(uintptr_t)((struct fi_info *)(uintptr_t)info)->next;
}

static jstring fab_info_string(JNIEnv *env, jclass cls, jlong jinfo, jint field) {
    (void)cls;
    struct fi_info *info = (struct fi_info *)(uintptr_t)jinfo;
    const char *s = NULL;
    switch (field) {
    case 0: s = info->fabric_attr->prov_name; break;
    case 1: s = info->domain_attr->name; break;
    case 2: s = info->fabric_attr->name; break;
    default: break;
    }
    return s != NULL ? (*env)->NewStringUTF(env, s) : NULL;
}

static jlong fab_info_long(JNIEnv *env, jclass cls, jlong jinfo, jint field) {
    (void)env;
    (void)cls;
    struct fi_info *info = (struct fi_info *)(uintptr_t)jinfo;
    switch (field) {
    case 0: return (jlong)info->domain_attr->mr_mode;
    case 1: return (jlong)info->tx_attr->size;
    case 2: return (jlong)info->ep_attr->max_msg_size;
    case 3: return (jlong)(info->caps | (fault_hmem ? FI_HMEM : 0));
    case 4: return (jlong)info->domain_attr->mr_key_size;
    case 5: return (jlong)info->tx_attr->msg_order;
    case 6: return (jlong)info->ep_attr->max_order_waw_size;
    default: return -FI_EINVAL;
    }
}

/* Closes the endpoint and its completion queue (the endpoint first: it holds the queue). */
static void ep_close(struct mc_nic *n) {
    if (n->ep != NULL) fi_close(&n->ep->fid);
    if (n->cq != NULL) fi_close(&n->cq->fid);
    n->ep = NULL;
    n->cq = NULL;
    n->wait_fd = -1;
}

static void nic_free(struct mc_nic *n) {
    ep_close(n);
    if (n->av != NULL) fi_close(&n->av->fid);
    if (n->domain != NULL) fi_close(&n->domain->fid);
    if (n->fabric != NULL) fi_close(&n->fabric->fid);
    if (n->info != NULL) p_freeinfo(n->info);
    free(n->contexts);
    free(n);
}

#define STEP(name, call)                                                                           \
    do {                                                                                           \
        last_step = name;                                                                          \
        rc = (call);                                                                               \
        if (rc != 0) goto fail;                                                                    \
    } while (0)

/*
 * Opens the completion queue and the endpoint, binds them to the address vector, enables the
 * endpoint. On failure leaves both closed.
 */
static int ep_open(struct mc_nic *n) {
    int rc;
    /* A file descriptor to block on while idle (poll() holds no libfabric lock, unlike
     * fi_cq_sread, so another domain's thread in the same process keeps progressing). */
    struct fi_cq_attr cq_attr = {
        .format = FI_CQ_FORMAT_DATA, .wait_obj = FI_WAIT_FD, .size = n->cq_size};
    n->wait_fd = -1;
    last_step = "fi_cq_open";
    if (fi_cq_open(n->domain, &cq_attr, &n->cq, NULL) == 0) {
        if (fi_control(&n->cq->fid, FI_GETWAIT, &n->wait_fd) != 0) {
            n->wait_fd = -1;
        }
    } else {
        cq_attr.wait_obj = FI_WAIT_NONE;
        n->cq = NULL;
        STEP("fi_cq_open", fi_cq_open(n->domain, &cq_attr, &n->cq, NULL));
    }
    STEP("fi_endpoint", fi_endpoint(n->domain, n->info, &n->ep, NULL));
    STEP("fi_ep_bind(av)", fi_ep_bind(n->ep, &n->av->fid, 0));
    STEP("fi_ep_bind(cq)", fi_ep_bind(n->ep, &n->cq->fid, FI_TRANSMIT | FI_RECV));
    STEP("fi_enable", fi_enable(n->ep));
    return 0;
fail:
    ep_close(n);
    return rc < 0 ? rc : -rc;
}

static jlong fab_nic_open(JNIEnv *env, jclass cls, jlong jinfo, jint slots, jint cq_size) {
    (void)env;
    (void)cls;
    int rc;
    struct mc_nic *n = calloc(1, sizeof *n);
    if (n == NULL) {
        last_step = "calloc";
        return -FI_ENOMEM;
    }
    n->contexts = calloc((size_t)slots, sizeof *n->contexts);
    n->info = p_dupinfo((struct fi_info *)(uintptr_t)jinfo);
    if (n->contexts == NULL || n->info == NULL) {
        last_step = "calloc";
        rc = -FI_ENOMEM;
        goto fail;
    }
    n->slots = (uint32_t)slots;
    n->cq_size = (size_t)cq_size;
    n->mr_mode = (uint64_t)n->info->domain_attr->mr_mode | fault_mr_mode_add;
    STEP("fi_fabric", p_fabric(n->info->fabric_attr, &n->fabric, NULL));
    STEP("fi_domain", fi_domain(n->fabric, n->info, &n->domain, NULL));
    struct fi_av_attr av_attr = {.type = FI_AV_TABLE};
    STEP("fi_av_open", fi_av_open(n->domain, &av_attr, &n->av, NULL));
    STEP("ep_open", ep_open(n));
    return (jlong)(uintptr_t)n;
fail:
    nic_free(n);
    return rc < 0 ? rc : -rc;
}

/*
 * Closes the endpoint and its completion queue: the provider drops every operation posted on it
 * (none completes after this returns, and none touches its memory again: an RMA cannot be
 * cancelled any other way), and the peers' connections to it end. The domain, the address vector
 * (so fi_addr_t values stay valid) and the memory registrations stay.
 */
static jint fab_ep_close(JNIEnv *env, jclass cls, jlong nic) {
    (void)env;
    (void)cls;
    ep_close((struct mc_nic *)(uintptr_t)nic);
    return 0;
}

/*
 * Opens a fresh completion queue and endpoint after fab_ep_close, asking for the old endpoint's
 * address (src_addr) so that peers keep reaching it; when the provider cannot give that address
 * again (EFA: a new queue pair), takes a new one. Returns 0 or a negative error.
 */
static jint fab_ep_reopen(JNIEnv *env, jclass cls, jlong nic, jbyteArray jold) {
    (void)cls;
    struct mc_nic *n = (struct mc_nic *)(uintptr_t)nic;
    if (n->ep != NULL) {
        return -FI_EBUSY;
    }
    jsize len = jold != NULL ? (*env)->GetArrayLength(env, jold) : 0;
    void *saved_addr = n->info->src_addr;
    size_t saved_len = n->info->src_addrlen;
    void *old = len > 0 && !fault_new_address ? malloc((size_t)len) : NULL;
    int rc;
    if (old != NULL) {
        (*env)->GetByteArrayRegion(env, jold, 0, len, (jbyte *)old);
        n->info->src_addr = old;
        n->info->src_addrlen = (size_t)len;
        rc = ep_open(n);
        n->info->src_addr = saved_addr;
        n->info->src_addrlen = saved_len;
        free(old);
        if (rc == 0) {
            return 0;
        }
    }
    return ep_open(n);
}

static jint fab_nic_close(JNIEnv *env, jclass cls, jlong nic) {
    (void)env;
    (void)cls;
    nic_free((struct mc_nic *)(uintptr_t)nic);
    return 0;
}

static jbyteArray fab_nic_name(JNIEnv *env, jclass cls, jlong nic) {
    (void)cls;
    struct mc_nic *n = (struct mc_nic *)(uintptr_t)nic;
    char name[256];
    size_t len = sizeof name;
    if (n->ep == NULL || fi_getname(&n->ep->fid, name, &len) != 0) {
        return NULL;
    }
    jbyteArray out = (*env)->NewByteArray(env, (jsize)len);
    if (out != NULL) {
        (*env)->SetByteArrayRegion(env, out, 0, (jsize)len, (const jbyte *)name);
    }
    return out;
}

static jlong fab_nic_long(JNIEnv *env, jclass cls, jlong nic, jint field) {
    (void)env;
    (void)cls;
    struct mc_nic *n = (struct mc_nic *)(uintptr_t)nic;
    switch (field) {
    case 0: return (jlong)n->mr_mode;
    case 1: return (jlong)n->info->tx_attr->size;
    case 2: return n->wait_fd >= 0;
    case 3: return (jlong)n->info->ep_attr->max_msg_size;
    default: return -FI_EINVAL;
    }
}

static jlong fab_av_insert(JNIEnv *env, jclass cls, jlong nic, jbyteArray jaddr) {
    (void)cls;
    struct mc_nic *n = (struct mc_nic *)(uintptr_t)nic;
    jsize len = (*env)->GetArrayLength(env, jaddr);
    char addr[256];
    if (len <= 0 || (size_t)len > sizeof addr) {
        return -FI_EINVAL;
    }
    (*env)->GetByteArrayRegion(env, jaddr, 0, len, (jbyte *)addr);
    fi_addr_t out = FI_ADDR_NOTAVAIL;
    int rc = fi_av_insert(n->av, addr, 1, &out, 0, NULL);
    if (rc != 1) {
        return rc < 0 ? rc : -FI_EADDRNOTAVAIL;
    }
    return (jlong)out;
}

/* Registers [addr, addr+len) for local and remote access. out[0] = key, out[1] = desc. */
static jlong fab_mr_reg(JNIEnv *env, jclass cls, jlong nic, jlong addr, jlong len, jlong key,
                        jint iface, jint device, jlongArray jout) {
    (void)cls;
    struct mc_nic *n = (struct mc_nic *)(uintptr_t)nic;
    if (fault_mr_reg_countdown > 0 && --fault_mr_reg_countdown == 0) {
        return -fault_mr_reg_errno;
    }
    struct mc_mr *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return -FI_ENOMEM;
    }
    struct iovec iov = {.iov_base = (void *)(uintptr_t)addr, .iov_len = (size_t)len};
    struct fi_mr_attr attr = {
        .mr_iov = &iov,
        .iov_count = 1,
        .access = FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE,
        .requested_key = (uint64_t)key,
        .iface = (enum fi_hmem_iface)iface,
    };
    attr.device.cuda = device;
    last_regattr = (long)iface << 32 | (uint32_t)device;
    if (fault_hmem) {
        attr.iface = FI_HMEM_SYSTEM;
    }
    if (fault_mr_mode_add & FI_MR_PROV_KEY) {
        attr.requested_key = __atomic_fetch_add(&fault_next_key, 1, __ATOMIC_RELAXED);
    }
    int rc = fi_mr_regattr(n->domain, &attr, 0, &m->mr);
    if (rc == 0 && (n->mr_mode & FI_MR_ENDPOINT)) {
        rc = n->ep != NULL ? fi_mr_bind(m->mr, &n->ep->fid, 0) : -FI_ENOTCONN;
        if (rc == 0) {
            rc = fi_mr_enable(m->mr);
        }
        if (rc != 0) {
            fi_close(&m->mr->fid);
        }
    }
    if (rc != 0) {
        free(m);
        return rc < 0 ? rc : -rc;
    }
    jlong out[2] = {(jlong)fi_mr_key(m->mr), (jlong)(uintptr_t)fi_mr_desc(m->mr)};
    (*env)->SetLongArrayRegion(env, jout, 0, 2, out);
    return (jlong)(uintptr_t)m;
}

/* FI_MR_ENDPOINT: binds a region to the NIC's (reopened) endpoint and enables it. */
static jint fab_mr_rebind(JNIEnv *env, jclass cls, jlong nic, jlong mr) {
    (void)env;
    (void)cls;
    struct mc_nic *n = (struct mc_nic *)(uintptr_t)nic;
    struct mc_mr *m = (struct mc_mr *)(uintptr_t)mr;
    if (n->ep == NULL) {
        return -FI_ENOTCONN;
    }
    int rc = fi_mr_bind(m->mr, &n->ep->fid, 0);
    return rc != 0 ? rc : fi_mr_enable(m->mr);
}

static jint fab_mr_close(JNIEnv *env, jclass cls, jlong mr) {
    (void)env;
    (void)cls;
    struct mc_mr *m = (struct mc_mr *)(uintptr_t)mr;
    int rc = fi_close(&m->mr->fid);
    free(m);
    return rc;
}

/* Posts ops[0..count) in order; stops at the first that is refused and leaves its rc in the op. */
static jint fab_post(JNIEnv *env, jclass cls, jlong nic, jlong ops_address, jint count) {
    (void)env;
    (void)cls;
    struct mc_nic *n = (struct mc_nic *)(uintptr_t)nic;
    struct mc_op *ops = (struct mc_op *)(uintptr_t)ops_address;
    if (n->ep == NULL && count > 0) {
        ops[0].rc = -FI_ENOTCONN;
        return 0;
    }
    if (fault_post_eagain && count > 0) {
        ops[0].rc = -FI_EAGAIN;
        return 0;
    }
    for (jint i = 0; i < count; i++) {
        struct mc_op *op = &ops[i];
        if (op->slot >= n->slots) {
            op->rc = -FI_EINVAL;
            return i;
        }
        void *ctx = &n->contexts[op->slot];
        void *local = (void *)(uintptr_t)op->local;
        void *desc = (void *)(uintptr_t)op->desc;
        ssize_t rc;
        if (op->flags & OP_DELIVERY_COMPLETE) {
            struct iovec iov = {.iov_base = local, .iov_len = op->length};
            struct fi_rma_iov rma = {.addr = op->remote, .len = op->length, .key = op->rkey};
            struct fi_msg_rma msg = {.msg_iov = &iov, .desc = &desc, .iov_count = 1,
                                     .addr = op->dest, .rma_iov = &rma, .rma_iov_count = 1,
                                     .context = ctx};
            rc = (op->flags & OP_READ) ? fi_readmsg(n->ep, &msg, FI_COMPLETION)
                                       : fi_writemsg(n->ep, &msg,
                                                     FI_COMPLETION | FI_DELIVERY_COMPLETE);
        } else if (op->flags & OP_READ) {
            rc = fi_read(n->ep, local, op->length, desc, op->dest, op->remote, op->rkey, ctx);
        } else {
            rc = fi_write(n->ep, local, op->length, desc, op->dest, op->remote, op->rkey, ctx);
        }
        op->rc = rc;
        if (rc != 0) {
            return i;
        }
    }
    return count;
}

/*
 * Reads up to max completions (driving the endpoint's progress); writes each one's slot to
 * slots[]. Returns the count, 0 when nothing completed, -FI_EAVAIL when an error entry is waiting
 * (read it with readErr0), or another negative error.
 */
static jint fab_reap(JNIEnv *env, jclass cls, jlong nic, jlong slots_address, jint max) {
    (void)env;
    (void)cls;
    struct mc_nic *n = (struct mc_nic *)(uintptr_t)nic;
    uint32_t *slots = (uint32_t *)(uintptr_t)slots_address;
    if (n->cq == NULL) {
        return 0;
    }
    struct fi_cq_data_entry entries[64];
    size_t want = (size_t)max < 64 ? (size_t)max : 64;
    ssize_t got = fi_cq_read(n->cq, entries, want);
    if (got == -FI_EAGAIN) {
        return 0;
    }
    if (got < 0) {
        return (jint)got;
    }
    for (ssize_t i = 0; i < got; i++) {
        slots[i] = (uint32_t)((struct fi_context2 *)entries[i].op_context - n->contexts);
    }
    return (jint)got;
}

/* Reads one error entry: out[0] = slot (-1 if not ours), out[1] = err, out[2] = prov_errno. */
static jstring fab_read_err(JNIEnv *env, jclass cls, jlong nic, jlongArray jout) {
    (void)cls;
    struct mc_nic *n = (struct mc_nic *)(uintptr_t)nic;
    struct fi_cq_err_entry err;
    if (n->cq == NULL) {
        return NULL;
    }
    memset(&err, 0, sizeof err);
    ssize_t rc = fi_cq_readerr(n->cq, &err, 0);
    if (rc != 1) {
        return NULL;
    }
    struct fi_context2 *ctx = err.op_context;
    jlong slot = (ctx >= n->contexts && ctx < n->contexts + n->slots) ? (jlong)(ctx - n->contexts)
                                                                      : -1;
    jlong out[3] = {slot, err.err, err.prov_errno};
    (*env)->SetLongArrayRegion(env, jout, 0, 3, out);
    char msg[512];
    const char *prov = fi_cq_strerror(n->cq, err.prov_errno, err.err_data, NULL, 0);
    snprintf(msg, sizeof msg, "%s (provider: %s)", p_strerror(err.err),
             prov != NULL ? prov : "no detail");
    return (*env)->NewStringUTF(env, msg);
}

static jint fab_signal(JNIEnv *env, jclass cls, jlong nic) {
    (void)env;
    (void)cls;
    struct mc_nic *n = (struct mc_nic *)(uintptr_t)nic;
    return n->wait_fd >= 0 && n->cq != NULL ? fi_cq_signal(n->cq) : 0;
}

/*
 * Blocks until one of the NICs' completion queues has something to progress, a signal, or the
 * timeout. fi_trywait first: when it says a queue needs progress, returns 1 at once. Only NICs with
 * a wait fd take part. Returns the number of ready descriptors, 0 on timeout, or a negative error.
 */
static jint fab_wait(JNIEnv *env, jclass cls, jlongArray jnics, jint timeout_ms) {
    (void)cls;
    jsize count = (*env)->GetArrayLength(env, jnics);
    jlong handles[64];
    struct pollfd fds[64];
    if (count > 64) {
        count = 64;
    }
    (*env)->GetLongArrayRegion(env, jnics, 0, count, handles);
    nfds_t nfds = 0;
    for (jsize i = 0; i < count; i++) {
        struct mc_nic *n = (struct mc_nic *)(uintptr_t)handles[i];
        if (n->wait_fd < 0) {
            continue;
        }
        struct fid *fids[1] = {&n->cq->fid};
        if (fi_trywait(n->fabric, fids, 1) != 0) {
            return 1;
        }
        fds[nfds].fd = n->wait_fd;
        fds[nfds].events = POLLIN;
        fds[nfds].revents = 0;
        nfds++;
    }
    if (nfds == 0) {
        return 0;
    }
    int rc = poll(fds, nfds, timeout_ms);
    return rc < 0 ? -errno : rc;
}

static jlong fab_last_regattr(JNIEnv *env, jclass cls) {
    (void)env;
    (void)cls;
    return last_regattr;
}

static void fab_set_fault(JNIEnv *env, jclass cls, jlong mr_reg_countdown, jint mr_reg_errno,
                          jlong mr_mode_add, jboolean post_eagain, jboolean new_address,
                          jboolean hmem) {
    (void)env;
    (void)cls;
    fault_mr_reg_countdown = mr_reg_countdown;
    fault_mr_reg_errno = mr_reg_errno;
    fault_mr_mode_add = (uint64_t)mr_mode_add;
    fault_post_eagain = post_eagain;
    fault_new_address = new_address;
    fault_hmem = hmem;
}

static JNINativeMethod methods[] = {
    {"load0", "(Ljava/lang/String;)Ljava/lang/String;", (void *)fab_load},
    {"strerror0", "(I)Ljava/lang/String;", (void *)fab_strerror},
    {"lastStep0", "()Ljava/lang/String;", (void *)fab_last_step},
    {"getinfo0", "(Ljava/lang/String;Ljava/lang/String;JJ)J", (void *)fab_getinfo},
    {"freeinfo0", "(J)V", (void *)fab_freeinfo},
    {"infoNext0", "(J)J", (void *)fab_info_next},
    {"infoString0", "(JI)Ljava/lang/String;", (void *)fab_info_string},
    {"infoLong0", "(JI)J", (void *)fab_info_long},
    {"nicOpen0", "(JII)J", (void *)fab_nic_open},
    {"nicClose0", "(J)I", (void *)fab_nic_close},
    {"epClose0", "(J)I", (void *)fab_ep_close},
    {"epReopen0", "(J[B)I", (void *)fab_ep_reopen},
    {"nicName0", "(J)[B", (void *)fab_nic_name},
    {"nicLong0", "(JI)J", (void *)fab_nic_long},
    {"avInsert0", "(J[B)J", (void *)fab_av_insert},
    {"mrReg0", "(JJJJII[J)J", (void *)fab_mr_reg},
    {"mrClose0", "(J)I", (void *)fab_mr_close},
    {"mrRebind0", "(JJ)I", (void *)fab_mr_rebind},
    {"post0", "(JJI)I", (void *)fab_post},
    {"reap0", "(JJI)I", (void *)fab_reap},
    {"wait0", "([JI)I", (void *)fab_wait},
    {"readErr0", "(J[J)Ljava/lang/String;", (void *)fab_read_err},
    {"signal0", "(J)I", (void *)fab_signal},
    {"setFault0", "(JIJZZZ)V", (void *)fab_set_fault},
    {"lastRegattr0", "()J", (void *)fab_last_regattr},
};

int mc_fabric_register(JNIEnv *env) {
    jclass cls = (*env)->FindClass(env, CLASS_NAME);
    if (cls == NULL) {
        return -1;
    }
    return (*env)->RegisterNatives(env, cls, methods, sizeof methods / sizeof methods[0]);
}
