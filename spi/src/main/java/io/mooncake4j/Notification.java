package io.mooncake4j;

/**
 * A small message received from a peer ({@link TransferEngine#sendNotification}).
 *
 * @param sender the sender's segment name: the name it proved when the engine has a secret ({@link
 *     TransferEngine#authenticatesPeers()}), else the name it claims
 * @param message the text
 */
public record Notification(String sender, String message) {}
