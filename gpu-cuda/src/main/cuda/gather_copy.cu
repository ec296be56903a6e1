// The gather-copy kernel of DeviceCopier: one launch copies up to 128 device-to-device blocks.
// Its PTX is committed as src/main/resources/io/mooncake4j/gpu/cuda/gather_copy.ptx (see
// docs/gpu.md for the command that regenerates it). The block list travels in the launch's own
// parameters (3 KiB, copied by the driver at launch time), so nothing has to be staged in device
// memory and a batch costs one launch. Grid: x = CTAs per block, y = block index.
#include <stdint.h>

#define MC4J_GATHER_MAX 128

struct GatherList {
    unsigned long long dst[MC4J_GATHER_MAX];
    unsigned long long src[MC4J_GATHER_MAX];
    unsigned long long len[MC4J_GATHER_MAX];
};

extern "C" __global__ void __launch_bounds__(256)
mc4j_gather_copy(const __grid_constant__ GatherList list) {
    const unsigned e = blockIdx.y;
    const unsigned long long len = list.len[e];
    const char* src = reinterpret_cast<const char*>(list.src[e]);
    char* dst = reinterpret_cast<char*>(list.dst[e]);
    const unsigned long long first = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    unsigned long long tail = 0;
    if (((reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst)) & 15) == 0) {
        const unsigned long long words = len >> 4;
        const uint4* s = reinterpret_cast<const uint4*>(src);
        uint4* d = reinterpret_cast<uint4*>(dst);
        unsigned long long i = first;
        for (; i + stride < words; i += 2 * stride) {   // two loads in flight per thread
            uint4 a = s[i];
            uint4 b = s[i + stride];
            d[i] = a;
            d[i + stride] = b;
        }
        if (i < words) {
            d[i] = s[i];
        }
        tail = words << 4;
    }
    for (unsigned long long i = tail + first; i < len; i += stride) {
        dst[i] = src[i];
    }
}
