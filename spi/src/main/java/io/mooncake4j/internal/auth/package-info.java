/**
 * Peer authentication with a shared secret: loading it ({@link io.mooncake4j.internal.auth.AuthSecret})
 * and the mutual HMAC-SHA256 challenge-response every connection runs before anything else ({@link
 * io.mooncake4j.internal.auth.ChallengeResponse}). docs/security.md explains the guarantees.
 */
package io.mooncake4j.internal.auth;
