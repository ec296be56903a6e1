/**
 * Logging helpers shared by the engine's internal services: warnings about peers that misbehave are
 * rate-limited per key so that a hostile or broken peer cannot flood the log.
 */
package io.mooncake4j.internal.logging;
