/**
 * The OpenAI-style completions API on the JDK's HTTP server and client: requests, Server-Sent
 * Events, and a client that times TTFT, TPOT and end-to-end latency.
 */
package io.mooncake4j.samples.serving.http;
