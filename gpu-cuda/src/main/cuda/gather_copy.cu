// The gather-copy kernel of the CUDA copier: one launch copies up to 128 device-to-device blocks.
// Its PTX is committed as src/main/resources/io/mooncake4j/gpu/cuda/gather_copy.ptx (docs/gpu.md
// gives the command that regenerates it). The launch's list lies in page-locked, device-mapped
// host memory written by the copier, so a launch passes one pointer (each kernel parameter costs
// the host about a microsecond in JCuda): dst[128], src[128], len[128], then the batch number, the
// address of the launch counter (device memory) and that of the signal word (page-locked host
// memory). When the batch number is not 0 the launch is the last operation of that batch on the
// stream, and the last thread block to finish writes the number to the signal word once every
// block's stores are visible: the copier polls that word instead of recording and querying an
// event for each batch. Grid: x = thread blocks per entry, y = entry.
#include <stdint.h>

#define MC4J_GATHER_MAX 128

extern "C" __global__ void __launch_bounds__(256)
mc4j_gather_copy(const unsigned long long* __restrict__ list) {
    __shared__ unsigned long long entry[6];
    const unsigned e = blockIdx.y;
    if (threadIdx.x < 3) { // one round trip over PCIe for the block's entry and the launch's header
        entry[threadIdx.x] = list[threadIdx.x * MC4J_GATHER_MAX + e];
    } else if (threadIdx.x < 6) {
        entry[threadIdx.x] = list[3 * MC4J_GATHER_MAX + threadIdx.x - 3];
    }
    __syncthreads();
    const unsigned long long batch = entry[3];
    unsigned int* finished = reinterpret_cast<unsigned int*>(entry[4]);
    volatile unsigned long long* signal = reinterpret_cast<volatile unsigned long long*>(entry[5]);
    const char* src = reinterpret_cast<const char*>(entry[1]);
    char* dst = reinterpret_cast<char*>(entry[0]);
    const unsigned long long len = entry[2];
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
    if (batch != 0) {
        __threadfence(); // this thread's stores, visible device-wide before the block is counted
        __syncthreads();
        if (threadIdx.x == 0 && atomicAdd(finished, 1u) == gridDim.x * gridDim.y - 1) {
            *finished = 0; // the next launch on the stream starts after this one ends
            __threadfence_system();
            *signal = batch;
        }
    }
}
