package io.mooncake4j.transport.tcp;

import io.mooncake4j.EngineConfig;
import java.net.InetAddress;
import java.time.Duration;

/**
 * Every setting of the TCP transport, read once when the transport starts. Keys follow {@link
 * EngineConfig}'s rules (explicit setting, environment variable, system property in lower case with
 * dots, default).
 *
 * <ul>
 *   <li>{@value #DATA_PORT}: port of the data server; default 0 (the system picks one, which is
 *       published as {@code tcp_data_port}).
 *   <li>{@value EngineConfig#TCP_LANES_PER_PEER}: connections per peer; default 4.
 *   <li>{@value EngineConfig#SLICE_SIZE}: requests larger than this are striped across lanes in
 *       parts of at most this size; default 1 MiB.
 *   <li>{@value #SOCKET_BUFFER}: SO_SNDBUF and SO_RCVBUF in bytes; default 4 MiB; 0 leaves them to
 *       the kernel's autotuning.
 *   <li>{@value #GPU_STAGING_CHUNK}: bytes of one pinned staging chunk through which GPU memory
 *       moves between the device and the socket; default 1 MiB (64 KiB to 64 MiB; measured in docs/gpu.md).
 *   <li>{@value #GPU_STAGING_CHUNKS}: staging chunks per lane direction and per served connection
 *       that moves GPU memory, i.e. copies in flight beside the socket I/O; default 4 (2 to 16).
 *   <li>{@value #STALL_TIMEOUT}: seconds a connection may go without moving a byte while a request
 *       is in progress on it before it is closed (its parts end FAILED, a served request releases
 *       its pin); default 10.
 *   <li>{@value #MAX_SERVED_CONNECTIONS}: connections the data server serves at once; default 1024.
 *       A new connection beyond it replaces the connection idle the longest; it is refused only
 *       when every connection is in the middle of a request.
 *   <li>{@value #IDLE_TIMEOUT}: seconds a served connection may wait for its next request header
 *       before it is closed; default 300.
 *   <li>{@value #REQUEST_TIMEOUT}: seconds the data server gives one request, from its header to
 *       the end of its payload (and of its reply for a READ), before it closes the connection and
 *       releases the request's memory; default 30.
 *   <li>{@value EngineConfig#TCP_BIND_ADDRESS}: local address of the data server; default every
 *       interface.
 *   <li>{@value #CALLER_RUN_BYTES}: a batch of at most this many bytes (and 64 parts) is sent by the
 *       submitting thread itself when its lane is idle and connected, instead of being handed to
 *       the lane's sender thread; default 64 KiB; 0 turns this off.
 * </ul>
 */
final class TcpSettings {
    /** Data server port; 0 = any. */
    static final String DATA_PORT = "MC_TCP_DATA_PORT";
    /** Socket buffer size in bytes; 0 = kernel default. */
    static final String SOCKET_BUFFER = "MC_TCP_SOCKET_BUFFER";
    /** Seconds without progress before a busy connection is closed. */
    static final String STALL_TIMEOUT = "MC_TCP_STALL_TIMEOUT";
    /** Connections served at once. */
    static final String MAX_SERVED_CONNECTIONS = "MC_TCP_MAX_SERVED_CONNECTIONS";
    /** Seconds a served connection may wait for a request header. */
    static final String IDLE_TIMEOUT = "MC_TCP_IDLE_TIMEOUT";
    /** Seconds a served request may take from its header to its last byte. */
    static final String REQUEST_TIMEOUT = "MC_TCP_REQUEST_TIMEOUT";
    /** Bytes of one pinned staging chunk for GPU memory. */
    static final String GPU_STAGING_CHUNK = "MC_TCP_GPU_STAGING_CHUNK";
    /** Pinned staging chunks per lane direction / served connection that moves GPU memory. */
    static final String GPU_STAGING_CHUNKS = "MC_TCP_GPU_STAGING_CHUNKS";
    /** Largest batch (bytes) the submitting thread sends itself; 0 = never. */
    static final String CALLER_RUN_BYTES = "MC_TCP_CALLER_RUN_BYTES";

    final int dataPort;
    final int lanesPerPeer;
    final long sliceSize;
    final int socketBuffer;
    final long stallTimeoutNanos;
    final long connectTimeoutMillis;
    final int maxServedConnections;
    final long callerRunBytes;
    final long idleTimeoutNanos;
    final long requestTimeoutNanos;
    final int gpuStagingChunkBytes;
    final int gpuStagingChunks;
    /** Null: every interface. */
    final InetAddress bindAddress;

    TcpSettings(EngineConfig config) {
        this.dataPort = (int) config.getLong(DATA_PORT, 0, 0, 65535);
        this.lanesPerPeer = config.tcpLanesPerPeer();
        this.sliceSize = config.sliceSize();
        this.socketBuffer = (int) config.getLong(SOCKET_BUFFER, 4 << 20, 0, 1 << 30);
        this.stallTimeoutNanos = config.getSeconds(STALL_TIMEOUT, 10).toNanos();
        Duration connect = config.handshakeTimeout();
        this.connectTimeoutMillis = Math.max(1, Math.min(Integer.MAX_VALUE, connect.toMillis()));
        this.maxServedConnections = (int) config.getLong(MAX_SERVED_CONNECTIONS, 1024, 1, 1 << 20);
        this.callerRunBytes = config.getLong(CALLER_RUN_BYTES, 64 << 10, 0, 1 << 30);
        this.idleTimeoutNanos = config.getSeconds(IDLE_TIMEOUT, 300).toNanos();
        this.requestTimeoutNanos = config.getSeconds(REQUEST_TIMEOUT, 30).toNanos();
        this.bindAddress = config.tcpBindAddress();
        this.gpuStagingChunkBytes = (int) config.getLong(GPU_STAGING_CHUNK, 1 << 20, 64 << 10, 64 << 20);
        this.gpuStagingChunks = (int) config.getLong(GPU_STAGING_CHUNKS, 4, 2, 16);
    }

    @Override
    public String toString() {
        return "TcpSettings[dataPort="
                + dataPort
                + ", lanesPerPeer="
                + lanesPerPeer
                + ", sliceSize="
                + sliceSize
                + ", socketBuffer="
                + socketBuffer
                + ", stallTimeout="
                + stallTimeoutNanos / 1_000_000
                + "ms, connectTimeout="
                + connectTimeoutMillis
                + "ms, callerRunBytes="
                + callerRunBytes
                + ", gpuStaging="
                + gpuStagingChunks
                + "x"
                + gpuStagingChunkBytes
                + "]";
    }
}
