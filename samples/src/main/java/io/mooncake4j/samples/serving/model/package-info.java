/**
 * Which model the serving app runs and how it loads it: stories260K by default, any llama2.c
 * checkpoint, or a seeded random model of a real model's KV geometry; tokens to API text.
 */
package io.mooncake4j.samples.serving.model;
