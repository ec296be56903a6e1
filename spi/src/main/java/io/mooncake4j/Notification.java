package io.mooncake4j;

/**
 * A small message received from a peer ({@link TransferEngine#sendNotification}).
 *
 * @param sender the sender's segment name
 * @param message the text
 */
public record Notification(String sender, String message) {}
