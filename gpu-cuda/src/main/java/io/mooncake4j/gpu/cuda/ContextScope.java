package io.mooncake4j.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuCtxPopCurrent;
import static jcuda.driver.JCudaDriver.cuCtxPushCurrent;

import jcuda.driver.CUcontext;

/**
 * A context pushed on the calling thread's context stack and popped on close, so that whatever
 * was current before (another context, or none at all) is current again afterwards.
 */
final class ContextScope implements AutoCloseable {
    private ContextScope() {}

    static ContextScope push(CUcontext context) {
        CudaDriver.check(cuCtxPushCurrent(context), "cuCtxPushCurrent");
        return new ContextScope();
    }

    @Override
    public void close() {
        CudaDriver.check(cuCtxPopCurrent(new CUcontext()), "cuCtxPopCurrent");
    }
}
