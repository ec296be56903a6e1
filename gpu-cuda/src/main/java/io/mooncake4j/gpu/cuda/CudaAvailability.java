package io.mooncake4j.gpu.cuda;

/** Whether JCuda, the NVIDIA driver and a device are present; computed once, never throws. */
final class CudaAvailability {
    private static final Throwable CAUSE = probe();

    private CudaAvailability() {}

    /** Why CUDA cannot be used, or null when it can. */
    static Throwable cause() {
        return CAUSE;
    }

    private static Throwable probe() {
        try {
            Class.forName("jcuda.driver.JCudaDriver", false, CudaAvailability.class.getClassLoader());
        } catch (ClassNotFoundException | LinkageError e) {
            return new IllegalStateException(
                    "JCuda is not on the class path: add org.jcuda:jcuda:12.6.0 and"
                            + " org.jcuda:jcuda-natives:12.6.0:linux-x86_64", e);
        }
        try {
            int devices = CudaDriver.instance().deviceCount();
            return devices > 0 ? null : new IllegalStateException("the NVIDIA driver sees no CUDA device");
        } catch (LinkageError e) {
            return new IllegalStateException(
                    "JCuda's native library did not load (it needs the NVIDIA driver's libcuda.so.1): " + firstReason(e), e);
        } catch (RuntimeException e) {
            return new IllegalStateException("the NVIDIA driver could not start: " + e.getMessage(), e);
        }
    }

    /** JCuda's loader reports every attempt with stack traces; the line saying what is missing is enough. */
    private static String firstReason(Throwable e) {
        String message = String.valueOf(e.getMessage());
        for (String line : message.split("\\R")) {
            if (line.contains("cannot open shared object file")) {
                return line.substring(line.indexOf(": ") + 2).trim();
            }
        }
        return message.lines().findFirst().orElse(message);
    }
}
