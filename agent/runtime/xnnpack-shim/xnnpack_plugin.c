/*
 * External-delegate plugin that turns on XNNPACK with signed int8 (QS8)
 * kernels inside the libtensorflowlite_c.so shipped by tfjs-tflite-node.
 *
 * The stock binding only exposes TFLite's "external delegate" mechanism: it
 * dlopen()s a library and calls tflite_plugin_create_delegate() with string
 * key/value options. The bundled library already exports the XNNPACK delegate
 * API, but nothing in the binding enables it, and never with QS8. This file is
 * that missing glue and nothing more.
 *
 * Options: "num_threads" (int, default 1) and "flags" (int bitfield, default
 * 1 = QS8), as keys, or staged by edge_exit_xnnpack_stage() (with whether the
 * delegate may be shared, below) just before the
 * interpreter is made. The runtime stages them (through config_addon.c)
 * because tfjs-tflite-node 0.0.2 hands every key and value as a pointer into
 * one loop-local string copy: the plugin sees the last option under every key,
 * so "num_threads" never arrived and 2 threads ran as 1.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xnnpack_options.h"

#define EXPORT __attribute__((visibility("default")))

static int staged = 0;
static int32_t staged_threads = 1;
static uint32_t staged_flags = 1;
static int staged_share = 0;

/*
 * Delegates shared by every interpreter made with the same threads and flags. A
 * multi-exit package is a chain of small interpreters; with a delegate each, each
 * has its own XNNPACK thread pool, and the idle workers of one spin on the cores
 * the next one needs (a 128x128 chain of 8 models took 80 ms at 2 threads, 3 ms
 * at 1). One pool for the chain keeps its workers warm and never oversubscribed.
 * XNNPACK's delegate can be reused across interpreters; it forgets its unpacked
 * constants when it prepares the next graph, so the runtime asks to share only
 * for models with none (no DEQUANTIZE or DENSIFY).
 */
#define MAX_SHARED 8
static struct {
  TfLiteDelegate* delegate;
  int32_t threads;
  uint32_t flags;
  int refs;
} shared[MAX_SHARED];

/* What the last delegate was made with, and whether XNNPACK made a thread pool for it. */
static int32_t last_threads = 0;
static uint32_t last_flags = 0;
static int last_threadpool = 0;
static int last_shared = 0;

/* Options for the next delegate only (the interpreter's constructor creates it synchronously); checked by the caller. */
EXPORT void edge_exit_xnnpack_stage(int32_t num_threads, uint32_t flags, int share) {
  staged = 1;
  staged_threads = num_threads;
  staged_flags = flags;
  staged_share = share;
}

/* How many interpreters use a shared delegate now (for tests and reports). */
EXPORT int edge_exit_xnnpack_shared_users(void) {
  int users = 0;
  for (int i = 0; i < MAX_SHARED; ++i) users += shared[i].delegate ? shared[i].refs : 0;
  return users;
}

/* Returns 0 when no delegate has been made yet. */
EXPORT int edge_exit_xnnpack_last(int32_t* num_threads, uint32_t* flags, int* threadpool, int* shared_pool) {
  *shared_pool = last_shared;
  *num_threads = last_threads;
  *flags = last_flags;
  *threadpool = last_threadpool;
  return last_threads > 0;
}

static int parse_int(const char* text, long min, long max, long* out) {
  char* end = NULL;
  long value = strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < min || value > max) return 0;
  *out = value;
  return 1;
}

/*
 * TFLite announces "Created TensorFlow Lite XNNPACK delegate for CPU." on stderr when the
 * delegate is made; on a terminal it lands in the middle of a progress bar or the status
 * line. The runtime reports its own fallbacks, so the announcement is silenced. The binding
 * creates delegates on Node's main thread, where all of edge-exit's own output is written.
 */
static TfLiteDelegate* create_quietly(const XnnpackOptions* options) {
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  int devnull = open("/dev/null", O_WRONLY);
  if (saved >= 0 && devnull >= 0) dup2(devnull, STDERR_FILENO);
  TfLiteDelegate* delegate = TfLiteXNNPackDelegateCreate(options);
  fflush(stderr);
  if (saved >= 0) {
    dup2(saved, STDERR_FILENO);
    close(saved);
  }
  if (devnull >= 0) close(devnull);
  return delegate;
}

/* The shared delegate for these options, one more user counted; NULL when there is none yet. */
static TfLiteDelegate* join_shared(int32_t threads, uint32_t flags) {
  for (int i = 0; i < MAX_SHARED; ++i) {
    if (shared[i].delegate && shared[i].threads == threads && shared[i].flags == flags) {
      shared[i].refs++;
      return shared[i].delegate;
    }
  }
  return NULL;
}

/* Shares a new delegate from now on; 0 when every slot is taken (it then stays private). */
static int keep_shared(TfLiteDelegate* delegate, int32_t threads, uint32_t flags) {
  for (int i = 0; i < MAX_SHARED; ++i) {
    if (shared[i].delegate) continue;
    shared[i].delegate = delegate;
    shared[i].threads = threads;
    shared[i].flags = flags;
    shared[i].refs = 1;
    return 1;
  }
  return 0;
}

EXPORT TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t count,
                                              void (*report_error)(const char*)) {
  XnnpackOptions options;
  memset(&options, 0, sizeof options);
  options.num_threads = 1;
  options.flags = 1; /* TFLITE_XNNPACK_DELEGATE_FLAG_QS8 */
  for (size_t i = 0; i < count; ++i) {
    long value = 0;
    if (strcmp(keys[i], "num_threads") == 0) {
      if (!parse_int(values[i], 1, 64, &value)) {
        if (report_error) report_error("edge-exit xnnpack plugin: num_threads must be an integer in [1, 64]");
        return NULL;
      }
      options.num_threads = (int32_t)value;
    } else if (strcmp(keys[i], "flags") == 0) {
      if (!parse_int(values[i], 0, 0xffff, &value)) {
        if (report_error) report_error("edge-exit xnnpack plugin: flags must be a non-negative integer");
        return NULL;
      }
      options.flags = (uint32_t)value;
    } else if (report_error) {
      report_error("edge-exit xnnpack plugin: unknown option ignored");
    }
  }
  int share = 0;
  if (staged) {
    staged = 0;
    options.num_threads = staged_threads;
    options.flags = staged_flags;
    /* One thread makes no pool: nothing to share, and a private delegate is simpler. */
    share = staged_share && staged_threads > 1;
  }
  TfLiteDelegate* delegate = share ? join_shared(options.num_threads, options.flags) : NULL;
  int is_shared = delegate != NULL;
  if (!delegate) {
    delegate = create_quietly(&options);
    if (delegate && share) is_shared = keep_shared(delegate, options.num_threads, options.flags);
  }
  if (delegate) {
    last_threads = options.num_threads;
    last_flags = options.flags;
    last_threadpool = TfLiteXNNPackDelegateGetThreadPool(delegate) != NULL;
    last_shared = is_shared;
  }
  return delegate;
}

EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  for (int i = 0; i < MAX_SHARED; ++i) {
    if (shared[i].delegate != delegate) continue;
    if (--shared[i].refs > 0) return;
    shared[i].delegate = NULL;
    break;
  }
  TfLiteXNNPackDelegateDelete(delegate);
}
