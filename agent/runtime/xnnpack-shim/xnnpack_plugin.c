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
 * Options understood: "num_threads" (int, default 1), "flags" (int bitfield,
 * default 1 = QS8). QU8 (2) makes preparation fail on the MobileNetV2 model
 * (per-channel int8 weights), so it is not set by default.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct TfLiteDelegate TfLiteDelegate;

/*
 * Prefix of TfLiteXNNPackDelegateOptions as declared in
 * tensorflow/lite/delegates/xnnpack/xnnpack_delegate.h. Later TFLite releases
 * append fields; the padding leaves room for them because the library fills the
 * whole struct it knows in TfLiteXNNPackDelegateOptionsDefault() (returned
 * through a hidden pointer on x86-64 and arm64, since it is larger than 16
 * bytes) and reads it back by pointer.
 */
typedef struct {
  int32_t num_threads;
  uint32_t flags;
  void* weights_cache;
  unsigned char reserved[256];
} XnnpackOptions;

extern XnnpackOptions TfLiteXNNPackDelegateOptionsDefault(void);
extern TfLiteDelegate* TfLiteXNNPackDelegateCreate(const XnnpackOptions* options);
extern void TfLiteXNNPackDelegateDelete(TfLiteDelegate* delegate);

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

__attribute__((visibility("default")))
TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t count,
                                              void (*report_error)(const char*)) {
  XnnpackOptions options = TfLiteXNNPackDelegateOptionsDefault();
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
  return create_quietly(&options);
}

__attribute__((visibility("default")))
void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  TfLiteXNNPackDelegateDelete(delegate);
}
