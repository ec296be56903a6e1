/* The libfabric half of the JNI library: registers LibFabric's natives (see mooncake4j_fabric.c). */
#ifndef MOONCAKE4J_FABRIC_H
#define MOONCAKE4J_FABRIC_H
#include <jni.h>

/* Registers io.mooncake4j.nativeio.fabric.FabricNatives's natives; returns 0 or a JNI error. */
int mc_fabric_register(JNIEnv *env);

#endif
