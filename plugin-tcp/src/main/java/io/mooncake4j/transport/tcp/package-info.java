/**
 * The TCP transport: Mooncake's TCP data protocol (v1 and v2) over persistent, pipelined lanes, with
 * data moved straight between sockets and registered host memory. Internal to this plugin.
 */
package io.mooncake4j.transport.tcp;
