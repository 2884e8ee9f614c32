/* The XNNPACK delegate API of the libtensorflowlite_c.so bundled with tfjs-tflite-node. */
#ifndef EDGE_EXIT_XNNPACK_OPTIONS_H_
#define EDGE_EXIT_XNNPACK_OPTIONS_H_
#include <stdint.h>

typedef struct TfLiteDelegate TfLiteDelegate;

/*
 * TfLiteXNNPackDelegateOptions of the bundled TFLite 2.9 is { int32 num_threads;
 * uint32 flags; } (its ...OptionsDefault() returns it in one register). Later
 * releases append fields whose zero value is their default, so the struct is
 * zero-padded and ...OptionsDefault(), whose return convention changes with the
 * struct's size, is not called.
 */
typedef struct {
  int32_t num_threads;
  uint32_t flags;
  unsigned char reserved[248];
} XnnpackOptions;

extern TfLiteDelegate* TfLiteXNNPackDelegateCreate(const XnnpackOptions* options);
extern void TfLiteXNNPackDelegateDelete(TfLiteDelegate* delegate);
/* NULL unless XNNPACK made its own thread pool (it does for more than one thread). */
extern void* TfLiteXNNPackDelegateGetThreadPool(TfLiteDelegate* delegate);

#endif
