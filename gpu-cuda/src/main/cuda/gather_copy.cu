// The gather-copy kernel of the CUDA copier: one launch copies up to 128 device-to-device blocks.
// Its PTX is committed as src/main/resources/io/mooncake4j/gpu/cuda/gather_copy.ptx (docs/gpu.md
// gives the command that regenerates it). The launch's list travels in its parameters (3 KiB,
// copied by the driver when the launch is enqueued, read by the GPU from constant memory): a list
// in mapped host memory instead cost one PCIe round trip per thread block and made the kernel
// two to three times slower on an H200. When `batch` is not 0 the launch is the last operation of that
// batch on the stream, and the last thread block to finish writes `batch` to the signal word
// (page-locked host memory) once every block's stores are visible: the copier polls that word
// instead of recording and querying an event for each batch. Grid: x = thread blocks per entry,
// y = entry.
#include <stdint.h>

#define MC4J_GATHER_MAX 128

struct GatherList {
    unsigned long long dst[MC4J_GATHER_MAX];
    unsigned long long src[MC4J_GATHER_MAX];
    unsigned long long len[MC4J_GATHER_MAX];
    unsigned long long batch;
    unsigned int* finished;                 // thread blocks done, in device memory
    volatile unsigned long long* signal;    // the last batch done, in page-locked host memory
};

extern "C" __global__ void __launch_bounds__(256)
mc4j_gather_copy(const __grid_constant__ GatherList list) {
    const unsigned e = blockIdx.y;
    const char* src = reinterpret_cast<const char*>(list.src[e]);
    char* dst = reinterpret_cast<char*>(list.dst[e]);
    const unsigned long long len = list.len[e];
    const unsigned long long first = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    unsigned long long tail = 0;
    if (((reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst)) & 15) == 0) {
        const unsigned long long words = len >> 4;
        const uint4* s = reinterpret_cast<const uint4*>(src);
        uint4* d = reinterpret_cast<uint4*>(dst);
        unsigned long long i = first;
        for (; i + 3 * stride < words; i += 4 * stride) { // four loads in flight per thread
            uint4 a = s[i];
            uint4 b = s[i + stride];
            uint4 c = s[i + 2 * stride];
            uint4 f = s[i + 3 * stride];
            d[i] = a;
            d[i + stride] = b;
            d[i + 2 * stride] = c;
            d[i + 3 * stride] = f;
        }
        for (; i < words; i += stride) {
            d[i] = s[i];
        }
        tail = words << 4;
    }
    for (unsigned long long i = tail + first; i < len; i += stride) {
        dst[i] = src[i];
    }
    if (list.batch != 0) {
        // the block's stores, ordered before thread 0's fence by the barrier (the fence is
        // cumulative), are visible device-wide before the block is counted: one fence per block,
        // not per thread, as cooperative groups' grid sync does
        __syncthreads();
        if (threadIdx.x == 0) {
            __threadfence();
            if (atomicAdd(list.finished, 1u) == gridDim.x * gridDim.y - 1) {
                *list.finished = 0; // the next launch on the stream starts after this one ends
                __threadfence_system();
                *list.signal = list.batch;
            }
        }
    }
}
