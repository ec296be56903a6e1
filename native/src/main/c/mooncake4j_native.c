/*
 * JNI helpers for what pure Java 17 cannot do: the address of a direct buffer, a direct buffer over
 * an address, page-aligned host allocation of any size, and memcpy between addresses.
 * Functions are static and registered in JNI_OnLoad; only JNI_OnLoad is exported.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jni.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mooncake4j_fabric.h"

#define CLASS_NAME "io/mooncake4j/nativeio/NativeMemory"

static jlong nm_address(JNIEnv *env, jclass cls, jobject buffer) {
    (void)cls;
    void *p = (*env)->GetDirectBufferAddress(env, buffer);
    return (jlong)(uintptr_t)p;
}

static jobject nm_wrap(JNIEnv *env, jclass cls, jlong address, jint length) {
    (void)cls;
    return (*env)->NewDirectByteBuffer(env, (void *)(uintptr_t)address, (jlong)length);
}

/* Returns the address, or -errno. The mapping is page aligned and zero filled. */
static jlong nm_map(JNIEnv *env, jclass cls, jlong length) {
    (void)env;
    (void)cls;
    void *p = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return -(jlong)errno;
    }
    return (jlong)(uintptr_t)p;
}

/* Returns 0 or -errno. */
static jint nm_unmap(JNIEnv *env, jclass cls, jlong address, jlong length) {
    (void)env;
    (void)cls;
    if (munmap((void *)(uintptr_t)address, (size_t)length) != 0) {
        return -errno;
    }
    return 0;
}

static void nm_copy(JNIEnv *env, jclass cls, jlong dst, jlong src, jlong length) {
    (void)env;
    (void)cls;
    memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, (size_t)length);
}

static void nm_fill(JNIEnv *env, jclass cls, jlong dst, jlong length, jint value) {
    (void)env;
    (void)cls;
    memset((void *)(uintptr_t)dst, value, (size_t)length);
}

static jint nm_page_size(JNIEnv *env, jclass cls) {
    (void)env;
    (void)cls;
    return (jint)sysconf(_SC_PAGESIZE);
}

static jstring nm_strerror(JNIEnv *env, jclass cls, jint errnum) {
    (void)cls;
    char buf[256];
    const char *msg = strerror_r(errnum, buf, sizeof buf);
    return (*env)->NewStringUTF(env, msg);
}

static JNINativeMethod methods[] = {
    {"address0", "(Ljava/nio/ByteBuffer;)J", (void *)nm_address},
    {"wrap0", "(JI)Ljava/nio/ByteBuffer;", (void *)nm_wrap},
    {"map0", "(J)J", (void *)nm_map},
    {"unmap0", "(JJ)I", (void *)nm_unmap},
    {"copy0", "(JJJ)V", (void *)nm_copy},
    {"fill0", "(JJI)V", (void *)nm_fill},
    {"pageSize0", "()I", (void *)nm_page_size},
    {"strerror0", "(I)Ljava/lang/String;", (void *)nm_strerror},
};

__attribute__((visibility("default"))) JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
    (void)reserved;
    JNIEnv *env;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_8) != JNI_OK) {
        return JNI_ERR;
    }
    jclass cls = (*env)->FindClass(env, CLASS_NAME);
    if (cls == NULL) {
        return JNI_ERR;
    }
    if ((*env)->RegisterNatives(env, cls, methods, sizeof methods / sizeof methods[0]) != 0) {
        return JNI_ERR;
    }
    if (mc_fabric_register(env) != 0) {
        return JNI_ERR;
    }
    return JNI_VERSION_1_8;
}
