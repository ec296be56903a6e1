package io.mooncake4j.gpu.cuda;

import ai.djl.ndarray.NDManager;
import java.lang.reflect.Proxy;

/**
 * An {@link NDManager} for KV connectors over a pool in device memory where no DJL engine is on the
 * class path (the GPU pack leaves PyTorch out): such a connector only opens and closes sub-managers,
 * since a device pool has no NDArray views. Anything else fails, naming the call.
 */
final class ArraylessManager {
    private ArraylessManager() {}

    static NDManager create() {
        return (NDManager) Proxy.newProxyInstance(NDManager.class.getClassLoader(), new Class<?>[] {NDManager.class},
                (proxy, method, args) -> {
                    switch (method.getName()) {
                        case "newSubManager":
                            return create();
                        case "close":
                            return null;
                        case "toString":
                            return "ArraylessManager";
                        case "hashCode":
                            return System.identityHashCode(proxy);
                        case "equals":
                            return proxy == args[0];
                        default:
                            throw new UnsupportedOperationException("NDManager." + method.getName()
                                    + ": the GPU tests have no DJL engine");
                    }
                });
    }
}
