package io.mooncake4j.djl.llama;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;

/**
 * The PyTorch engine for tests, offline: DJL must take the native library from the
 * pytorch-native-cpu jar on the test classpath, never download it. Unless configured otherwise,
 * PyTorch runs with one intra-op and one inter-op thread: the tests' tensors are tiny, and on a
 * busy two-core machine two OpenMP threads brought stories260K decode from hundreds of tokens/s
 * down to about 15.
 */
final class TestEngine {

    private TestEngine() {}

    /** Returns a new base manager of the PyTorch engine, with DJL's offline mode on. */
    static NDManager newManager() {
        if (System.getenv("DJL_OFFLINE") == null) {
            setIfAbsent("ai.djl.offline", "true");
        }
        setIfAbsent("ai.djl.pytorch.num_threads", "1");
        setIfAbsent("ai.djl.pytorch.num_interop_threads", "1");
        return Engine.getEngine("PyTorch").newBaseManager();
    }

    private static void setIfAbsent(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }
}
