/**
 * The transport SPI: what a transport plugin implements ({@link io.mooncake4j.spi.TransportProvider},
 * {@link io.mooncake4j.spi.Transport}) and what the engine gives it. Not yet stable: may change
 * before 1.0.
 */
package io.mooncake4j.spi;
